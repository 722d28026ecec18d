//! Data checksums and resident memory that a heartbeat reports besides liveness.

use aro_proto::v1::FaultEvent;

use super::Tracker;
pub use super::checksums::DataSetTally;
use crate::domain::{HeartbeatReport, InstanceKey, MemorySource, Moment};

/// Outcome of a heartbeat's report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportVerdict {
    /// Faults raised, about the sender or, for data checksums, about another replica.
    pub faults: Vec<FaultEvent>,
    /// Resident memory as a share of the sender's limit, when both are known.
    pub memory_fraction: Option<f64>,
    pub data_sets: DataSetTally,
}

impl Tracker {
    /// Records the report of a heartbeat of the watched instance `key`: its data checksums
    /// are compared across the serving replicas of its workload, its resident memory against
    /// its limit. Does nothing for an instance that is not watched.
    pub fn heartbeat_report(
        &mut self,
        key: &InstanceKey,
        report: &HeartbeatReport,
        now: Moment,
    ) -> ReportVerdict {
        let Some(generation) = self
            .instances
            .get(key)
            .and_then(|tracked| tracked.watch.as_ref())
            .map(|watch| watch.generation)
        else {
            return ReportVerdict::default();
        };
        let mut verdict = ReportVerdict::default();
        if !report.data_checksums.is_empty() {
            let (faults, tally) = self.record_data_checksums(key, &report.data_checksums, now);
            verdict.faults = faults;
            verdict.data_sets = tally;
        }
        if let Some(bytes) = report.rss_bytes {
            let memory = self.memory_sample(key, generation, bytes, MemorySource::Heartbeat, now);
            verdict.memory_fraction = memory.fraction;
            verdict.faults.extend(memory.fault);
        }
        verdict
    }
}
