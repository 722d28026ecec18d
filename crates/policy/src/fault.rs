//! Kinds of classified failures.

use serde::{Deserialize, Serialize};

/// Kind of a classified failure, in the order of `aro.v1.FaultKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The process or container exited without being asked to.
    Crash,
    /// The instance exited again soon after an earlier exit or restart.
    CrashLoop,
    /// The instance is alive but stopped answering heartbeats or probes.
    Hang,
    /// The health check answers, but with a failure.
    Unhealthy,
    /// The instance's log stream shows new error templates or bursts.
    LogAnomaly,
    /// An artifact, declared file or data checksum differs from the expected digest.
    ChecksumMismatch,
    /// Memory, disk or another resource is running out.
    ResourceExhaustion,
    /// A dependency of the instance is failing, not the instance itself.
    DependencyFailure,
}

/// Number of fault kinds.
pub const N_FAULT_KINDS: usize = 8;

impl FaultKind {
    /// Every fault kind, in proto order.
    pub const ALL: [FaultKind; N_FAULT_KINDS] = [
        FaultKind::Crash,
        FaultKind::CrashLoop,
        FaultKind::Hang,
        FaultKind::Unhealthy,
        FaultKind::LogAnomaly,
        FaultKind::ChecksumMismatch,
        FaultKind::ResourceExhaustion,
        FaultKind::DependencyFailure,
    ];

    /// Position of this kind in [`FaultKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Value of this kind in the `aro.v1.FaultKind` proto enum.
    pub fn proto_value(self) -> i32 {
        // The enum has eight variants, so the cast cannot truncate.
        self as i32 + 1
    }

    /// Kind for an `aro.v1.FaultKind` proto value, or `None` for `FAULT_KIND_UNSPECIFIED` and
    /// unknown values.
    pub fn from_proto_value(value: i32) -> Option<FaultKind> {
        let index = usize::try_from(value).ok()?.checked_sub(1)?;
        FaultKind::ALL.get(index).copied()
    }

    /// Snake-case name, as in `features.json` and the simulator protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::CrashLoop => "crash_loop",
            FaultKind::Hang => "hang",
            FaultKind::Unhealthy => "unhealthy",
            FaultKind::LogAnomaly => "log_anomaly",
            FaultKind::ChecksumMismatch => "checksum_mismatch",
            FaultKind::ResourceExhaustion => "resource_exhaustion",
            FaultKind::DependencyFailure => "dependency_failure",
        }
    }
}

crate::impl_names!(FaultKind, "fault kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_name_is_rejected_with_value() {
        let err = "meltdown"
            .parse::<FaultKind>()
            .expect_err("meltdown is no fault kind");
        assert_eq!(err.to_string(), "unknown fault kind \"meltdown\"");
    }

    #[test]
    fn proto_values_round_trip() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::from_proto_value(kind.proto_value()), Some(kind));
        }
        assert_eq!(FaultKind::Crash.proto_value(), 1);
        assert_eq!(FaultKind::DependencyFailure.proto_value(), 8);
        assert_eq!(FaultKind::from_proto_value(0), None);
        assert_eq!(FaultKind::from_proto_value(9), None);
    }

    #[test]
    fn serde_matches_as_str() {
        for kind in FaultKind::ALL {
            let json = serde_json::to_string(&kind).expect("serialize fault kind");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
