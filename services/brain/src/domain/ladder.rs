//! The escalation ladder: restart, then a fresh instance, then rollback, then a person. After an
//! action fails to recover a target, the next action is the first rung above the highest rung
//! tried so far that the runtime supports.

use aro_policy::{Action, ActionSet};

/// Rungs in the order they are climbed.
pub(crate) const RUNGS: [Action; 3] = [Action::Restart, Action::Replace, Action::Rollback];

/// Returns the next action after the actions in `tried` did not recover the target.
pub(crate) fn next_rung(tried: ActionSet, supported: ActionSet) -> Action {
    let climbed = RUNGS
        .iter()
        .rposition(|&rung| tried.contains(rung))
        .map_or(0, |index| index + 1);
    RUNGS[climbed..]
        .iter()
        .copied()
        .find(|&rung| supported.contains(rung))
        .unwrap_or(Action::Escalate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(actions: &[Action]) -> ActionSet {
        let mut set = ActionSet::EMPTY;
        for &action in actions {
            set.insert(action);
        }
        set
    }

    #[test]
    fn ladder_climbs_restart_replace_rollback_then_person() {
        let all = set(&[Action::Restart, Action::Replace, Action::Rollback]);
        assert_eq!(next_rung(set(&[]), all), Action::Restart);
        assert_eq!(next_rung(set(&[Action::Restart]), all), Action::Replace);
        assert_eq!(
            next_rung(set(&[Action::Restart, Action::Replace]), all),
            Action::Rollback
        );
        assert_eq!(next_rung(all, all), Action::Escalate);
    }

    #[test]
    fn ladder_skips_rungs_the_runtime_lacks() {
        let processes = set(&[Action::Restart, Action::Replace]);
        assert_eq!(
            next_rung(set(&[Action::Restart, Action::Replace]), processes),
            Action::Escalate
        );
    }

    #[test]
    fn ladder_never_steps_down_below_a_tried_rung() {
        let all = set(&[Action::Restart, Action::Replace, Action::Rollback]);
        assert_eq!(next_rung(set(&[Action::Replace]), all), Action::Rollback);
    }
}
