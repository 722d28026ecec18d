//! Recovery actions and sets of them.

use serde::{Deserialize, Serialize};

/// Recovery action, in the order of `aro.v1.Action` and of the policy model's outputs.
///
/// Model output index `i` is the proto value `i + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Decide and record, act on nothing.
    Observe,
    /// Stop and start the same instance again.
    Restart,
    /// Quarantine the instance and start a fresh one from the pristine artifact.
    Replace,
    /// Return the workload to its previous version.
    Rollback,
    /// Start the replacement on another node.
    Move,
    /// Add a replica.
    ScaleOut,
    /// Hand the incident to a person.
    Escalate,
}

/// Number of actions, and so the width of the policy model's output.
pub const N_ACTIONS: usize = 7;

impl Action {
    /// Every action, in model output order.
    pub const ALL: [Action; N_ACTIONS] = [
        Action::Observe,
        Action::Restart,
        Action::Replace,
        Action::Rollback,
        Action::Move,
        Action::ScaleOut,
        Action::Escalate,
    ];

    /// Index of this action in the policy model's output vector.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Action at a model output index, or `None` past the last action.
    pub fn from_index(index: usize) -> Option<Action> {
        Action::ALL.get(index).copied()
    }

    /// Value of this action in the `aro.v1.Action` proto enum.
    pub fn proto_value(self) -> i32 {
        // The enum has seven variants, so the cast cannot truncate.
        self as i32 + 1
    }

    /// Action for an `aro.v1.Action` proto value, or `None` for `ACTION_UNSPECIFIED` and
    /// unknown values.
    pub fn from_proto_value(value: i32) -> Option<Action> {
        usize::try_from(value)
            .ok()?
            .checked_sub(1)
            .and_then(Action::from_index)
    }

    /// Snake-case name, as in `features.json` and the simulator protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Observe => "observe",
            Action::Restart => "restart",
            Action::Replace => "replace",
            Action::Rollback => "rollback",
            Action::Move => "move",
            Action::ScaleOut => "scale_out",
            Action::Escalate => "escalate",
        }
    }

    /// True for the actions that stop or replace the target instance.
    pub fn takes_target_down(self) -> bool {
        matches!(
            self,
            Action::Restart | Action::Replace | Action::Rollback | Action::Move
        )
    }
}

crate::impl_names!(Action, "action");

/// Set of actions, such as those already taken in an incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Action>", into = "Vec<Action>")]
pub struct ActionSet(u8);

impl ActionSet {
    /// Set with no action.
    pub const EMPTY: ActionSet = ActionSet(0);

    /// Adds `action` to the set.
    pub fn insert(&mut self, action: Action) {
        self.0 |= 1 << action.index();
    }

    /// True when `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & (1 << action.index()) != 0
    }

    /// Number of actions in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True when the set has no action.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Actions in the set, in model output order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL
            .into_iter()
            .filter(move |action| self.contains(*action))
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(actions: I) -> Self {
        let mut set = ActionSet::EMPTY;
        for action in actions {
            set.insert(action);
        }
        set
    }
}

impl From<Vec<Action>> for ActionSet {
    fn from(actions: Vec<Action>) -> Self {
        actions.into_iter().collect()
    }
}

impl From<ActionSet> for Vec<Action> {
    fn from(set: ActionSet) -> Self {
        set.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_through_from_index() {
        for action in Action::ALL {
            assert_eq!(Action::from_index(action.index()), Some(action));
        }
        assert_eq!(Action::from_index(N_ACTIONS), None);
    }

    #[test]
    fn proto_values_follow_model_outputs() {
        assert_eq!(Action::Observe.proto_value(), 1);
        assert_eq!(Action::Escalate.proto_value(), 7);
        assert_eq!(Action::from_proto_value(3), Some(Action::Replace));
        assert_eq!(Action::from_proto_value(0), None);
        assert_eq!(Action::from_proto_value(8), None);
        assert_eq!(Action::from_proto_value(-1), None);
    }

    #[test]
    fn names_round_trip_through_from_str() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
    }

    #[test]
    fn unknown_name_is_rejected_with_value() {
        let err = "reboot".parse::<Action>().expect_err("reboot is no action");
        assert_eq!(err.to_string(), "unknown action \"reboot\"");
    }

    #[test]
    fn serde_uses_snake_case_names() {
        let json = serde_json::to_string(&Action::ScaleOut).expect("serialize action");
        assert_eq!(json, "\"scale_out\"");
    }

    #[test]
    fn action_set_inserts_and_lists() {
        let mut set = ActionSet::EMPTY;
        set.insert(Action::Move);
        set.insert(Action::Restart);
        set.insert(Action::Move);
        assert_eq!(set.len(), 2);
        assert!(set.contains(Action::Restart));
        assert!(!set.contains(Action::Replace));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Action::Restart, Action::Move]
        );
    }

    #[test]
    fn action_set_serializes_as_list() {
        let set: ActionSet = [Action::Replace, Action::Observe].into_iter().collect();
        let json = serde_json::to_string(&set).expect("serialize set");
        assert_eq!(json, "[\"observe\",\"replace\"]");
        let back: ActionSet = serde_json::from_str(&json).expect("deserialize set");
        assert_eq!(back, set);
    }
}
