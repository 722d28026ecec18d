//! The confusion table of the classification benchmark: each injected fault kind against the
//! fault kind of the first fault event that followed it.

use std::collections::HashMap;
use std::fmt::Write as _;

use aro_proto::v1::{ChaosKind, FaultKind};

/// Injected kinds, rows of the table, in the order the benchmark injects them.
pub(super) const INJECTED: [ChaosKind; 8] = [
    ChaosKind::Kill,
    ChaosKind::Hang,
    ChaosKind::CrashLoop,
    ChaosKind::CorruptFile,
    ChaosKind::LogStorm,
    ChaosKind::StopHeartbeats,
    ChaosKind::GrowMemory,
    ChaosKind::CorruptData,
];

/// Detected kinds, columns of the table: every fault kind, then nothing detected.
const DETECTED: [Option<FaultKind>; 9] = [
    Some(FaultKind::Crash),
    Some(FaultKind::CrashLoop),
    Some(FaultKind::Hang),
    Some(FaultKind::Unhealthy),
    Some(FaultKind::LogAnomaly),
    Some(FaultKind::ChecksumMismatch),
    Some(FaultKind::ResourceExhaustion),
    Some(FaultKind::DependencyFailure),
    None,
];

/// Returns whether `detected` is the right classification of an injected `kind`.
///
/// A crash loop counts as right when detected as a crash or as a crash loop. Its first kill
/// is an unexpected exit like any crash. The detector calls an exit a crash loop only when the
/// same instance id already exited unexpectedly within its crash-loop window, so the label of
/// the first fault depends on the instance's history, not on the injection.
pub(super) fn is_correct(kind: ChaosKind, detected: Option<FaultKind>) -> bool {
    let Some(detected) = detected else {
        return false;
    };
    match kind {
        ChaosKind::Kill => detected == FaultKind::Crash,
        ChaosKind::CrashLoop => matches!(detected, FaultKind::Crash | FaultKind::CrashLoop),
        ChaosKind::Hang | ChaosKind::StopHeartbeats => detected == FaultKind::Hang,
        ChaosKind::CorruptFile | ChaosKind::CorruptData => detected == FaultKind::ChecksumMismatch,
        ChaosKind::LogStorm => detected == FaultKind::LogAnomaly,
        ChaosKind::GrowMemory => detected == FaultKind::ResourceExhaustion,
        ChaosKind::Partition => matches!(detected, FaultKind::Hang | FaultKind::Unhealthy),
        ChaosKind::Unspecified => false,
    }
}

/// Name of an injected kind in the table.
pub(super) fn injected_name(kind: ChaosKind) -> &'static str {
    match kind {
        ChaosKind::Kill => "kill",
        ChaosKind::Hang => "hang",
        ChaosKind::CrashLoop => "crash loop",
        ChaosKind::CorruptFile => "corrupt file",
        ChaosKind::LogStorm => "log storm",
        ChaosKind::StopHeartbeats => "stop heartbeats",
        ChaosKind::GrowMemory => "grow memory",
        ChaosKind::CorruptData => "corrupt data",
        ChaosKind::Partition => "partition",
        ChaosKind::Unspecified => "unspecified",
    }
}

/// Name of a detected kind: the fault kind in snake case, or `none`.
pub(super) fn detected_name(kind: Option<FaultKind>) -> &'static str {
    match kind {
        None => "none",
        Some(FaultKind::Crash) => "crash",
        Some(FaultKind::CrashLoop) => "crash_loop",
        Some(FaultKind::Hang) => "hang",
        Some(FaultKind::Unhealthy) => "unhealthy",
        Some(FaultKind::LogAnomaly) => "log_anomaly",
        Some(FaultKind::ChecksumMismatch) => "checksum_mismatch",
        Some(FaultKind::ResourceExhaustion) => "resource_exhaustion",
        Some(FaultKind::DependencyFailure) => "dependency_failure",
        Some(FaultKind::Unspecified) => "unspecified",
    }
}

/// Column header of a detected kind, short enough for one table line.
fn header(kind: Option<FaultKind>) -> &'static str {
    match kind {
        Some(FaultKind::LogAnomaly) => "log",
        Some(FaultKind::ChecksumMismatch) => "checksum",
        Some(FaultKind::ResourceExhaustion) => "resource",
        Some(FaultKind::DependencyFailure) => "dependency",
        other => detected_name(other),
    }
}

/// Full names of the shortened column headers.
pub(super) const LEGEND: &str = "log = log_anomaly, checksum = checksum_mismatch, \
     resource = resource_exhaustion, dependency = dependency_failure, \
     none = no fault within the timeout";

/// Counts of (injected kind, detected kind).
#[derive(Debug, Default)]
pub(super) struct Confusion {
    counts: HashMap<(ChaosKind, Option<FaultKind>), usize>,
}

impl Confusion {
    pub(super) fn record(&mut self, injected: ChaosKind, detected: Option<FaultKind>) {
        *self.counts.entry((injected, detected)).or_default() += 1;
    }

    fn count(&self, injected: ChaosKind, detected: Option<FaultKind>) -> usize {
        self.counts.get(&(injected, detected)).copied().unwrap_or(0)
    }

    /// Injections recorded.
    pub(super) fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// Injections whose detected kind is right.
    pub(super) fn correct(&self) -> usize {
        self.counts
            .iter()
            .filter(|((injected, detected), _)| is_correct(*injected, *detected))
            .map(|(_, count)| count)
            .sum()
    }

    /// Share of right classifications, from 0 to 1; `None` before the first injection.
    pub(super) fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.correct() as f64 / total as f64)
    }

    /// Renders the table: one row per injected kind, one column per detected kind, then the
    /// right ones of the row. [`LEGEND`] explains the shortened column headers.
    pub(super) fn render(&self) -> String {
        let mut table = format!("{:<16}", "injected");
        for detected in DETECTED {
            let _ = write!(table, " {:>10}", header(detected));
        }
        table.push_str("    right\n");
        for injected in INJECTED {
            let row_total: usize = DETECTED.iter().map(|d| self.count(injected, *d)).sum();
            let _ = write!(table, "{:<16}", injected_name(injected));
            for detected in DETECTED {
                let _ = write!(table, " {:>10}", self.count(injected, detected));
            }
            let right: usize = DETECTED
                .iter()
                .filter(|detected| is_correct(injected, **detected))
                .map(|detected| self.count(injected, *detected))
                .sum();
            let _ = writeln!(table, " {:>5}/{row_total}", right);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_kinds_are_right() {
        let right = [
            (ChaosKind::Kill, FaultKind::Crash),
            (ChaosKind::Hang, FaultKind::Hang),
            (ChaosKind::CrashLoop, FaultKind::Crash),
            (ChaosKind::CrashLoop, FaultKind::CrashLoop),
            (ChaosKind::CorruptFile, FaultKind::ChecksumMismatch),
            (ChaosKind::LogStorm, FaultKind::LogAnomaly),
            (ChaosKind::StopHeartbeats, FaultKind::Hang),
            (ChaosKind::GrowMemory, FaultKind::ResourceExhaustion),
            (ChaosKind::CorruptData, FaultKind::ChecksumMismatch),
        ];
        for (injected, detected) in right {
            assert!(
                is_correct(injected, Some(detected)),
                "{injected:?} {detected:?}"
            );
        }
    }

    #[test]
    fn other_kinds_and_none_are_wrong() {
        assert!(!is_correct(ChaosKind::Kill, Some(FaultKind::CrashLoop)));
        assert!(!is_correct(ChaosKind::GrowMemory, Some(FaultKind::Crash)));
        assert!(!is_correct(ChaosKind::LogStorm, Some(FaultKind::Hang)));
        for injected in INJECTED {
            assert!(!is_correct(injected, None), "{injected:?}");
        }
    }

    #[test]
    fn accuracy_counts_right_classifications() {
        let mut confusion = Confusion::default();
        assert_eq!(confusion.accuracy(), None);
        confusion.record(ChaosKind::Kill, Some(FaultKind::Crash));
        confusion.record(ChaosKind::CrashLoop, Some(FaultKind::CrashLoop));
        confusion.record(ChaosKind::GrowMemory, Some(FaultKind::Crash));
        confusion.record(ChaosKind::LogStorm, None);
        assert_eq!(confusion.total(), 4);
        assert_eq!(confusion.correct(), 2);
        assert_eq!(confusion.accuracy(), Some(0.5));
    }

    #[test]
    fn table_has_a_row_per_injected_kind() {
        let mut confusion = Confusion::default();
        confusion.record(ChaosKind::GrowMemory, Some(FaultKind::Crash));
        confusion.record(ChaosKind::GrowMemory, Some(FaultKind::ResourceExhaustion));
        let table = confusion.render();
        assert_eq!(table.lines().count(), 1 + INJECTED.len());
        let row = table
            .lines()
            .find(|line| line.starts_with("grow memory"))
            .expect("a grow memory row");
        assert!(row.ends_with("1/2"), "{row:?}");
        assert!(
            table
                .lines()
                .next()
                .is_some_and(|header| header.contains("none"))
        );
    }
}
