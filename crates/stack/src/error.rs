use std::path::PathBuf;

/// Errors of starting and stopping a local stack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "nats-server not found: set ARO_NATS_SERVER, run `make setup` (installs it into .venv), or install Debian's nats-server"
    )]
    NatsServerNotFound,
    #[error("failed to start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {seconds} s; its log is {log}")]
    NotReady {
        what: String,
        seconds: u64,
        log: PathBuf,
    },
    #[error("{what} exited during start-up with {status}; its log is {log}")]
    Exited {
        what: String,
        status: String,
        log: PathBuf,
    },
    #[error("{operation} failed: {source}")]
    Io {
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bus(#[from] aro_bus::Error),
    #[error("gRPC call {call} failed: {status}")]
    Grpc {
        call: &'static str,
        status: tonic::Status,
    },
}

/// Result of stack operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
