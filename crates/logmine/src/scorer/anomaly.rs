//! Anomalies and their evidence, as the scorer returns them.

use std::fmt;
use std::time::Duration;

use crate::miner::TemplateId;

/// An anomaly on one instance, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The instance whose line raised the anomaly.
    pub instance: String,
    /// The time of that line, as given to the scorer.
    pub at: Duration,
    /// The cause of the anomaly.
    pub reason: AnomalyReason,
    /// The template of the line first, then the templates of anomalies suppressed on the
    /// instance during its previous cool-down (at most `max_samples` in all).
    pub templates: Vec<AnomalyTemplate>,
    /// Recent lines of the instance with the first template, oldest first, the raising line
    /// last.
    pub samples: Vec<String>,
    /// Anomalies on the instance suppressed during its previous cool-down.
    pub suppressed: u64,
}

/// The cause of an anomaly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnomalyReason {
    /// The line started a new template whose text is error-like.
    ErrorTemplate,
    /// The template's recent rate on the instance reached `burst_factor` times its baseline.
    Burst {
        /// Recent lines per second.
        rate: f64,
        /// Baseline lines per second, after the `min_baseline_rate` floor.
        baseline: f64,
    },
    /// The template appeared on this instance only, while other instances stayed healthy.
    SoloTemplate {
        /// Healthy instances that never sent the template.
        healthy_peers: usize,
    },
}

impl fmt::Display for AnomalyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ErrorTemplate => write!(f, "new error-like template"),
            Self::Burst { rate, baseline } => {
                write!(
                    f,
                    "burst of {rate:.2} lines/s against a baseline of {baseline:.2}"
                )
            }
            Self::SoloTemplate { healthy_peers } => {
                write!(
                    f,
                    "template on this instance only, {healthy_peers} healthy peers without it"
                )
            }
        }
    }
}

/// A template named in an anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyTemplate {
    /// The template's identifier.
    pub id: TemplateId,
    /// The template text when the anomaly was raised; empty if the miner evicted it.
    pub text: String,
    /// Lines assigned to the template so far, on all instances.
    pub count: u64,
}
