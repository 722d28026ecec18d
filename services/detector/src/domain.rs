//! The detector's logic, free of I/O: phi accrual suspicion, instance tracking from the
//! registry, fault classification and incident joining, the majority rule over data
//! checksums, memory trends and the pacing of hashing. Every operation takes the current time
//! as a value, so tests drive time by hand.

mod checksum;
mod config;
mod digest;
mod evidence;
mod exits;
mod heartbeat_report;
pub mod ids;
mod incidents;
mod log_scorers;
mod majority;
mod memory;
mod moment;
pub mod phi;
mod probe_spec;
mod token_bucket;
mod tracker;
mod watch;

pub use checksum::{ChecksumMismatch, ChecksumSubject, Observed};
pub use config::{ConfigError, DetectorConfig};
pub(crate) use digest::quote;
pub use digest::{Digest, DigestError};
pub use heartbeat_report::{HeartbeatReport, ReportError};
pub use ids::InstanceKey;
pub use log_scorers::WorkloadScorers;
pub use memory::{MemorySettings, MemorySource};
pub use moment::Moment;
pub use probe_spec::{ProbeSpec, ProbeTarget};
pub use token_bucket::TokenBucket;
pub use tracker::{
    DataSetTally, Ignored, LogSource, MemoryVerdict, ReportVerdict, SignalVerdict, Tracker,
    TrackerError, WatchEvent,
};
pub use watch::ProbeOutcome;
