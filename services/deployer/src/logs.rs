//! Instances' output lines, published on core NATS (`aro.logs.<workload>.<instance>`). Log
//! lines may be shed under load, so they go through a bounded queue: a full queue drops the
//! line and counts it, and the instance's output is never held up by NATS.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use crate::metrics::{Metrics, WorkloadLabels};

/// Lines waiting to be published, across all instances.
const QUEUE_CAPACITY: usize = 8192;

/// Subject of an instance's log lines.
pub fn subject(workload: &str, instance: &str) -> String {
    format!("aro.logs.{workload}.{instance}")
}

/// Output stream of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug)]
struct Line {
    workload: String,
    subject: String,
    payload: Bytes,
}

/// Queue into which runtimes put their instances' output lines.
#[derive(Clone, Debug)]
pub struct LogSink {
    queue: mpsc::Sender<Line>,
    metrics: Arc<Metrics>,
}

impl LogSink {
    /// Creates a sink and the queue's receiving end, for [`publish`].
    pub fn new(metrics: Arc<Metrics>) -> (Self, LogQueue) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        (Self { queue, metrics }, LogQueue(receiver))
    }

    /// Queues one line of `instance`'s output; `truncated` when it was cut to the maximum
    /// length.
    pub fn push(
        &self,
        workload: &str,
        instance: &str,
        stream: Stream,
        line: Vec<u8>,
        truncated: bool,
    ) {
        let labels = WorkloadLabels {
            workload: workload.to_owned(),
        };
        self.metrics.log_lines.get_or_create(&labels).inc();
        if truncated {
            self.metrics
                .log_lines_truncated
                .get_or_create(&labels)
                .inc();
        }
        debug!(
            workload,
            instance,
            stream = stream.as_str(),
            line = %String::from_utf8_lossy(&line),
            "instance output"
        );
        let line = Line {
            workload: workload.to_owned(),
            subject: subject(workload, instance),
            payload: Bytes::from(line),
        };
        if self.queue.try_send(line).is_err() {
            self.metrics.log_lines_dropped.get_or_create(&labels).inc();
        }
    }
}

/// Receiving end of a [`LogSink`].
#[derive(Debug)]
pub struct LogQueue(mpsc::Receiver<Line>);

/// Publishes queued lines until every sink is dropped.
pub async fn publish(
    mut queue: LogQueue,
    client: aro_bus::async_nats::Client,
    metrics: Arc<Metrics>,
) {
    while let Some(line) = queue.0.recv().await {
        if let Err(error) = client.publish(line.subject, line.payload).await {
            debug!(%error, "publishing a log line failed");
            metrics
                .log_lines_dropped
                .get_or_create(&WorkloadLabels {
                    workload: line.workload,
                })
                .inc();
        }
    }
}
