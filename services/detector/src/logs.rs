//! The log sense: instances' output lines arrive on core NATS subjects
//! `aro.logs.<workload>.<instance>`, one line per message, and a per-workload anomaly scorer
//! turns them into LOG_ANOMALY faults.
//!
//! The subscriber only cuts each line to the maximum length, copies it and queues it. A
//! bounded queue separates it from the scorer task, and a full queue drops the line and counts
//! it. So a flood of lines costs at most the queue's capacity times the maximum line length
//! in memory, plus what the NATS client buffers for the subscription.

mod scoring;

use std::sync::Arc;
use std::time::Duration;

use aro_bus::async_nats;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::domain::{InstanceKey, Moment, quote};
use crate::log_limit::LogLimit;
use crate::metrics::{Metrics, ReasonLabels};
use crate::watcher;

pub(crate) use scoring::score;

/// Subjects of the log lines of every instance.
const SUBJECTS: &str = "aro.logs.>";

/// Queue group that detector replicas share, so each line reaches one replica.
const QUEUE_GROUP: &str = "detector";

/// Messages the NATS client buffers for the log subscription before it drops them.
///
/// NOTE: the client bounds this buffer in messages, not bytes, so its worst case is 1024 times
/// the server's `max_payload` (1 MiB by default). The subscriber drains it quickly because it
/// keeps at most `max_line_bytes` of each message.
pub(crate) const SUBSCRIPTION_CAPACITY: usize = 1024;

/// Shortest time between two log lines about the same kind of bad input.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Settings of the log sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogSettings {
    /// Lines that wait for the scorer at most.
    pub(crate) queue_capacity: usize,
    /// Maximum line length in bytes; the rest of a longer line is cut off.
    pub(crate) max_line_bytes: usize,
}

/// One line on its way to the scorer.
#[derive(Debug)]
pub(crate) struct LogLine {
    pub(crate) key: InstanceKey,
    /// At most `max_line_bytes`, in a buffer of its own.
    pub(crate) payload: Bytes,
    /// When the line arrived.
    pub(crate) at: Moment,
}

/// The subscriber's side of the queue: cuts, counts and queues lines.
#[derive(Debug)]
pub(crate) struct Intake {
    queue: mpsc::Sender<LogLine>,
    max_line_bytes: usize,
    metrics: Arc<Metrics>,
    dropped_log: LogLimit,
    subject_log: LogLimit,
    truncated_log: LogLimit,
}

impl Intake {
    /// Creates the intake and the receiving end of its queue, for [`score`].
    pub(crate) fn new(
        settings: LogSettings,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::Receiver<LogLine>) {
        let (queue, lines) = mpsc::channel(settings.queue_capacity.max(1));
        let intake = Self {
            queue,
            max_line_bytes: settings.max_line_bytes.max(1),
            metrics,
            dropped_log: LogLimit::new(LOG_INTERVAL),
            subject_log: LogLimit::new(LOG_INTERVAL),
            truncated_log: LogLimit::new(LOG_INTERVAL),
        };
        (intake, lines)
    }

    /// Queues the line `payload` that arrived on `subject` at `at`, or drops and counts it
    /// when the subject names no instance or the queue is full.
    pub(crate) fn push(&self, subject: &str, payload: &[u8], at: Moment) {
        self.metrics.log_lines_read.inc();
        let Some(key) = parse_subject(subject) else {
            self.metrics
                .log_lines_ignored
                .get_or_create(&ReasonLabels {
                    reason: "invalid_subject",
                })
                .inc();
            if let Some(suppressed) = self.subject_log.admit() {
                warn!(subject = %quote(subject), suppressed, "log line on a subject that names no instance ignored, expected aro.logs.<workload>.<instance>");
            }
            return;
        };
        let kept_bytes = payload.len().min(self.max_line_bytes);
        if kept_bytes < payload.len() {
            self.metrics.log_lines_truncated.inc();
            if let Some(suppressed) = self.truncated_log.admit() {
                info!(instance = %key, bytes = payload.len(), max_line_bytes = self.max_line_bytes, suppressed, "log line cut to the maximum length");
            }
        }
        let line = LogLine {
            key,
            // A copy, so a cut line does not keep the whole message buffer alive.
            payload: Bytes::copy_from_slice(&payload[..kept_bytes]),
            at,
        };
        if let Err(mpsc::error::TrySendError::Full(line)) = self.queue.try_send(line) {
            self.metrics.log_lines_dropped.inc();
            if let Some(suppressed) = self.dropped_log.admit() {
                warn!(instance = %line.key, suppressed, "log line dropped, the anomaly scorer is behind");
            }
        }
    }
}

/// Opens the NATS connection that carries log lines. A subscription buffer that overflows
/// drops lines in the client; each such event is counted and logged at most once per
/// `LOG_INTERVAL`.
///
/// # Errors
///
/// Returns the client's error when the URL or the options are invalid.
pub(crate) async fn connect(
    url: &str,
    replica: &str,
    metrics: Arc<Metrics>,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let overflow_log = Arc::new(LogLimit::new(LOG_INTERVAL));
    async_nats::ConnectOptions::new()
        .name(format!("{replica}-logs"))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(move |event| {
            let metrics = Arc::clone(&metrics);
            let overflow_log = Arc::clone(&overflow_log);
            async move {
                if let async_nats::Event::SlowConsumer(_) = event {
                    metrics.log_client_drops.inc();
                    if let Some(suppressed) = overflow_log.admit() {
                        warn!(
                            suppressed,
                            "the NATS client dropped log lines, its subscription buffer is full"
                        );
                    }
                } else {
                    info!(%event, "nats connection event (log lines)");
                }
            }
        })
        .connect(url)
        .await
}

/// Returns the instance that `aro.logs.<workload>.<instance>` names, when both names are valid.
fn parse_subject(subject: &str) -> Option<InstanceKey> {
    let rest = subject.strip_prefix("aro.logs.")?;
    let (workload, instance) = rest.split_once('.')?;
    aro_bus::subjects::validate_name(workload).ok()?;
    aro_bus::subjects::validate_name(instance).ok()?;
    Some(InstanceKey::new(workload, instance))
}

/// Reads log lines in the detectors' queue group and hands them to `intake` until `shutdown`
/// is cancelled. Dropping the intake at the end lets the scorer finish the queued lines.
pub(crate) async fn subscribe(
    client: async_nats::Client,
    intake: Intake,
    shutdown: CancellationToken,
) {
    let mut subscriber = match client
        .queue_subscribe(SUBJECTS, QUEUE_GROUP.to_owned())
        .await
    {
        Ok(subscriber) => subscriber,
        Err(error) => {
            error!(%error, subjects = SUBJECTS, "subscribing to log lines failed, the log sense is off");
            return;
        }
    };
    info!(
        subjects = SUBJECTS,
        queue_group = QUEUE_GROUP,
        "reading log lines"
    );
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = subscriber.next() => message,
        };
        let Some(message) = message else {
            error!("log subscription ended, the log sense is off");
            break;
        };
        intake.push(message.subject.as_str(), &message.payload, watcher::now());
    }
    let _ = subscriber.unsubscribe().await;
}

#[cfg(test)]
mod tests;
