//! Planning of a recovery command: what to do with it, given the registry and the runtime.

use std::time::SystemTime;

use aro_proto::v1::{Action, Command};

use super::fleet::State;

/// State of the target instance in one source: the registry, or the deployer's own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetView {
    pub generation: u64,
    pub state: State,
    /// When this generation was started.
    pub started_at: SystemTime,
}

/// Actions a runtime can execute.
pub trait Capabilities {
    /// Name of the runtime, for messages ("process").
    fn name(&self) -> &'static str;
    /// True when the runtime can execute `action`.
    fn supports(&self, action: Action) -> bool;
}

/// Everything the planner looks at besides the command.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// True when the target's workload is in the workload file.
    pub known_workload: bool,
    /// Registry entry of the target, re-read just before planning.
    pub registry: Option<&'a TargetView>,
    /// The deployer's own record of the target.
    pub local: Option<&'a TargetView>,
}

/// Decision on a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to execute; record the command only.
    Noop(String),
    /// Invalid, or not supported by the runtime.
    Reject(String),
    /// The target generation is no longer current.
    Supersede(String),
    /// Stop the target and start its next generation in place.
    Restart,
    /// Isolate the target and start a fresh instance in its slot.
    Replace,
    /// Wait, then probe the target once: the fault may go away by itself.
    Observe,
}

/// Decides what to do with `command`. Checks run in this order: the command's own validity,
/// actions without effect, the runtime's support, then whether the target generation is
/// still the current one in both the registry and the deployer's record.
pub fn plan(command: &Command, facts: &Facts<'_>, runtime: &dyn Capabilities) -> Plan {
    if command.id.is_empty() {
        return Plan::Reject("command has no id".to_owned());
    }
    let action = match Action::try_from(command.action) {
        Ok(Action::Unspecified) => return Plan::Reject("command has no action".to_owned()),
        Ok(action) => action,
        Err(_) => return Plan::Reject(format!("unknown action value {}", command.action)),
    };
    if action == Action::Escalate {
        return Plan::Noop(format!(
            "{}: nothing for the deployer to execute",
            action_name(action)
        ));
    }
    if !runtime.supports(action) {
        return Plan::Reject(format!(
            "{} is not supported by the {} runtime",
            action_name(action),
            runtime.name()
        ));
    }

    let Some(target) = command
        .target
        .as_ref()
        .filter(|t| !t.workload.is_empty() && !t.instance.is_empty())
    else {
        return Plan::Reject("command has no target instance".to_owned());
    };
    let (workload, instance, generation) = (&target.workload, &target.instance, target.generation);
    if let Err(message) = aro_bus::subjects::validate_name(instance) {
        return Plan::Reject(format!("invalid target instance: {message}"));
    }
    if generation == 0 {
        return Plan::Reject(format!("target {instance} has no generation"));
    }
    if !facts.known_workload {
        return Plan::Reject(format!(
            "unknown workload {workload:?}: it is not in the workload file"
        ));
    }

    let Some(registry) = facts.registry else {
        return Plan::Supersede(format!("instance {instance} is no longer in the registry"));
    };
    let Some(local) = facts.local else {
        return Plan::Supersede(format!(
            "instance {instance} is not managed by this deployer run"
        ));
    };
    for view in [registry, local] {
        if view.state == State::Isolated {
            return Plan::Supersede(format!("instance {instance} is already isolated"));
        }
        if view.generation != generation {
            return Plan::Supersede(format!(
                "command targets generation {generation} of {instance}, but generation {} is current",
                view.generation
            ));
        }
    }
    let issued_before_start = command
        .issued_at
        .as_ref()
        .map(aro_proto::time::to_system_time)
        .is_some_and(|issued| issued < local.started_at);
    if issued_before_start {
        return Plan::Supersede(format!(
            "command was issued before generation {generation} of {instance} started"
        ));
    }

    match action {
        Action::Restart => Plan::Restart,
        Action::Replace => Plan::Replace,
        Action::Observe => Plan::Observe,
        other => Plan::Reject(format!(
            "{} is not supported by the {} runtime",
            action_name(other),
            runtime.name()
        )),
    }
}

/// Name of an action without the proto prefix: `RESTART`.
pub fn action_name(action: Action) -> &'static str {
    let name = action.as_str_name();
    name.strip_prefix("ACTION_").unwrap_or(name)
}

#[cfg(test)]
mod tests;
