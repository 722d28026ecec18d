//! Conversions between the protobuf events and the policy's domain types.

use aro_policy::{Action, ActionSet, FaultKind, Observation};
use aro_proto::v1;

use crate::domain::peers::PeerFaults;

/// Errors in a fault event that make it impossible to decide on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum InvalidFault {
    #[error("fault {id:?}: field {field} is missing")]
    Missing { id: String, field: &'static str },
    #[error("fault {id:?}: field {field} has invalid value {value:?}: {reason}")]
    Invalid {
        id: String,
        field: &'static str,
        value: String,
        reason: String,
    },
}

/// Checks the fields the brain relies on and returns the fault's kind, or `None` for a kind
/// this brain does not know (a newer detector may classify more kinds than it).
pub(crate) fn validate_fault(fault: &v1::FaultEvent) -> Result<Option<FaultKind>, InvalidFault> {
    let id = fault.id.clone();
    let missing = |field| InvalidFault::Missing {
        id: id.clone(),
        field,
    };
    if fault.id.is_empty() {
        return Err(missing("id"));
    }
    if fault.incident_id.is_empty() {
        return Err(missing("incident_id"));
    }
    let target = fault.target.as_ref().ok_or_else(|| missing("target"))?;
    for (field, value) in [
        ("target.workload", &target.workload),
        ("target.instance", &target.instance),
    ] {
        aro_bus::subjects::validate_name(value).map_err(|reason| InvalidFault::Invalid {
            id: id.clone(),
            field,
            value: value.clone(),
            reason,
        })?;
    }
    Ok(FaultKind::from_proto_value(fault.kind))
}

/// Builds the policy's observation for the first decision on `fault`.
pub(crate) fn observation(
    fault: &v1::FaultEvent,
    kind: FaultKind,
    peers: PeerFaults,
) -> Observation {
    let mut observation = Observation::new(kind);
    observation.workload_peer_faults = peers.workload;
    observation.node_peer_faults = peers.node;
    observation.recent_exits = fault.recent_exits;
    observation.healthy_replicas = fault.healthy_replicas;
    observation.desired_replicas = fault.desired_replicas;
    observation.attempt = 1;
    observation.suspicion = fault.suspicion as f32;
    for evidence in &fault.evidence {
        let detail = |key: &str| {
            evidence
                .details
                .get(key)
                .and_then(|value| value.parse::<i32>().ok())
        };
        if evidence.sense == "exit" {
            observation.exit_code = detail("code");
            observation.signal = detail("signal");
            observation.oom_killed = evidence
                .details
                .get("oom_killed")
                .is_some_and(|v| v == "true");
        }
        if let Some(uptime) = evidence
            .details
            .get("uptime_secs")
            .and_then(|v| v.parse().ok())
        {
            observation.uptime_secs = Some(uptime);
        }
    }
    observation
}

pub(crate) fn action_to_proto(action: Action) -> v1::Action {
    v1::Action::try_from(action.proto_value()).unwrap_or(v1::Action::Unspecified)
}

pub(crate) fn action_from_proto(action: i32) -> Option<Action> {
    Action::from_proto_value(action)
}

/// Set of actions recorded as proto values.
pub(crate) fn action_set(actions: impl IntoIterator<Item = i32>) -> ActionSet {
    let mut set = ActionSet::EMPTY;
    for action in actions.into_iter().filter_map(action_from_proto) {
        set.insert(action);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> v1::FaultEvent {
        v1::FaultEvent {
            id: "flt-web-1-g1-crash".to_owned(),
            incident_id: "inc-web-1-g1".to_owned(),
            target: Some(v1::InstanceRef {
                workload: "web".to_owned(),
                instance: "web-1".to_owned(),
                generation: 1,
                node: String::new(),
            }),
            kind: v1::FaultKind::Crash as i32,
            ..Default::default()
        }
    }

    #[test]
    fn valid_fault_passes() {
        assert_eq!(validate_fault(&fault()), Ok(Some(FaultKind::Crash)));
    }

    #[test]
    fn unknown_kind_is_valid_but_unclassified() {
        let mut fault = fault();
        fault.kind = 99;
        assert_eq!(validate_fault(&fault), Ok(None));
    }

    #[test]
    fn missing_target_is_named() {
        let mut fault = fault();
        fault.target = None;
        let error = validate_fault(&fault)
            .expect_err("a fault needs a target")
            .to_string();
        assert!(error.contains("target"), "{error}");
    }

    #[test]
    fn wildcard_workload_is_rejected() {
        let mut fault = fault();
        fault.target.as_mut().expect("set above").workload = "web.*".to_owned();
        let error = validate_fault(&fault)
            .expect_err("wildcards are not names")
            .to_string();
        assert!(
            error.contains("target.workload") && error.contains("web.*"),
            "{error}"
        );
    }

    #[test]
    fn exit_evidence_reaches_the_observation() {
        let mut fault = fault();
        fault.recent_exits = 2;
        fault.evidence.push(v1::Evidence {
            sense: "exit".to_owned(),
            details: [("signal".to_owned(), "9".to_owned())].into(),
            ..Default::default()
        });
        let observation = observation(&fault, FaultKind::Crash, PeerFaults::default());
        assert_eq!(observation.signal, Some(9));
        assert_eq!(observation.recent_exits, 2);
        assert_eq!(observation.exit_code, None);
    }
}
