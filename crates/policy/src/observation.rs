//! Inputs of the brain's decision on an incident.

use serde::{Deserialize, Deserializer, Serialize};

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
    #[serde(default, deserialize_with = "nan_if_null")]
    pub incident_age_secs: f32,
    /// Suspicion level (phi) when a hang was declared, otherwise 0.
    #[serde(default, deserialize_with = "nan_if_null")]
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

/// Reads `null` as NaN. `serde_json` writes NaN and the infinities as `null`, so a NaN reads
/// back as it was written, and an infinity reads back as NaN (unknown).
fn nan_if_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(deserializer)?.unwrap_or(f32::NAN))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_round_trips_through_json() {
        let mut observation = Observation::new(FaultKind::Hang);
        observation.suspicion = f32::NAN;
        observation.incident_age_secs = f32::NAN;
        let json = serde_json::to_value(&observation).expect("serialize observation");
        assert_eq!(json["suspicion"], serde_json::Value::Null);
        let back: Observation = serde_json::from_value(json).expect("null reads as NaN");
        assert!(back.suspicion.is_nan());
        assert!(back.incident_age_secs.is_nan());
    }

    #[test]
    fn missing_fields_take_defaults() {
        let observation: Observation =
            serde_json::from_str(r#"{"fault":"crash","attempt":1}"#).expect("minimal observation");
        assert_eq!(observation.suspicion, 0.0);
        assert_eq!(observation.desired_replicas, 0);
        assert_eq!(observation.since_deploy_secs, None);
        assert!(observation.tried.is_empty());
    }

    #[test]
    fn null_count_is_rejected() {
        let error = serde_json::from_str::<Observation>(
            r#"{"fault":"crash","attempt":1,"recent_exits":null}"#,
        )
        .expect_err("a count is never null");
        assert!(error.to_string().contains("invalid type: null"), "{error}");
    }
}
