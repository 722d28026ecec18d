//! Online log-template mining and log anomaly scoring.
//!
//! [`Miner`] assigns each log line to a template, a line with its variable parts masked as
//! `<*>`, in the manner of Drain. [`Scorer`] runs a miner over the lines of one workload's
//! instances and raises an [`Anomaly`] for new error-like templates, bursts of a template and
//! templates seen on one instance only. Both are pure domain logic: no I/O, no clock.
//!
//! ```
//! use aro_logmine::{Miner, MinerConfig};
//!
//! let mut miner = Miner::new(MinerConfig::default())?;
//! let first = miner.add("Received block blk_-42 of size 67108864 from /10.0.0.1").template_id;
//! let second = miner.add("Received block blk_77 of size 3 from /10.0.0.2");
//! assert_eq!(second.template_id, first);
//! assert_eq!(second.template, "Received block blk_<*> of size <*> from /<*>");
//! # Ok::<(), aro_logmine::ConfigError>(())
//! ```

mod accuracy;
mod cluster;
mod config;
mod hash;
mod mask;
mod miner;
mod scorer;
mod store;
mod tokens;
mod tree;

pub use accuracy::group_accuracy;
pub use config::{ConfigError, MinerConfig};
pub use mask::WILDCARD;
pub use miner::{Match, Miner, MinerStats, Template, TemplateId};
pub use scorer::{
    Anomaly, AnomalyReason, AnomalyTemplate, DEFAULT_ERROR_STEMS, Observation, Scorer,
    ScorerConfig, ScorerStats,
};
