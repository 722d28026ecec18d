//! Online log-template mining and log anomaly scoring.

mod cluster;
mod config;
mod hash;
mod mask;
mod miner;
mod store;
mod tokens;
mod tree;

pub use config::{ConfigError, MinerConfig};
pub use mask::WILDCARD;
pub use miner::{Match, Miner, MinerStats, Template, TemplateId};
