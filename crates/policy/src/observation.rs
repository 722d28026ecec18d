//! Inputs of the brain's decision on an incident.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionSet};
use crate::fault::FaultKind;

/// Everything the brain has at hand when it chooses the next action of an incident.
///
/// Counts and durations are taken as they are. [`Observation::features`] clips them into the
/// ranges that `models/features.json` declares, so odd values (a negative age from clock skew,
/// a NaN suspicion) never reach the model unchecked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Kind of the fault that the detector classified, the latest one in this incident.
    pub fault: FaultKind,
    /// Exits of the target instance within the detector's crash-loop window, the latest
    /// included; 0 when the instance did not exit (a hang, an unhealthy probe).
    #[serde(default)]
    pub recent_exits: u32,
    /// Seconds since the last deploy (rollout, rollback) of the workload; `None` when unknown.
    #[serde(default)]
    pub since_deploy_secs: Option<f32>,
    /// Seconds the target instance ran before this fault; `None` when unknown.
    #[serde(default)]
    pub uptime_secs: Option<f32>,
    /// Serving instances of the workload, the target excluded.
    #[serde(default)]
    pub healthy_replicas: u32,
    /// Desired number of replicas of the workload.
    #[serde(default)]
    pub desired_replicas: u32,
    /// Number of this decision in the incident: 1 for the first, one more per later decision.
    pub attempt: u32,
    /// Action of the previous decision in this incident; `None` for the first decision.
    #[serde(default)]
    pub previous_action: Option<Action>,
    /// True when the previous action ran and the fault persisted. False when there was no
    /// previous action, or when it recovered the target and the fault came back (a relapse).
    #[serde(default)]
    pub previous_failed: bool,
    /// Actions already taken in this incident, the previous one included.
    #[serde(default)]
    pub tried: ActionSet,
    /// Seconds since the incident opened.
    #[serde(default)]
    pub incident_age_secs: f32,
    /// Suspicion level (phi) when a hang was declared, otherwise 0.
    #[serde(default)]
    pub suspicion: f32,
    /// Exit status when the instance exited on its own.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Number of the signal that ended the instance.
    #[serde(default)]
    pub signal: Option<i32>,
    /// True when the kernel's out-of-memory killer ended the instance.
    #[serde(default)]
    pub oom_killed: bool,
    /// Faults of other instances on the target's node within the detector's window. Several
    /// workloads failing on one node point at the node.
    #[serde(default)]
    pub node_peer_faults: u32,
    /// Faults of other instances of the same workload within the detector's window. Replicas
    /// failing together point at a release, a dependency or the load.
    #[serde(default)]
    pub workload_peer_faults: u32,
    /// True when the workload has a previous version to roll back to.
    #[serde(default)]
    pub rollback_available: bool,
}

impl Observation {
    /// Observation for the first decision on a fault, with nothing else known.
    pub fn new(fault: FaultKind) -> Self {
        Observation {
            fault,
            recent_exits: 0,
            since_deploy_secs: None,
            uptime_secs: None,
            healthy_replicas: 0,
            desired_replicas: 1,
            attempt: 1,
            previous_action: None,
            previous_failed: false,
            tried: ActionSet::EMPTY,
            incident_age_secs: 0.0,
            suspicion: 0.0,
            exit_code: None,
            signal: None,
            oom_killed: false,
            node_peer_faults: 0,
            workload_peer_faults: 0,
            rollback_available: false,
        }
    }

    /// True when no other instance of the workload serves.
    pub fn is_last_replica(&self) -> bool {
        self.healthy_replicas == 0
    }
}
