//! Rule policy: the fallback that the brain uses when the model is missing or unsure.
//!
//! The rules look only at the fault kind, the actions already taken and the attempt number,
//! so an operator can predict every decision:
//!
//! | fault kind | first action | while the fault persists |
//! | --- | --- | --- |
//! | crash, unhealthy, resource exhaustion | restart | ladder |
//! | crash loop, hang, checksum mismatch | replace | ladder |
//! | log anomaly | observe | ladder |
//! | dependency failure | observe | observe until attempt 5, then escalate |
//!
//! The ladder climbs restart → replace → rollback → escalate, one rung above the highest rung
//! already tried. Move counts as the replace rung and scale-out as the rollback rung. Rollback
//! is skipped when the workload has no previous version. A relapse (the previous action
//! recovered the target, then the fault came back) climbs like a failure. From attempt 6 on
//! the rules escalate.

use crate::action::Action;
use crate::fault::FaultKind;
use crate::observation::Observation;

/// Attempt from which the rules hand the incident to a person.
pub const ESCALATE_FROM_ATTEMPT: u32 = 6;

/// Last attempt at which the rules still wait out a dependency failure.
pub const OBSERVE_DEPENDENCY_UNTIL_ATTEMPT: u32 = 5;

/// Rungs of the escalation ladder, lowest first.
const LADDER: [Action; 4] = [
    Action::Restart,
    Action::Replace,
    Action::Rollback,
    Action::Escalate,
];

/// Chooses the action a careful operator would take.
pub fn decide(observation: &Observation) -> Action {
    if observation.attempt >= ESCALATE_FROM_ATTEMPT {
        return Action::Escalate;
    }
    if observation.fault == FaultKind::DependencyFailure {
        return if observation.attempt <= OBSERVE_DEPENDENCY_UNTIL_ATTEMPT {
            Action::Observe
        } else {
            Action::Escalate
        };
    }
    if observation.previous_action.is_none() && observation.tried.is_empty() {
        return first_action(observation.fault);
    }
    next_rung(observation)
}

/// First action for a fault kind.
pub fn first_action(fault: FaultKind) -> Action {
    match fault {
        FaultKind::Crash | FaultKind::Unhealthy | FaultKind::ResourceExhaustion => Action::Restart,
        FaultKind::CrashLoop | FaultKind::Hang | FaultKind::ChecksumMismatch => Action::Replace,
        FaultKind::LogAnomaly | FaultKind::DependencyFailure => Action::Observe,
    }
}

/// Rung of an action on the ladder; `None` for observe, which is below the ladder.
fn rung(action: Action) -> Option<usize> {
    match action {
        Action::Observe => None,
        Action::Restart => Some(0),
        Action::Replace | Action::Move => Some(1),
        Action::Rollback | Action::ScaleOut => Some(2),
        Action::Escalate => Some(3),
    }
}

fn next_rung(observation: &Observation) -> Action {
    let highest = observation
        .tried
        .iter()
        .chain(observation.previous_action)
        .filter_map(rung)
        .max();
    let next = highest.map_or(0, |rung| rung + 1);
    LADDER[next.min(LADDER.len() - 1)..]
        .iter()
        .copied()
        .find(|action| *action != Action::Rollback || observation.rollback_available)
        .unwrap_or(Action::Escalate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(fault: FaultKind, tried: &[Action]) -> Observation {
        let mut observation = Observation::new(fault);
        observation.rollback_available = true;
        observation.attempt = tried.len() as u32 + 1;
        observation.previous_action = tried.last().copied();
        observation.previous_failed = !tried.is_empty();
        observation.tried = tried.iter().copied().collect();
        observation
    }

    #[test]
    fn first_actions_follow_fault_kind() {
        let cases = [
            (FaultKind::Crash, Action::Restart),
            (FaultKind::CrashLoop, Action::Replace),
            (FaultKind::Hang, Action::Replace),
            (FaultKind::Unhealthy, Action::Restart),
            (FaultKind::LogAnomaly, Action::Observe),
            (FaultKind::ChecksumMismatch, Action::Replace),
            (FaultKind::ResourceExhaustion, Action::Restart),
            (FaultKind::DependencyFailure, Action::Observe),
        ];
        for (fault, expected) in cases {
            assert_eq!(decide(&after(fault, &[])), expected, "{fault}");
        }
    }

    #[test]
    fn failed_restart_climbs_to_replace() {
        assert_eq!(
            decide(&after(FaultKind::Crash, &[Action::Restart])),
            Action::Replace
        );
    }

    #[test]
    fn failed_replace_climbs_to_rollback() {
        let observation = after(FaultKind::Crash, &[Action::Restart, Action::Replace]);
        assert_eq!(decide(&observation), Action::Rollback);
    }

    #[test]
    fn failed_rollback_escalates() {
        let tried = [Action::Replace, Action::Rollback];
        assert_eq!(
            decide(&after(FaultKind::CrashLoop, &tried)),
            Action::Escalate
        );
    }

    #[test]
    fn rollback_is_skipped_without_previous_version() {
        let mut observation = after(FaultKind::CrashLoop, &[Action::Replace]);
        observation.rollback_available = false;
        assert_eq!(decide(&observation), Action::Escalate);
    }

    #[test]
    fn observed_log_anomaly_climbs_to_restart() {
        let observation = after(FaultKind::LogAnomaly, &[Action::Observe]);
        assert_eq!(decide(&observation), Action::Restart);
    }

    #[test]
    fn relapse_climbs_like_failure() {
        let mut observation = after(FaultKind::Unhealthy, &[Action::Restart]);
        observation.previous_failed = false;
        assert_eq!(decide(&observation), Action::Replace);
    }

    #[test]
    fn ladder_never_goes_down() {
        let tried = [Action::Rollback, Action::Observe];
        assert_eq!(decide(&after(FaultKind::Crash, &tried)), Action::Escalate);
    }

    #[test]
    fn dependency_failure_is_observed_then_escalated() {
        let mut observation = after(FaultKind::DependencyFailure, &[Action::Observe; 4]);
        assert_eq!(decide(&observation), Action::Observe);
        observation.attempt = OBSERVE_DEPENDENCY_UNTIL_ATTEMPT + 1;
        assert_eq!(decide(&observation), Action::Escalate);
    }

    #[test]
    fn late_attempt_escalates() {
        let mut observation = after(FaultKind::Crash, &[Action::Restart]);
        observation.attempt = ESCALATE_FROM_ATTEMPT;
        assert_eq!(decide(&observation), Action::Escalate);
    }
}
