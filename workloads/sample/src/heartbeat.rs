use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aro_proto::v1::HeartbeatRequest;
use aro_proto::v1::detector_client::DetectorClient;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{info, warn};

use crate::chaos::Chaos;
use crate::data::DATA_SET;
use crate::memory;

/// Where and how often the workload reports that it is alive.
#[derive(Debug)]
pub(crate) struct HeartbeatConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) workload: String,
    pub(crate) instance: String,
    pub(crate) interval: Duration,
}

/// Longest time one heartbeat call may take, so a detector that stops answering delays the
/// next heartbeat by at most this much.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends one heartbeat per interval until `shutdown` is cancelled, with the data set's
/// checksum and the resident memory, except while `chaos` has heartbeats stopped. The channel
/// connects lazily and connects again after a failed call, so a restarted detector receives
/// heartbeats again without a restart of the workload. Failures are logged when they start
/// and end, not once per heartbeat.
pub(crate) async fn run(config: HeartbeatConfig, chaos: Arc<Chaos>, shutdown: CancellationToken) {
    let timeout = CALL_TIMEOUT.max(config.interval);
    let channel = config
        .endpoint
        .clone()
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_lazy();
    let mut client = DetectorClient::new(channel);
    let mut ticker = tokio::time::interval(config.interval);
    // After a pause (a frozen process, a slow call) send one heartbeat, not a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let detector = config.endpoint.uri().to_string();
    info!(%detector, interval = ?config.interval, "sending heartbeats");
    let mut sequence = 0_u64;
    let mut failing = false;
    let mut reported_unknown = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if chaos.heartbeats_stopped() {
            continue;
        }
        sequence += 1;
        let request = HeartbeatRequest {
            workload: config.workload.clone(),
            instance: config.instance.clone(),
            sent_at: Some(aro_proto::time::now()),
            sequence,
            data_checksums: HashMap::from([(
                DATA_SET.to_owned(),
                chaos.data.checksum().to_owned(),
            )]),
            rss_bytes: memory::resident_bytes().unwrap_or(0),
        };
        match client.heartbeat(request).await {
            Ok(response) => {
                if failing {
                    info!(%detector, sequence, "heartbeats delivered again");
                    failing = false;
                }
                let known = response.into_inner().known;
                if !known && !reported_unknown {
                    warn!(%detector, instance = %config.instance, "detector does not watch this instance");
                }
                reported_unknown = !known;
            }
            Err(status) => {
                if !failing {
                    warn!(%detector, sequence, error = %status, "heartbeat failed, retrying");
                    failing = true;
                }
            }
        }
    }
    info!(sequence, "heartbeats stopped");
}
