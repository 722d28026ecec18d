//! Ids of instances and of the events the deployer publishes. Event ids are derived from what
//! the event is about, so a re-published copy carries the same `Nats-Msg-Id` and JetStream
//! drops it.

/// Id of the `n`-th fresh instance of a workload: `<workload>-<n>`.
pub fn instance_id(workload: &str, n: u64) -> String {
    format!("{workload}-{n}")
}

/// Returns `n` when `instance` is `<workload>-<n>`.
pub fn instance_number(workload: &str, instance: &str) -> Option<u64> {
    instance
        .strip_prefix(workload)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Id of the signal that generation `generation` of `instance` started.
pub fn started_signal_id(instance: &str, generation: u64) -> String {
    format!("sig-{instance}-g{generation}-started")
}

/// Id of the signal that generation `generation` of `instance` exited.
pub fn exited_signal_id(instance: &str, generation: u64) -> String {
    format!("sig-{instance}-g{generation}-exited")
}

/// Id of the outcome of a command.
pub fn outcome_id(command_id: &str) -> String {
    format!("out-{command_id}")
}

/// Id of the chaos event for one phase (`injected`, `reverted`, `halted`) of an injection.
pub fn chaos_event_id(injection_id: &str, phase: &str) -> String {
    format!("chaos-{injection_id}-{phase}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_round_trip() {
        assert_eq!(instance_id("web", 3), "web-3");
        assert_eq!(instance_number("web", "web-3"), Some(3));
    }

    #[test]
    fn instance_numbers_need_the_workload_prefix() {
        assert_eq!(instance_number("web", "web-api-3"), None);
        assert_eq!(instance_number("web", "webx-3"), None);
        assert_eq!(instance_number("web-api", "web-3"), None);
    }

    #[test]
    fn event_ids_follow_the_contract() {
        assert_eq!(started_signal_id("web-1", 2), "sig-web-1-g2-started");
        assert_eq!(exited_signal_id("web-1", 2), "sig-web-1-g2-exited");
        assert_eq!(outcome_id("cmd-inc-web-1-g1-a1"), "out-cmd-inc-web-1-g1-a1");
        assert_eq!(chaos_event_id("inj-7", "injected"), "chaos-inj-7-injected");
    }
}
