//! The scorer task: it takes queued lines in batches, keeps those of watched instances and
//! scores them with their workload's scorer.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{LOG_INTERVAL, LogLine};
use crate::domain::{LogSource, WorkloadScorers};
use crate::log_limit::LogLimit;
use crate::metrics::{Metrics, ReasonLabels};
use crate::watcher::Watcher;

/// Lines taken from the queue at once; the watcher's lock is taken once per batch.
const BATCH: usize = 256;

/// Time between two removals of the scorers of workloads that have no watched instance.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Scores the queued lines until every sender of the queue is dropped.
pub(crate) async fn score(
    mut lines: mpsc::Receiver<LogLine>,
    mut scorers: WorkloadScorers,
    watcher: Arc<Watcher>,
    metrics: Arc<Metrics>,
) {
    let origin = Instant::now().into_std();
    let mut last_sweep = Instant::now();
    let ignored_log = LogLimit::new(LOG_INTERVAL);
    let invalid_log = LogLimit::new(LOG_INTERVAL);
    let mut batch = Vec::with_capacity(BATCH);
    while lines.recv_many(&mut batch, BATCH).await > 0 {
        let sources = watcher.log_sources(batch.iter().map(|line| &line.key));
        for (line, source) in batch.drain(..).zip(sources) {
            if source != LogSource::Watched {
                metrics
                    .log_lines_ignored
                    .get_or_create(&ReasonLabels {
                        reason: source.as_str(),
                    })
                    .inc();
                if let Some(suppressed) = ignored_log.admit() {
                    debug!(instance = %line.key, source = source.as_str(), suppressed, "log line of an instance that is not watched ignored");
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line.payload);
            if matches!(text, Cow::Owned(_)) {
                metrics.log_lines_invalid_utf8.inc();
                if let Some(suppressed) = invalid_log.admit() {
                    info!(instance = %line.key, suppressed, "log line is not valid UTF-8, invalid bytes scored as U+FFFD");
                }
            }
            let at = line.at.monotonic.saturating_duration_since(origin);
            if let Some(anomaly) = scorers.observe(&line.key, &text, at) {
                watcher.log_anomaly(&line.key, &anomaly, line.at.wall);
            }
        }
        if last_sweep.elapsed() >= SWEEP_INTERVAL {
            let dropped = scorers.retain(&watcher.watched_workloads());
            if dropped > 0 {
                debug!(
                    dropped,
                    remaining = scorers.len(),
                    "scorers of unwatched workloads dropped"
                );
            }
            last_sweep = Instant::now();
        }
    }
    debug!(workloads = scorers.len(), "log scorer stopped");
}
