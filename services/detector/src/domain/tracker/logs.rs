//! Log anomalies: which instances' lines are scored, and the fault an anomaly raises.

use std::collections::BTreeSet;
use std::time::SystemTime;

use aro_logmine::Anomaly;
use aro_proto::v1::{FaultEvent, FaultKind, InstanceState};

use super::Tracker;
use super::classify::Finding;
use crate::domain::{InstanceKey, Moment, evidence};

/// Source of a log line, as the tracker classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// A watched generation, starting or serving: the line is scored.
    Watched,
    /// An instance that the registry does not list.
    Unknown,
    /// A quarantined instance.
    Isolated,
    /// An instance that stopped or exited.
    Stopped,
}

impl LogSource {
    /// Returns the label of the source in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Watched => "watched",
            Self::Unknown => "unknown",
            Self::Isolated => "isolated",
            Self::Stopped => "stopped",
        }
    }
}

impl Tracker {
    /// Tells whether the lines of `key` are scored, and if not, why.
    pub fn log_source(&self, key: &InstanceKey) -> LogSource {
        match self.instances.get(key) {
            None => LogSource::Unknown,
            Some(tracked) if tracked.watch.is_some() => LogSource::Watched,
            Some(tracked) if tracked.entry.state() == InstanceState::Isolated => {
                LogSource::Isolated
            }
            Some(_) => LogSource::Stopped,
        }
    }

    /// Raises LOG_ANOMALY for the watched generation of `key` when it serves. Anomalies of a
    /// starting instance raise nothing: start-up often logs errors that the deployer's start
    /// timeout already judges. `observed_at` is when the line that raised the anomaly arrived.
    pub fn log_anomaly(
        &mut self,
        key: &InstanceKey,
        anomaly: &Anomaly,
        observed_at: SystemTime,
        now: Moment,
    ) -> Option<FaultEvent> {
        let generation = self.instances.get(key)?.watch.as_ref()?.generation;
        let finding = Finding {
            kind: FaultKind::LogAnomaly,
            generation,
            observed_at,
            evidence: evidence::log_anomaly(anomaly, observed_at),
            recent_exits: 0,
            suspicion: 0.0,
        };
        self.raise_for_watched(key, finding, true, now)
    }

    /// Workloads with at least one watched instance.
    pub fn watched_workloads(&self) -> BTreeSet<String> {
        self.instances
            .iter()
            .filter(|(_, tracked)| tracked.watch.is_some())
            .map(|(key, _)| key.workload.clone())
            .collect()
    }
}
