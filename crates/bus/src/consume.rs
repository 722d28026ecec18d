use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{Bus, ConsumerSpec, Result};

/// Acknowledgement to send for a delivered message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Handled; the effect is durable.
    Ack,
    /// Not handled now; deliver again after the delay.
    Retry(Duration),
    /// Never deliverable (for example an undecodable payload); stop redelivering.
    Reject,
}

/// One decoded message from a durable consumer. The handler must call [`Delivery::settle`]
/// once, possibly from another task; a message never settled is redelivered after the
/// consumer's ack wait.
#[derive(Debug)]
pub struct Delivery<M> {
    pub message: M,
    pub subject: String,
    /// 1 on the first delivery, then one more per redelivery.
    pub delivered: i64,
    pub stream_sequence: u64,
    /// Trace context of the publisher.
    pub parent: opentelemetry::Context,
    raw: jetstream::Message,
}

impl<M> Delivery<M> {
    /// Acknowledges, retries or rejects the message. A failed acknowledgement is logged and
    /// leaves the message to be redelivered, which handlers tolerate by being idempotent.
    pub async fn settle(self, disposition: Disposition) {
        let kind = match disposition {
            Disposition::Ack => AckKind::Ack,
            Disposition::Retry(delay) => AckKind::Nak(Some(delay)),
            Disposition::Reject => AckKind::Term,
        };
        let result = match kind {
            AckKind::Ack => self.raw.double_ack().await,
            other => self.raw.ack_with(other).await,
        };
        if let Err(error) = result {
            warn!(subject = %self.subject, sequence = self.stream_sequence, %error, "acknowledgement failed, message will be redelivered");
        }
    }

    /// Tells JetStream that handling goes on, which restarts the ack wait.
    pub async fn in_progress(&self) {
        if let Err(error) = self.raw.ack_with(AckKind::Progress).await {
            debug!(subject = %self.subject, %error, "progress acknowledgement failed");
        }
    }
}

/// Reads `spec`'s durable consumer until `shutdown` is cancelled, decoding each message as
/// `M` and passing it to `handler`. Undecodable messages are rejected and logged. The consumer
/// is created again after NATS restarts or the message stream fails.
///
/// # Errors
///
/// Never returns an error while `shutdown` is not cancelled: failures are logged and retried.
pub async fn consume<M, F, Fut>(
    bus: &Bus,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    mut handler: F,
) -> Result<()>
where
    M: Message + Default,
    F: FnMut(Delivery<M>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let consumer = match spec.create(bus.jetstream()).await {
            Ok(consumer) => consumer,
            Err(error) => {
                warn!(%error, retry_in = ?backoff, "consumer unavailable, retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                warn!(durable = %spec.durable, %error, "message stream failed to open, retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        info!(stream = spec.stream, durable = %spec.durable, "consuming");
        backoff = Duration::from_millis(100);

        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let raw = match next {
                Some(Ok(raw)) => raw,
                Some(Err(error)) => {
                    // Missed heartbeats and similar errors while NATS restarts: the stream
                    // recovers by itself, but reopen it when it keeps failing.
                    warn!(durable = %spec.durable, %error, "message stream error");
                    if matches!(
                        error.kind(),
                        jetstream::consumer::pull::MessagesErrorKind::ConsumerDeleted
                    ) {
                        break;
                    }
                    continue;
                }
                None => break,
            };
            let Ok(info) = raw.info() else {
                warn!(subject = %raw.subject, "message without JetStream metadata, skipped");
                continue;
            };
            let (delivered, stream_sequence) = (info.delivered, info.stream_sequence);
            let subject = raw.subject.to_string();
            match M::decode(raw.payload.clone()) {
                Ok(message) => {
                    let parent = crate::extract_context(raw.headers.as_ref());
                    handler(Delivery {
                        message,
                        subject,
                        delivered,
                        stream_sequence,
                        parent,
                        raw,
                    })
                    .await;
                }
                Err(error) => {
                    warn!(%subject, sequence = stream_sequence, %error, "undecodable message rejected");
                    if let Err(error) = raw.ack_with(AckKind::Term).await {
                        warn!(%subject, %error, "rejecting message failed");
                    }
                }
            }
        }
    }
    Ok(())
}
