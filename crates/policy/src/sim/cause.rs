//! Hidden root causes of simulated faults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// Root cause of a simulated fault. The policy never sees it; the oracle does.
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

impl fmt::Display for RootCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RootCause {
    type Err = ParseError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        RootCause::ALL.into_iter().find(|cause| cause.as_str() == name).ok_or_else(|| {
            ParseError::Unknown { what: "root cause", value: name.to_owned() }
        })
    }
}
