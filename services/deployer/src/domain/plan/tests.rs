use std::time::{Duration, SystemTime};

use aro_proto::v1::InstanceRef;

use super::*;

struct ProcessLike;

impl Capabilities for ProcessLike {
    fn name(&self) -> &'static str {
        "process"
    }

    fn supports(&self, action: Action) -> bool {
        matches!(
            action,
            Action::Observe | Action::Escalate | Action::Restart | Action::Replace
        )
    }
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn command(action: Action, generation: u64) -> Command {
    Command {
        id: "cmd-inc-web-1-g1-a1".to_owned(),
        incident_id: "inc-web-1-g1".to_owned(),
        attempt: 1,
        target: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: "web-1".to_owned(),
            generation,
            node: String::new(),
        }),
        action: action as i32,
        issued_at: Some(prost_types::Timestamp::from(at(100))),
        ..Default::default()
    }
}

fn view(generation: u64, state: State) -> TargetView {
    TargetView {
        generation,
        state,
        started_at: at(50),
    }
}

fn plan_with(command: &Command, registry: Option<TargetView>, local: Option<TargetView>) -> Plan {
    let facts = Facts {
        known_workload: true,
        registry: registry.as_ref(),
        local: local.as_ref(),
    };
    plan(command, &facts, &ProcessLike)
}

fn current(state: State) -> (Option<TargetView>, Option<TargetView>) {
    (Some(view(1, state)), Some(view(1, state)))
}

#[test]
fn restart_of_current_generation_is_planned() {
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command(Action::Restart, 1), registry, local);
    assert_eq!(plan, Plan::Restart);
}

#[test]
fn restart_of_stopped_instance_is_planned() {
    let (registry, local) = current(State::Stopped);
    let plan = plan_with(&command(Action::Restart, 1), registry, local);
    assert_eq!(plan, Plan::Restart);
}

#[test]
fn replace_of_current_generation_is_planned() {
    let (registry, local) = current(State::Starting);
    let plan = plan_with(&command(Action::Replace, 1), registry, local);
    assert_eq!(plan, Plan::Replace);
}

#[test]
fn escalate_is_a_noop() {
    let plan = plan_with(&command(Action::Escalate, 1), None, None);
    assert!(matches!(plan, Plan::Noop(_)), "{plan:?}");
}

#[test]
fn observe_of_current_generation_is_planned() {
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command(Action::Observe, 1), registry, local);
    assert_eq!(plan, Plan::Observe);
}

#[test]
fn observe_of_stale_generation_is_superseded() {
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command(Action::Observe, 7), registry, local);
    assert!(matches!(plan, Plan::Supersede(_)), "{plan:?}");
}

#[test]
fn unsupported_actions_are_rejected_naming_action_and_runtime() {
    for (action, name) in [
        (Action::Rollback, "ROLLBACK"),
        (Action::Move, "MOVE"),
        (Action::ScaleOut, "SCALE_OUT"),
    ] {
        let (registry, local) = current(State::Serving);
        let Plan::Reject(message) = plan_with(&command(action, 1), registry, local) else {
            panic!("{action:?} should be rejected");
        };
        assert!(message.contains(name), "{message}");
        assert!(message.contains("process runtime"), "{message}");
    }
}

#[test]
fn command_without_id_is_rejected() {
    let mut command = command(Action::Restart, 1);
    command.id.clear();
    let (registry, local) = current(State::Serving);
    assert!(matches!(
        plan_with(&command, registry, local),
        Plan::Reject(_)
    ));
}

#[test]
fn command_without_action_is_rejected() {
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command(Action::Unspecified, 1), registry, local);
    assert_eq!(plan, Plan::Reject("command has no action".to_owned()));
}

#[test]
fn unknown_action_value_is_rejected() {
    let mut command = command(Action::Restart, 1);
    command.action = 42;
    let (registry, local) = current(State::Serving);
    assert_eq!(
        plan_with(&command, registry, local),
        Plan::Reject("unknown action value 42".to_owned())
    );
}

#[test]
fn command_without_target_is_rejected() {
    let mut command = command(Action::Restart, 1);
    command.target = None;
    assert!(matches!(plan_with(&command, None, None), Plan::Reject(_)));
}

#[test]
fn invalid_instance_name_is_rejected() {
    let mut command = command(Action::Restart, 1);
    if let Some(target) = command.target.as_mut() {
        target.instance = "web.1".to_owned();
    }
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command, registry, local);
    assert!(
        matches!(plan, Plan::Reject(ref m) if m.contains("web.1")),
        "{plan:?}"
    );
}

#[test]
fn target_without_generation_is_rejected() {
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command(Action::Restart, 0), registry, local);
    assert!(matches!(plan, Plan::Reject(_)));
}

#[test]
fn unknown_workload_is_rejected() {
    let facts = Facts {
        known_workload: false,
        registry: None,
        local: None,
    };
    let Plan::Reject(message) = plan(&command(Action::Restart, 1), &facts, &ProcessLike) else {
        panic!("an unknown workload is rejected");
    };
    assert!(message.contains("\"web\""), "{message}");
}

#[test]
fn target_missing_from_registry_is_superseded() {
    let plan = plan_with(
        &command(Action::Restart, 1),
        None,
        Some(view(1, State::Serving)),
    );
    assert!(
        matches!(plan, Plan::Supersede(ref m) if m.contains("registry")),
        "{plan:?}"
    );
}

#[test]
fn target_unknown_to_this_run_is_superseded() {
    let plan = plan_with(
        &command(Action::Restart, 1),
        Some(view(1, State::Serving)),
        None,
    );
    assert!(matches!(plan, Plan::Supersede(_)), "{plan:?}");
}

#[test]
fn later_generation_supersedes_the_command() {
    let plan = plan_with(
        &command(Action::Restart, 1),
        Some(view(2, State::Serving)),
        Some(view(2, State::Serving)),
    );
    let Plan::Supersede(message) = plan else {
        panic!("generation 2 is current");
    };
    assert!(message.contains("generation 2"), "{message}");
}

#[test]
fn local_generation_ahead_of_registry_supersedes() {
    let plan = plan_with(
        &command(Action::Restart, 1),
        Some(view(1, State::Serving)),
        Some(view(2, State::Starting)),
    );
    assert!(matches!(plan, Plan::Supersede(_)), "{plan:?}");
}

#[test]
fn isolated_target_is_superseded() {
    let (registry, local) = current(State::Isolated);
    let plan = plan_with(&command(Action::Replace, 1), registry, local);
    assert!(
        matches!(plan, Plan::Supersede(ref m) if m.contains("isolated")),
        "{plan:?}"
    );
}

#[test]
fn command_older_than_the_generation_is_superseded() {
    let mut command = command(Action::Restart, 1);
    command.issued_at = Some(prost_types::Timestamp::from(at(10)));
    let (registry, local) = current(State::Serving);
    let plan = plan_with(&command, registry, local);
    assert!(
        matches!(plan, Plan::Supersede(ref m) if m.contains("issued before")),
        "{plan:?}"
    );
}

#[test]
fn action_names_drop_the_proto_prefix() {
    assert_eq!(action_name(Action::ScaleOut), "SCALE_OUT");
    assert_eq!(action_name(Action::Restart), "RESTART");
}
