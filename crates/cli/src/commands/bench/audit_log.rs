//! The audit trail of a benchmark, read in the background: every fault event, and which
//! incidents finished (recovered or escalated).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aro_proto::v1::{self, FaultKind};
use aro_stack::audit::{self, AuditEvent};
use futures::StreamExt;
use tokio::task::JoinHandle;

/// One fault event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LoggedFault {
    pub(super) workload: String,
    pub(super) instance: String,
    pub(super) generation: u64,
    pub(super) kind: FaultKind,
    pub(super) incident_id: String,
    /// Detection time in microseconds since the Unix epoch.
    pub(super) detected_at: i64,
}

#[derive(Debug, Default)]
struct Log {
    fault_ids: HashSet<String>,
    faults: Vec<LoggedFault>,
    finished: HashSet<String>,
}

/// Faults and finished incidents of the audit trail so far; cheap to clone.
#[derive(Clone, Debug, Default)]
pub(super) struct AuditLog(Arc<Mutex<Log>>);

/// The task that fills an [`AuditLog`]; it stops when dropped.
#[derive(Debug)]
pub(super) struct Follower(JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl AuditLog {
    /// Follows the audited streams from their start.
    ///
    /// # Errors
    ///
    /// Fails when the streams cannot be read.
    pub(super) async fn follow(bus: &aro_bus::Bus) -> anyhow::Result<(Self, Follower)> {
        let mut events = audit::follow(bus, true, false).await?;
        let log = Self::default();
        let filler = log.clone();
        let task = tokio::spawn(async move {
            while let Some(audited) = events.next().await {
                filler.record(&audited.event);
            }
        });
        Ok((log, Follower(task)))
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.0.lock().expect("audit log lock poisoned")
    }

    fn record(&self, event: &AuditEvent) {
        match event {
            AuditEvent::Fault(fault) => self.record_fault(fault),
            AuditEvent::Outcome(outcome) if outcome.status() == v1::OutcomeStatus::Recovered => {
                self.log().finished.insert(outcome.incident_id.clone());
            }
            AuditEvent::Command(command) if command.action() == v1::Action::Escalate => {
                self.log().finished.insert(command.incident_id.clone());
            }
            _ => {}
        }
    }

    fn record_fault(&self, fault: &v1::FaultEvent) {
        let Some(target) = fault.target.as_ref() else {
            return;
        };
        let mut log = self.log();
        if !log.fault_ids.insert(fault.id.clone()) {
            return;
        }
        log.faults.push(LoggedFault {
            workload: target.workload.clone(),
            instance: target.instance.clone(),
            generation: target.generation,
            kind: fault.kind(),
            incident_id: fault.incident_id.clone(),
            detected_at: aro_proto::time::micros(fault.detected_at.as_ref()),
        });
    }

    /// True when generation `generation` of `instance` already had a fault. The detector raises
    /// at most one fault per generation, so such a generation cannot show another one.
    pub(super) fn faulted(&self, instance: &str, generation: u64) -> bool {
        self.log()
            .faults
            .iter()
            .any(|fault| fault.instance == instance && fault.generation == generation)
    }

    /// Returns the first fault detected at or after `from` (microseconds since the Unix
    /// epoch) about the given generation or a later one of `instance`, or about any instance
    /// of `workload` when `instance` is `None`.
    pub(super) fn first_fault(
        &self,
        workload: &str,
        instance: Option<(&str, u64)>,
        from: i64,
    ) -> Option<LoggedFault> {
        self.log()
            .faults
            .iter()
            .filter(|fault| fault.workload == workload && fault.detected_at >= from)
            .filter(|fault| {
                instance.is_none_or(|(instance, generation)| {
                    fault.instance == instance && fault.generation >= generation
                })
            })
            .min_by_key(|fault| fault.detected_at)
            .cloned()
    }

    /// True once the incident was recovered or escalated.
    pub(super) fn finished(&self, incident_id: &str) -> bool {
        self.log().finished.contains(incident_id)
    }

    /// True when the incident had a fault of `kind`.
    pub(super) fn incident_had(&self, incident_id: &str, kind: FaultKind) -> bool {
        self.log()
            .faults
            .iter()
            .any(|fault| fault.incident_id == incident_id && fault.kind == kind)
    }

    /// Faults of `kind` detected from `from` to `to` (microseconds since the Unix epoch).
    pub(super) fn count(&self, kind: FaultKind, from: i64, to: i64) -> usize {
        self.log()
            .faults
            .iter()
            .filter(|fault| fault.kind == kind && (from..to).contains(&fault.detected_at))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(id: &str, instance: &str, generation: u64, kind: FaultKind, at: i64) -> AuditEvent {
        AuditEvent::Fault(v1::FaultEvent {
            id: id.to_owned(),
            incident_id: format!("inc-{instance}-g{generation}"),
            target: Some(v1::InstanceRef {
                workload: "beat".to_owned(),
                instance: instance.to_owned(),
                generation,
                node: String::new(),
            }),
            kind: kind as i32,
            detected_at: Some(prost_types::Timestamp {
                seconds: at / 1_000_000,
                nanos: 0,
            }),
            ..v1::FaultEvent::default()
        })
    }

    #[test]
    fn faulted_generations_are_known() {
        let log = AuditLog::default();
        log.record(&fault(
            "flt-beat-1-g2-hang",
            "beat-1",
            2,
            FaultKind::Hang,
            0,
        ));
        assert!(log.faulted("beat-1", 2));
        assert!(!log.faulted("beat-1", 3));
        assert!(!log.faulted("beat-2", 2));
    }

    #[test]
    fn first_fault_of_instance_or_workload() {
        let log = AuditLog::default();
        log.record(&fault("a", "beat-1", 1, FaultKind::Hang, 10_000_000));
        log.record(&fault("b", "beat-2", 1, FaultKind::Crash, 20_000_000));
        log.record(&fault("c", "beat-1", 2, FaultKind::Crash, 30_000_000));
        let of_instance = log.first_fault("beat", Some(("beat-1", 2)), 0);
        assert_eq!(of_instance.map(|f| f.kind), Some(FaultKind::Crash));
        let of_workload = log.first_fault("beat", None, 15_000_000);
        assert_eq!(of_workload.map(|f| f.instance), Some("beat-2".to_owned()));
        assert!(log.first_fault("web", None, 0).is_none());
        assert!(
            log.first_fault("beat", Some(("beat-1", 1)), 40_000_000)
                .is_none()
        );
    }

    #[test]
    fn recovered_and_escalated_incidents_are_finished() {
        let log = AuditLog::default();
        log.record(&AuditEvent::Outcome(v1::Outcome {
            incident_id: "inc-beat-1-g1".to_owned(),
            status: v1::OutcomeStatus::Failed as i32,
            ..v1::Outcome::default()
        }));
        assert!(!log.finished("inc-beat-1-g1"));
        log.record(&AuditEvent::Outcome(v1::Outcome {
            incident_id: "inc-beat-1-g1".to_owned(),
            status: v1::OutcomeStatus::Recovered as i32,
            ..v1::Outcome::default()
        }));
        log.record(&AuditEvent::Command(v1::Command {
            incident_id: "inc-beat-2-g1".to_owned(),
            action: v1::Action::Escalate as i32,
            ..v1::Command::default()
        }));
        assert!(log.finished("inc-beat-1-g1"));
        assert!(log.finished("inc-beat-2-g1"));
    }

    #[test]
    fn count_takes_kind_and_window() {
        let log = AuditLog::default();
        log.record(&fault("a", "beat-1", 1, FaultKind::Hang, 10_000_000));
        log.record(&fault("b", "beat-2", 1, FaultKind::Hang, 20_000_000));
        log.record(&fault("c", "beat-3", 1, FaultKind::Crash, 20_000_000));
        log.record(&fault("b", "beat-2", 1, FaultKind::Hang, 20_000_000));
        assert_eq!(log.count(FaultKind::Hang, 0, 30_000_000), 2);
        assert_eq!(log.count(FaultKind::Hang, 15_000_000, 30_000_000), 1);
        assert_eq!(log.count(FaultKind::Crash, 0, 30_000_000), 1);
        assert!(log.incident_had("inc-beat-2-g1", FaultKind::Hang));
        assert!(!log.incident_had("inc-beat-2-g1", FaultKind::Crash));
    }
}
