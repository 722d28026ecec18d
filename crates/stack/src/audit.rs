//! Following the audited streams: every fault, command, outcome and injection as it is stored,
//! through ordered consumers that leave no state on the server.

use std::pin::Pin;

use aro_bus::async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use aro_bus::{Bus, subjects};
use aro_proto::v1;
use futures::{Stream, StreamExt, stream};
use prost::Message;
use tracing::warn;

use crate::{Error, Result};

/// One audited event.
#[derive(Clone, Debug)]
pub enum AuditEvent {
    Fault(v1::FaultEvent),
    Command(v1::Command),
    /// A command recorded in observe mode or proposed in propose mode, not carried out.
    Decision(v1::Command),
    Outcome(v1::Outcome),
    Chaos(v1::ChaosEvent),
    Signal(v1::Signal),
}

impl AuditEvent {
    /// Id of the event.
    pub fn id(&self) -> &str {
        match self {
            AuditEvent::Fault(event) => &event.id,
            AuditEvent::Command(event) | AuditEvent::Decision(event) => &event.id,
            AuditEvent::Outcome(event) => &event.id,
            AuditEvent::Chaos(event) => &event.id,
            AuditEvent::Signal(event) => &event.id,
        }
    }

    /// Incident the event belongs to; empty for injections and signals.
    pub fn incident_id(&self) -> &str {
        match self {
            AuditEvent::Fault(event) => &event.incident_id,
            AuditEvent::Command(event) | AuditEvent::Decision(event) => &event.incident_id,
            AuditEvent::Outcome(event) => &event.incident_id,
            AuditEvent::Chaos(_) | AuditEvent::Signal(_) => "",
        }
    }
}

/// An audited event with where it was stored.
#[derive(Clone, Debug)]
pub struct Audited {
    pub stream: &'static str,
    pub subject: String,
    pub stream_sequence: u64,
    pub event: AuditEvent,
}

type Events = Pin<Box<dyn Stream<Item = Audited> + Send>>;

/// Follows the faults, commands, decisions, outcomes and chaos streams (and the signals stream when
/// `signals` is set), from their first stored message when `from_start` is set, otherwise from
/// now on. Undecodable messages are logged and skipped.
///
/// # Errors
///
/// Returns an error when a stream does not exist or a consumer cannot be created.
pub async fn follow(bus: &Bus, from_start: bool, signals: bool) -> Result<Events> {
    let mut streams = vec![
        subjects::FAULTS_STREAM,
        subjects::COMMANDS_STREAM,
        subjects::OUTCOMES_STREAM,
        subjects::CHAOS_STREAM,
        subjects::DECISIONS_STREAM,
    ];
    if signals {
        streams.push(subjects::SIGNALS_STREAM);
    }
    let mut followed: Vec<Events> = Vec::new();
    for name in streams {
        let create = |message: String| {
            Error::Bus(aro_bus::Error::CreateConsumer {
                stream: name.to_owned(),
                consumer: "ordered".to_owned(),
                message,
            })
        };
        let stream = bus
            .jetstream()
            .get_stream(name)
            .await
            .map_err(|e| create(e.to_string()))?;
        let config = OrderedConfig {
            deliver_policy: if from_start {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            ..Default::default()
        };
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| create(e.to_string()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| create(e.to_string()))?;
        followed.push(Box::pin(messages.filter_map(move |message| async move {
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    warn!(stream = name, %error, "audit stream error");
                    return None;
                }
            };
            let sequence = message
                .info()
                .map(|info| info.stream_sequence)
                .unwrap_or_default();
            let payload = message.payload.clone();
            let event = match name {
                subjects::FAULTS_STREAM => v1::FaultEvent::decode(payload).map(AuditEvent::Fault),
                subjects::COMMANDS_STREAM => v1::Command::decode(payload).map(AuditEvent::Command),
                subjects::OUTCOMES_STREAM => v1::Outcome::decode(payload).map(AuditEvent::Outcome),
                subjects::CHAOS_STREAM => v1::ChaosEvent::decode(payload).map(AuditEvent::Chaos),
                subjects::DECISIONS_STREAM => {
                    v1::Command::decode(payload).map(AuditEvent::Decision)
                }
                _ => v1::Signal::decode(payload).map(AuditEvent::Signal),
            };
            match event {
                Ok(event) => Some(Audited {
                    stream: name,
                    subject: message.subject.to_string(),
                    stream_sequence: sequence,
                    event,
                }),
                Err(error) => {
                    warn!(stream = name, sequence, %error, "undecodable audit message skipped");
                    None
                }
            }
        })));
    }
    Ok(Box::pin(stream::select_all(followed)))
}
