//! The detector's logic, free of I/O: phi accrual suspicion, instance tracking from the
//! registry, fault classification and incident joining. Every operation takes the current
//! time as a value, so tests drive time by hand.

mod config;
mod evidence;
mod exits;
pub mod ids;
mod incidents;
mod moment;
pub mod phi;
mod probe_spec;
mod tracker;
mod watch;

pub use config::{ConfigError, DetectorConfig};
pub use ids::InstanceKey;
pub use moment::Moment;
pub use probe_spec::{ProbeSpec, ProbeTarget};
pub use tracker::{Ignored, SignalVerdict, Tracker, TrackerError, WatchEvent};
pub use watch::ProbeOutcome;
