//! The detector service. It watches the instances in the registry through pushed heartbeats,
//! probes, runtime signals, log lines, checksums and memory. It publishes a fault event when
//! one crashes, hangs, fails its health check, logs anomalies, changes its bytes or runs out
//! of memory.

pub mod domain;
mod grpc;
mod integrity;
pub mod kubernetes;
mod log_limit;
mod logs;
mod metrics;
mod probe;
mod publisher;
mod registry;
pub mod runtime;
mod signals;
mod watcher;
