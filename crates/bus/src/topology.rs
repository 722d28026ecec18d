use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use tracing::debug;

use crate::{Error, Result, subjects};

/// Window within which JetStream drops a message whose `Nats-Msg-Id` it has already stored.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// How long the audit streams keep events.
const AUDIT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long runtime signals are kept; they only matter while an instance is watched.
const SIGNALS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Creates the streams and key-value buckets when they do not exist yet. Every service calls
/// this at start-up, so whichever starts first creates them and the others find them.
pub(crate) async fn ensure(jetstream: &jetstream::Context) -> Result<()> {
    let streams = [
        (subjects::SIGNALS_STREAM, "aro.signals.>", SIGNALS_MAX_AGE),
        (subjects::FAULTS_STREAM, "aro.faults.>", AUDIT_MAX_AGE),
        (subjects::COMMANDS_STREAM, "aro.commands.>", AUDIT_MAX_AGE),
        (subjects::OUTCOMES_STREAM, "aro.outcomes.>", AUDIT_MAX_AGE),
        (subjects::CHAOS_STREAM, "aro.chaos.>", AUDIT_MAX_AGE),
        (subjects::DECISIONS_STREAM, "aro.decisions.>", AUDIT_MAX_AGE),
    ];
    for (name, subject, max_age) in streams {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|error| Error::CreateStream {
                stream: name.to_owned(),
                message: error.to_string(),
            })?;
        debug!(stream = name, "stream ready");
    }

    for (bucket, history) in [
        (subjects::INSTANCES_BUCKET, 5),
        (subjects::INCIDENTS_BUCKET, 10),
        (subjects::INJECTIONS_BUCKET, 5),
        (subjects::INSTANCE_NUMBERS_BUCKET, 1),
    ] {
        if jetstream.get_key_value(bucket).await.is_ok() {
            continue;
        }
        let config = kv::Config {
            bucket: bucket.to_owned(),
            history,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        if let Err(error) = jetstream.create_key_value(config).await {
            // Another service may have created it between the lookup and the creation.
            if jetstream.get_key_value(bucket).await.is_err() {
                return Err(Error::CreateBucket {
                    bucket: bucket.to_owned(),
                    message: error.to_string(),
                });
            }
        }
        debug!(bucket, "bucket ready");
    }
    Ok(())
}

/// Durable pull consumer that a service reads a stream through. Replicas of one service share
/// the durable name, so each message goes to one of them.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub stream: &'static str,
    pub durable: String,
    pub filter_subject: String,
    /// Time a delivered message may stay unacknowledged before JetStream redelivers it.
    pub ack_wait: Duration,
    /// Deliveries after which JetStream gives up on a message and emits an advisory.
    pub max_deliver: i64,
}

impl ConsumerSpec {
    /// Creates a spec with the defaults the services use: all subjects of the stream, a 30 s ack
    /// wait and at most 10 deliveries.
    pub fn new(
        stream: &'static str,
        durable: impl Into<String>,
        filter_subject: impl Into<String>,
    ) -> Self {
        Self {
            stream,
            durable: durable.into(),
            filter_subject: filter_subject.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
        }
    }

    pub(crate) async fn create(
        &self,
        jetstream: &jetstream::Context,
    ) -> Result<consumer::Consumer<consumer::pull::Config>> {
        let error = |message: String| Error::CreateConsumer {
            stream: self.stream.to_owned(),
            consumer: self.durable.clone(),
            message,
        };
        let stream = jetstream
            .get_stream(self.stream)
            .await
            .map_err(|e| error(e.to_string()))?;
        let config = consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter_subject.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&self.durable, config)
            .await
            .map_err(|e| error(e.to_string()))
    }
}
