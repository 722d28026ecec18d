//! The detector service: it watches the instances in the registry through pushed heartbeats,
//! probes and runtime signals, and publishes a fault event when one crashes, hangs or fails
//! its health check.

pub mod domain;
mod grpc;
mod metrics;
mod probe;
mod publisher;
mod registry;
pub mod runtime;
mod signals;
mod watcher;
