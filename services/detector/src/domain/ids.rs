//! Identifiers that every detector replica derives the same way, so JetStream drops the
//! copies of a fault that two replicas publish.

use std::fmt;

use aro_proto::v1::FaultKind;

/// Workload name and instance id of one instance, as in its registry key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub workload: String,
    pub instance: String,
}

impl InstanceKey {
    pub fn new(workload: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            workload: workload.into(),
            instance: instance.into(),
        }
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workload, self.instance)
    }
}

/// Returns the snake_case name of a fault kind without its prefix, such as `crash_loop`.
pub fn kind_name(kind: FaultKind) -> String {
    kind.as_str_name()
        .trim_start_matches("FAULT_KIND_")
        .to_ascii_lowercase()
}

/// Returns the fault id `flt-<instance>-g<generation>-<kind>`.
pub fn fault_id(instance: &str, generation: u64, kind: FaultKind) -> String {
    format!("flt-{instance}-g{generation}-{}", kind_name(kind))
}

/// Returns the incident id `inc-<instance>-g<generation>` of an incident whose first fault
/// is about that generation.
pub fn incident_id(instance: &str, generation: u64) -> String {
    format!("inc-{instance}-g{generation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_id_uses_snake_case_kind() {
        assert_eq!(
            fault_id("web-1", 3, FaultKind::CrashLoop),
            "flt-web-1-g3-crash_loop"
        );
        assert_eq!(fault_id("web-1", 1, FaultKind::Hang), "flt-web-1-g1-hang");
    }

    #[test]
    fn incident_id_names_instance_and_generation() {
        assert_eq!(incident_id("web-2", 4), "inc-web-2-g4");
    }
}
