//! Checksum mismatches: artifacts and declared files that the integrity checks hash, and data
//! checksums that replicas report in their heartbeats, where the odd one out is corrupt.

use std::collections::{BTreeMap, BTreeSet};

use aro_proto::v1::{FaultEvent, FaultKind, Instance, InstanceState};

use super::Tracker;
use super::classify::Finding;
use crate::domain::checksum::{ChecksumMismatch, ChecksumSubject, Observed};
use crate::domain::majority::strict_majority;
use crate::domain::{Digest, InstanceKey, Moment, evidence};

/// Counts of how the data sets of one heartbeat compared with the other serving replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataSetTally {
    /// Data sets whose checksum a strict majority shares.
    pub matched: u32,
    /// Data sets whose checksum differs from a strict majority.
    pub mismatched: u32,
    /// Data sets without a strict majority, or that no other serving replica reports.
    pub undecided: u32,
}

/// Data sets of a workload compared across its serving replicas.
#[derive(Default)]
struct Comparison {
    /// Data sets whose checksum a strict majority shares.
    decided: BTreeSet<String>,
    /// Per replica, the data sets on which it differs from that majority.
    disagreements: BTreeMap<InstanceKey, BTreeMap<String, Disagreement>>,
}

/// A data set on which one replica differs from a strict majority.
struct Disagreement {
    expected: Digest,
    actual: Digest,
    agreeing: usize,
    reporting: usize,
}

impl Tracker {
    /// Returns a copy of the registry entry of the watched `generation` of `key`, and whether
    /// that generation already raised a fault. Returns `None` once it is no longer watched.
    pub fn watched_entry(&self, key: &InstanceKey, generation: u64) -> Option<(Instance, bool)> {
        let tracked = self.instances.get(key)?;
        tracked
            .watch
            .as_ref()
            .filter(|watch| watch.generation == generation)?;
        Some((tracked.entry.clone(), tracked.faulted(generation)))
    }

    /// Raises CHECKSUM_MISMATCH for an artifact or a declared file of the watched
    /// `generation`, whether it is starting or serving: a wrong digest needs no warm-up to be
    /// certain.
    pub fn checksum_mismatch(
        &mut self,
        key: &InstanceKey,
        generation: u64,
        mismatch: &ChecksumMismatch,
        now: Moment,
    ) -> Option<FaultEvent> {
        let finding = Finding {
            kind: FaultKind::ChecksumMismatch,
            generation,
            observed_at: now.wall,
            evidence: evidence::checksum(mismatch, now.wall),
            recent_exits: 0,
            suspicion: 0.0,
        };
        self.raise_for_watched(key, finding, false, now)
    }

    /// Stores the data checksums that the watched generation of `key` reported, then compares
    /// every data set across the serving replicas of its workload. A serving replica whose
    /// checksum differs from a strict majority for `data_checksum_confirm` raises
    /// CHECKSUM_MISMATCH. Returns those faults, which may be about other replicas than `key`,
    /// and how `key`'s data sets compared.
    pub(super) fn record_data_checksums(
        &mut self,
        key: &InstanceKey,
        checksums: &BTreeMap<String, Digest>,
        now: Moment,
    ) -> (Vec<FaultEvent>, DataSetTally) {
        let Some(watch) = self
            .instances
            .get_mut(key)
            .and_then(|tracked| tracked.watch.as_mut())
        else {
            return (Vec::new(), DataSetTally::default());
        };
        if watch.data_checksums != *checksums {
            watch.data_checksums = checksums.clone();
        }
        let comparison = self.compare(&key.workload);
        let tally = tally(key, checksums, &comparison);
        let mut disagreements = comparison.disagreements;

        let confirm = self.config.data_checksum_confirm;
        let mut findings = Vec::new();
        let workload = key.workload.as_str();
        for (peer, tracked) in self
            .instances
            .range_mut(InstanceKey::new(workload, "")..)
            .take_while(|(peer, _)| peer.workload == workload)
        {
            let Some(watch) = tracked.watch.as_mut() else {
                continue;
            };
            let found = disagreements.remove(peer).unwrap_or_default();
            watch
                .minority_since
                .retain(|name, _| found.contains_key(name));
            for (name, disagreement) in found {
                let since = *watch.minority_since.entry(name.clone()).or_insert(now);
                if now.monotonic.saturating_duration_since(since.monotonic) >= confirm {
                    findings.push((peer.clone(), watch.generation, since, name, disagreement));
                }
            }
        }

        let mut faults = Vec::new();
        for (peer, generation, since, name, disagreement) in findings {
            let mismatch = ChecksumMismatch {
                subject: ChecksumSubject::DataSet {
                    name,
                    agreeing: disagreement.agreeing,
                    reporting: disagreement.reporting,
                },
                expected: disagreement.expected,
                actual: Observed::Digest(disagreement.actual),
            };
            let finding = Finding {
                kind: FaultKind::ChecksumMismatch,
                generation,
                observed_at: since.wall,
                evidence: evidence::checksum(&mismatch, since.wall),
                recent_exits: 0,
                suspicion: 0.0,
            };
            faults.extend(self.raise_for_watched(&peer, finding, true, now));
        }
        (faults, tally)
    }

    /// Data checksums of the serving, watched replicas of `workload`, by data set.
    fn data_reports(&self, workload: &str) -> BTreeMap<&str, Vec<(&InstanceKey, &Digest)>> {
        let mut reports: BTreeMap<&str, Vec<(&InstanceKey, &Digest)>> = BTreeMap::new();
        for (key, tracked) in self
            .instances
            .range(InstanceKey::new(workload, "")..)
            .take_while(|(key, _)| key.workload == workload)
        {
            let Some(watch) = tracked.watch.as_ref() else {
                continue;
            };
            if tracked.entry.state() != InstanceState::Serving {
                continue;
            }
            for (name, digest) in &watch.data_checksums {
                reports.entry(name).or_default().push((key, digest));
            }
        }
        reports
    }

    /// Compares every data set of `workload` across its serving replicas.
    fn compare(&self, workload: &str) -> Comparison {
        let mut comparison = Comparison::default();
        for (name, reports) in self.data_reports(workload) {
            let digests: Vec<&Digest> = reports.iter().map(|(_, digest)| *digest).collect();
            let Some(majority) = strict_majority(&digests) else {
                continue;
            };
            comparison.decided.insert(name.to_owned());
            for (key, digest) in reports {
                if digest == majority.value {
                    continue;
                }
                comparison
                    .disagreements
                    .entry(key.clone())
                    .or_default()
                    .insert(
                        name.to_owned(),
                        Disagreement {
                            expected: majority.value.clone(),
                            actual: digest.clone(),
                            agreeing: majority.agreeing,
                            reporting: majority.reporting,
                        },
                    );
            }
        }
        comparison
    }
}

/// Counts how `key`'s reported data sets compared.
fn tally(
    key: &InstanceKey,
    checksums: &BTreeMap<String, Digest>,
    comparison: &Comparison,
) -> DataSetTally {
    let mut tally = DataSetTally::default();
    let own = comparison.disagreements.get(key);
    for name in checksums.keys() {
        if own.is_some_and(|own| own.contains_key(name)) {
            tally.mismatched += 1;
        } else if comparison.decided.contains(name) {
            tally.matched += 1;
        } else {
            tally.undecided += 1;
        }
    }
    tally
}
