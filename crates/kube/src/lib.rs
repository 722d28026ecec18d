//! The Kubernetes runtime: watches the pods of workloads that opt in, turns their container
//! statuses into runtime signals, and recovers them through leases, evictions, relabelling,
//! rollbacks and cordons.

pub mod actions;
mod clock;
pub mod commands;
mod conflict;
pub mod digest;
mod error;
pub mod labels;
pub mod lease;
pub mod logs;
pub mod pods;
pub mod status;
pub mod watch;

pub use actions::{Actuator, Settings};
pub use clock::Clock;
pub use error::{Error, Result};
pub use lease::{LeaseKey, Leases};

pub use k8s_openapi;
pub use kube;
