use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::{ConnectOptions, HeaderMap};
use prost::Message;
use tracing::{debug, info, warn};

use crate::{Error, Result, topology};

/// How long a publish keeps retrying before it reports failure, so a NATS restart of a few
/// seconds delays events instead of losing them.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(30);

/// Connection to NATS and its JetStream context.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
}

impl Bus {
    /// Connects to NATS, retrying the first connection and reconnecting forever after it.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Connect`] when the URL is invalid.
    pub async fn connect(url: &str, client_name: &str) -> Result<Self> {
        let client = ConnectOptions::new()
            .name(client_name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(50 * 2u64.saturating_pow(attempts.min(5) as u32))
            })
            .event_callback(|event| async move {
                info!(%event, "nats connection event");
            })
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                url: url.to_owned(),
                source,
            })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self { client, jetstream })
    }

    /// Connects and creates the streams and buckets when they do not exist yet.
    ///
    /// # Errors
    ///
    /// Returns an error when the connection or the creation of a stream or bucket fails.
    pub async fn connect_and_prepare(url: &str, client_name: &str) -> Result<Self> {
        let bus = Self::connect(url, client_name).await?;
        topology::ensure(&bus.jetstream).await?;
        Ok(bus)
    }

    /// Returns the core NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Returns the JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Publishes `message` on `subject` with `id` as its `Nats-Msg-Id` and the current trace
    /// context in its headers, and waits until JetStream has stored it. JetStream drops a
    /// second message with the same id within the stream's duplicate window.
    ///
    /// Retries with back-off while NATS is unreachable, for at most 30 seconds.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Publish`] when JetStream did not acknowledge the message in time.
    pub async fn publish<M: Message>(&self, subject: String, id: &str, message: &M) -> Result<()> {
        let payload = bytes::Bytes::from(message.encode_to_vec());
        let mut headers = HeaderMap::new();
        crate::inject_context(&mut headers);

        let deadline = tokio::time::Instant::now() + PUBLISH_DEADLINE;
        let mut delay = Duration::from_millis(20);
        loop {
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers.clone())
                .message_id(id);
            let attempt = async {
                let ack = self
                    .jetstream
                    .send_publish(subject.clone(), publish)
                    .await?;
                ack.await
            };
            match attempt.await {
                Ok(ack) => {
                    debug!(%subject, %id, duplicate = ack.duplicate, sequence = ack.sequence, "published");
                    return Ok(());
                }
                Err(error) if tokio::time::Instant::now() + delay < deadline => {
                    warn!(%subject, %id, %error, retry_in = ?delay, "publish failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(error) => {
                    return Err(Error::Publish {
                        subject,
                        id: id.to_owned(),
                        timeout: PUBLISH_DEADLINE,
                        message: error.to_string(),
                    });
                }
            }
        }
    }
}
