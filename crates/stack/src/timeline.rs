//! Joins audited events into one timeline per injected fault: injected, detected, decided,
//! isolated, replaced, verified.

use std::collections::HashMap;

use crate::audit::AuditEvent;
use aro_proto::time::{micros, millis_between};
use aro_proto::v1;

/// Everything audited about one injection.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub chaos: v1::ChaosEvent,
    pub fault: Option<v1::FaultEvent>,
    pub faults: Vec<v1::FaultEvent>,
    pub commands: Vec<v1::Command>,
    pub outcomes: Vec<v1::Outcome>,
}

impl Timeline {
    fn injected_at(&self) -> Option<&prost_types::Timestamp> {
        self.chaos.injected_at.as_ref()
    }

    /// Milliseconds from the injection to the fault's detection.
    pub fn detect_ms(&self) -> Option<f64> {
        millis_between(
            self.injected_at(),
            self.fault.as_ref()?.detected_at.as_ref(),
        )
    }

    /// Milliseconds from the fault's detection to the first command.
    pub fn decide_ms(&self) -> Option<f64> {
        let fault = self.fault.as_ref()?;
        millis_between(
            fault.detected_at.as_ref(),
            self.commands.first()?.issued_at.as_ref(),
        )
    }

    /// Returns the recovered outcome that closed the incident, if any.
    pub fn recovered(&self) -> Option<&v1::Outcome> {
        self.outcomes
            .iter()
            .find(|outcome| outcome.status() == v1::OutcomeStatus::Recovered)
    }

    /// True when a command handed the incident to a person.
    pub fn escalated(&self) -> bool {
        self.commands
            .iter()
            .any(|command| command.action() == v1::Action::Escalate)
    }

    /// Milliseconds from the injection to the verified recovery.
    pub fn recover_ms(&self) -> Option<f64> {
        millis_between(self.injected_at(), self.recovered()?.verified_at.as_ref())
    }

    /// True once the incident was recovered or escalated.
    pub fn finished(&self) -> bool {
        self.recovered().is_some() || self.escalated()
    }
}

/// `instance g<generation>`, or `-`.
pub fn instance_name(reference: Option<&v1::InstanceRef>) -> String {
    reference.map_or_else(
        || "-".to_owned(),
        |r| format!("{} g{}", r.instance, r.generation),
    )
}

/// Joins audited events into timelines, whatever order the streams deliver them in. An event
/// read twice (after following the trail again) counts once.
#[derive(Debug, Default)]
pub struct Tracker {
    injections: Vec<v1::ChaosEvent>,
    faults: Vec<v1::FaultEvent>,
    commands: HashMap<String, Vec<v1::Command>>,
    outcomes: HashMap<String, Vec<v1::Outcome>>,
}

impl Tracker {
    /// Records one event.
    pub fn observe(&mut self, event: &AuditEvent) {
        match event {
            AuditEvent::Chaos(chaos) if chaos.phase == "injected" => {
                self.injections.push(chaos.clone())
            }
            AuditEvent::Fault(fault) => self.faults.push(fault.clone()),
            AuditEvent::Command(command) => {
                let commands = self
                    .commands
                    .entry(command.incident_id.clone())
                    .or_default();
                if !commands.iter().any(|known| known.id == command.id) {
                    commands.push(command.clone());
                }
            }
            AuditEvent::Outcome(outcome) => {
                let outcomes = self
                    .outcomes
                    .entry(outcome.incident_id.clone())
                    .or_default();
                if !outcomes.iter().any(|known| known.id == outcome.id) {
                    outcomes.push(outcome.clone());
                }
            }
            AuditEvent::Chaos(_) | AuditEvent::Signal(_) | AuditEvent::Decision(_) => {}
        }
    }

    /// Timelines of every injection seen so far, in injection order.
    pub fn timelines(&self) -> Vec<Timeline> {
        self.injections
            .iter()
            .map(|chaos| self.timeline(chaos))
            .collect()
    }

    /// Timeline of one injection: its fault is the first fault about the injected generation of
    /// the injected instance.
    pub fn timeline(&self, chaos: &v1::ChaosEvent) -> Timeline {
        let target = chaos.targets.first();
        let faults: Vec<v1::FaultEvent> = self
            .faults
            .iter()
            .filter(|fault| {
                let (Some(target), Some(faulty)) = (target, fault.target.as_ref()) else {
                    return false;
                };
                faulty.instance == target.instance
                    && faulty.generation >= target.generation
                    && micros(fault.detected_at.as_ref()) >= micros(chaos.injected_at.as_ref())
            })
            .cloned()
            .collect();
        let fault = faults
            .iter()
            .min_by_key(|fault| micros(fault.detected_at.as_ref()))
            .cloned();
        let incident = fault
            .as_ref()
            .map(|fault| fault.incident_id.clone())
            .unwrap_or_default();
        let faults = faults
            .into_iter()
            .filter(|fault| fault.incident_id == incident)
            .collect();
        // An incident can span several injections when a fault comes back soon after a
        // recovery, so only the commands after this injection's fault belong to its timeline.
        let detected = micros(fault.as_ref().and_then(|fault| fault.detected_at.as_ref()));
        let mut commands: Vec<v1::Command> = self
            .commands
            .get(&incident)
            .into_iter()
            .flatten()
            .filter(|command| micros(command.issued_at.as_ref()) >= detected)
            .cloned()
            .collect();
        commands.sort_by_key(|command| command.attempt);
        let first_attempt = commands.first().map_or(u32::MAX, |command| command.attempt);
        let mut outcomes: Vec<v1::Outcome> = self
            .outcomes
            .get(&incident)
            .into_iter()
            .flatten()
            .filter(|outcome| outcome.attempt >= first_attempt)
            .cloned()
            .collect();
        outcomes.sort_by_key(|outcome| outcome.attempt);
        Timeline {
            chaos: chaos.clone(),
            fault,
            faults,
            commands,
            outcomes,
        }
    }
}

/// Returns the p-th percentile (0 to 100) of `values` by the nearest-rank method.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
