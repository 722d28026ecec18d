//! The `aro.v1.Detector` gRPC service: heartbeats in, watched instances out.
//!
//! NOTE: a heartbeat reaches only the replica that the workload sends it to. Every replica
//! watches every instance, so a second replica would declare heartbeat-only instances hung;
//! until heartbeats are shared between replicas, run one detector per set of workloads.

use std::sync::Arc;
use std::time::Duration;

use aro_proto::v1::detector_server::Detector;
use aro_proto::v1::{HeartbeatRequest, HeartbeatResponse, ListWatchedRequest, ListWatchedResponse};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::domain::{HeartbeatReport, quote};
use crate::log_limit::LogLimit;
use crate::metrics::{FieldLabels, Metrics};
use crate::watcher::Watcher;

/// Shortest time between two log lines about heartbeats for unwatched instances, and between
/// two about invalid heartbeats.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Maximum length of a workload or instance name that `aro_bus::subjects::validate_name`
/// accepts.
const MAX_NAME_CHARS: usize = 63;

/// Serves heartbeats and the list of watched instances.
#[derive(Debug)]
pub(crate) struct DetectorService {
    watcher: Arc<Watcher>,
    metrics: Arc<Metrics>,
    unknown_log: LogLimit,
    invalid_log: LogLimit,
}

impl DetectorService {
    pub(crate) fn new(watcher: Arc<Watcher>, metrics: Arc<Metrics>) -> Self {
        Self {
            watcher,
            metrics,
            unknown_log: LogLimit::new(LOG_INTERVAL),
            invalid_log: LogLimit::new(LOG_INTERVAL),
        }
    }

    fn log_unknown(&self, request: &HeartbeatRequest) {
        let Some(suppressed) = self.unknown_log.admit() else {
            return;
        };
        info!(
            workload = %request.workload,
            instance = %request.instance,
            sequence = request.sequence,
            suppressed,
            "heartbeat for an instance that is not watched (unknown, isolated or stopped)"
        );
    }

    /// Checks every field of a heartbeat and returns its report. An invalid heartbeat is
    /// counted by field and logged at most once per `LOG_INTERVAL`.
    fn validate(&self, request: &HeartbeatRequest) -> Result<HeartbeatReport, Status> {
        let checked = valid_name("workload", &request.workload)
            .and_then(|()| valid_name("instance", &request.instance))
            .and_then(|()| {
                HeartbeatReport::parse(&request.data_checksums, request.rss_bytes).map_err(
                    |error| {
                        (
                            "data_checksums",
                            Status::invalid_argument(error.to_string()),
                        )
                    },
                )
            });
        checked.map_err(|(field, status)| {
            self.metrics
                .invalid_heartbeats
                .get_or_create(&FieldLabels { field })
                .inc();
            if let Some(suppressed) = self.invalid_log.admit() {
                warn!(
                    workload = %quote(&request.workload),
                    instance = %quote(&request.instance),
                    field,
                    error = status.message(),
                    suppressed,
                    "invalid heartbeat rejected"
                );
            }
            status
        })
    }
}

/// Checks that a request field contains a valid workload or instance name, and returns the
/// field with the error otherwise.
fn valid_name(field: &'static str, value: &str) -> Result<(), (&'static str, Status)> {
    if value.is_empty() {
        return Err((field, Status::invalid_argument(format!("{field} is empty"))));
    }
    if value.len() > MAX_NAME_CHARS {
        let message = format!(
            "invalid {field}: {:?} is longer than {MAX_NAME_CHARS} characters",
            quote(value)
        );
        return Err((field, Status::invalid_argument(message)));
    }
    aro_bus::subjects::validate_name(value).map_err(|message| {
        (
            field,
            Status::invalid_argument(format!("invalid {field}: {message}")),
        )
    })
}

#[tonic::async_trait]
impl Detector for DetectorService {
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let report = self.validate(&request)?;
        let known = self.watcher.heartbeat(
            &request.workload,
            &request.instance,
            request.sequence,
            &report,
        );
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
            valid_name("workload", &workload).map_err(|(_, status)| status)?;
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
        let (_, status) = valid_name("workload", "").expect_err("empty is invalid");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "workload is empty");
    }

    #[test]
    fn huge_name_is_quoted_in_part() {
        let name = "a".repeat(1_000_000);
        let (field, status) = valid_name("workload", &name).expect_err("too long");
        assert_eq!(field, "workload");
        assert!(status.message().len() < 200, "{}", status.message().len());
        assert!(
            status.message().ends_with("is longer than 63 characters"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn invalid_name_shows_value() {
        let (_, status) = valid_name("instance", "Web.1").expect_err("dots are invalid");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().starts_with("invalid instance"),
            "{}",
            status.message()
        );
        assert!(status.message().contains("Web.1"), "{}", status.message());
    }
}
