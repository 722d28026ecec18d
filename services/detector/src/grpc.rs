//! The `aro.v1.Detector` gRPC service: heartbeats in, watched instances out.
//!
//! NOTE: a heartbeat reaches only the replica that the workload sends it to. Every replica
//! watches every instance, so a second replica would declare heartbeat-only instances hung;
//! until heartbeats are shared between replicas, run one detector per set of workloads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aro_proto::v1::detector_server::Detector;
use aro_proto::v1::{HeartbeatRequest, HeartbeatResponse, ListWatchedRequest, ListWatchedResponse};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::watcher::Watcher;

/// Shortest time between two log lines about heartbeats for unwatched instances.
const UNKNOWN_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves heartbeats and the list of watched instances.
#[derive(Debug)]
pub(crate) struct DetectorService {
    watcher: Arc<Watcher>,
    unknown: Mutex<UnknownHeartbeats>,
}

/// Rate limit of the log line about heartbeats for unwatched instances.
#[derive(Debug, Default)]
struct UnknownHeartbeats {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl DetectorService {
    pub(crate) fn new(watcher: Arc<Watcher>) -> Self {
        Self {
            watcher,
            unknown: Mutex::new(UnknownHeartbeats::default()),
        }
    }

    fn log_unknown(&self, request: &HeartbeatRequest) {
        let suppressed = {
            let mut unknown = self
                .unknown
                .lock()
                .expect("no thread panics while holding the log limit lock");
            let now = Instant::now();
            if unknown
                .last_logged
                .is_some_and(|last| now.duration_since(last) < UNKNOWN_LOG_INTERVAL)
            {
                unknown.suppressed += 1;
                return;
            }
            unknown.last_logged = Some(now);
            std::mem::take(&mut unknown.suppressed)
        };
        info!(
            workload = %request.workload,
            instance = %request.instance,
            sequence = request.sequence,
            suppressed,
            "heartbeat for an instance that is not watched (unknown, isolated or stopped)"
        );
    }
}

/// Checks that a request field contains a valid workload or instance name.
fn valid_name(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is empty")));
    }
    aro_bus::subjects::validate_name(value)
        .map_err(|message| Status::invalid_argument(format!("invalid {field}: {message}")))
}

#[tonic::async_trait]
impl Detector for DetectorService {
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        valid_name("workload", &request.workload)?;
        valid_name("instance", &request.instance)?;
        let known = self
            .watcher
            .heartbeat(&request.workload, &request.instance, request.sequence);
        if !known {
            self.log_unknown(&request);
        }
        Ok(Response::new(HeartbeatResponse { known }))
    }

    async fn list_watched(
        &self,
        request: Request<ListWatchedRequest>,
    ) -> Result<Response<ListWatchedResponse>, Status> {
        let workload = request.into_inner().workload;
        if !workload.is_empty() {
            valid_name("workload", &workload)?;
        }
        Ok(Response::new(ListWatchedResponse {
            instances: self.watcher.watched(&workload),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_field_is_named() {
        let status = valid_name("workload", "").expect_err("empty is invalid");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "workload is empty");
    }

    #[test]
    fn invalid_name_shows_value() {
        let status = valid_name("instance", "Web.1").expect_err("dots are invalid");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("invalid instance"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("Web.1"), "{}", status.message());
    }
}
