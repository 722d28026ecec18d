use std::time::Duration;

/// Errors of the NATS adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("failed to create stream {stream}: {message}")]
    CreateStream { stream: String, message: String },
    #[error("failed to create key-value bucket {bucket}: {message}")]
    CreateBucket { bucket: String, message: String },
    #[error("failed to create consumer {consumer} on stream {stream}: {message}")]
    CreateConsumer {
        stream: String,
        consumer: String,
        message: String,
    },
    #[error("failed to publish {id} on {subject} within {timeout:?}: {message}")]
    Publish {
        subject: String,
        id: String,
        timeout: Duration,
        message: String,
    },
    #[error("key-value operation {operation} on {key} failed: {message}")]
    KeyValue {
        operation: &'static str,
        key: String,
        message: String,
    },
    #[error("invalid value under key {key}: {message}")]
    InvalidValue { key: String, message: String },
    #[error("invalid {what} payload: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },
}

/// Result of NATS adapter operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
