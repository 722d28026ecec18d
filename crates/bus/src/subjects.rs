//! Names of the streams, subjects and key-value buckets.
//!
//! | stream | subjects | written by | read by |
//! | --- | --- | --- | --- |
//! | `ARO_SIGNALS` | `aro.signals.<workload>.<instance>` | deployer | detector |
//! | `ARO_FAULTS` | `aro.faults.<workload>` | detector | brain |
//! | `ARO_COMMANDS` | `aro.commands.<workload>` | brain | deployer |
//! | `ARO_OUTCOMES` | `aro.outcomes.<workload>` | deployer | brain |
//! | `ARO_CHAOS` | `aro.chaos.<workload>` | deployer | auditors |
//! | `ARO_DECISIONS` | `aro.decisions.<workload>` | brain, in observe and propose modes | auditors |
//!
//! Every stream keeps its messages for audit; consumers are durable, so a message stays until
//! it is acknowledged by each consumer that reads it.

/// Stream of runtime signals (starts, exits).
pub const SIGNALS_STREAM: &str = "ARO_SIGNALS";
/// Stream of classified faults.
pub const FAULTS_STREAM: &str = "ARO_FAULTS";
/// Stream of recovery commands.
pub const COMMANDS_STREAM: &str = "ARO_COMMANDS";
/// Stream of command outcomes.
pub const OUTCOMES_STREAM: &str = "ARO_OUTCOMES";
/// Stream of fault injections.
pub const CHAOS_STREAM: &str = "ARO_CHAOS";
/// Stream of decisions that were recorded or proposed instead of carried out.
pub const DECISIONS_STREAM: &str = "ARO_DECISIONS";

/// Key-value bucket of instances, keyed `<workload>.<instance>`.
pub const INSTANCES_BUCKET: &str = "aro_instances";
/// Key-value bucket of incidents, keyed by incident id.
pub const INCIDENTS_BUCKET: &str = "aro_incidents";
/// Key-value bucket of fault injections, keyed by injection id.
pub const INJECTIONS_BUCKET: &str = "aro_injections";
/// Key-value bucket of the number each workload's next fresh instance id takes, keyed by
/// workload.
pub const INSTANCE_NUMBERS_BUCKET: &str = "aro_instance_numbers";

/// Subject prefix of every audited event.
pub const ROOT: &str = "aro";

/// Subject of a runtime signal.
pub fn signal(workload: &str, instance: &str) -> String {
    format!("aro.signals.{workload}.{instance}")
}

/// Subject of a fault.
pub fn fault(workload: &str) -> String {
    format!("aro.faults.{workload}")
}

/// Subject of a command.
pub fn command(workload: &str) -> String {
    format!("aro.commands.{workload}")
}

/// Subject of an outcome.
pub fn outcome(workload: &str) -> String {
    format!("aro.outcomes.{workload}")
}

/// Subject of a decision recorded in observe mode or proposed in propose mode.
pub fn decision(workload: &str) -> String {
    format!("aro.decisions.{workload}")
}

/// Subject of a chaos event.
pub fn chaos(workload: &str) -> String {
    format!("aro.chaos.{workload}")
}

/// Key of an instance in the instances bucket.
pub fn instance_key(workload: &str, instance: &str) -> String {
    format!("{workload}.{instance}")
}

/// Checks that a workload or instance name is usable as one subject token and one key token:
/// lowercase ASCII letters, digits and `-`, starting with a letter, at most 63 characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if name.len() > 63 || !valid_chars || !starts_with_letter {
        return Err(format!(
            "{name:?} must be 1 to 63 lowercase letters, digits or '-', starting with a letter"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_dns_labels() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("a").is_ok());
    }

    #[test]
    fn names_reject_subject_wildcards_and_dots() {
        for bad in ["", "Web", "a.b", "a*", "a>", "1abc", "a b", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
