//! Hidden root causes of simulated faults.

use serde::{Deserialize, Serialize};

/// Root cause of a simulated fault, hidden from the policy and given to the oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootCause {
    /// A one-off crash or a deadlock; the same instance runs again after a restart.
    Transient,
    /// The release deployed last is broken.
    BadRelease,
    /// The executable or its data on the node is corrupt.
    CorruptArtifact,
    /// The node under the instance is failing (disk, kernel, network).
    NodeProblem,
    /// A dependency of the workload is down; it comes back by itself.
    DependencyOutage,
    /// Memory grows until the instance runs out of it.
    MemoryLeak,
    /// More load than the replicas can serve.
    Overload,
    /// The health check fails now and then while the instance mostly serves.
    Flapping,
}

impl RootCause {
    /// Every cause.
    pub const ALL: [RootCause; 8] = [
        RootCause::Transient,
        RootCause::BadRelease,
        RootCause::CorruptArtifact,
        RootCause::NodeProblem,
        RootCause::DependencyOutage,
        RootCause::MemoryLeak,
        RootCause::Overload,
        RootCause::Flapping,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RootCause::Transient => "transient",
            RootCause::BadRelease => "bad_release",
            RootCause::CorruptArtifact => "corrupt_artifact",
            RootCause::NodeProblem => "node_problem",
            RootCause::DependencyOutage => "dependency_outage",
            RootCause::MemoryLeak => "memory_leak",
            RootCause::Overload => "overload",
            RootCause::Flapping => "flapping",
        }
    }
}

crate::impl_names!(RootCause, "root cause");
