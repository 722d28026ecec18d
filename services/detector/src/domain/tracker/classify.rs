//! Classification of what the tracker observes into faults: exits into CRASH or CRASH_LOOP,
//! silence into HANG, failing probes into UNHEALTHY.

use std::fmt;
use std::time::SystemTime;

use aro_proto::v1::{
    Evidence, Exited, FaultEvent, FaultKind, Instance, InstanceRef, InstanceState, Signal, signal,
};
use prost_types::Timestamp;
use tracing::info;

use super::{Result, Tracked, Tracker, TrackerError, WatchEvent, checked_reference};
use crate::domain::{InstanceKey, Moment, ProbeOutcome, evidence, ids};

/// Verdict on a runtime signal.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalVerdict {
    /// Publish this fault, then acknowledge the signal. A redelivered signal yields the same
    /// fault with the same id, which JetStream drops as a duplicate.
    Fault(FaultEvent),
    /// Acknowledge the signal; it raises no fault.
    Ignored(Ignored),
}

/// Reason a signal raises no fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    Started,
    /// The deployer stopped the instance on purpose.
    Expected,
    /// The instance is quarantined, so its exit needs no recovery.
    Isolated,
    /// A newer generation of the instance already exists.
    Superseded {
        current: u64,
    },
    /// The generation already raised another fault.
    AlreadyFaulted {
        fault_id: String,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started => write!(f, "start signal"),
            Self::Expected => write!(f, "expected exit"),
            Self::Isolated => write!(f, "the instance is isolated"),
            Self::Superseded { current } => {
                write!(f, "superseded by generation {current}")
            }
            Self::AlreadyFaulted { fault_id } => {
                write!(f, "the generation already raised {fault_id}")
            }
        }
    }
}

/// Facts of a new fault, before the tracker adds the incident and the replica counts.
pub(super) struct Finding {
    pub(super) kind: FaultKind,
    pub(super) generation: u64,
    pub(super) observed_at: SystemTime,
    pub(super) evidence: Evidence,
    pub(super) recent_exits: u32,
    pub(super) suspicion: f64,
}

impl Tracker {
    /// Classifies a runtime signal. An unexpected exit raises CRASH, or CRASH_LOOP when the
    /// same instance id exited unexpectedly within the crash-loop window before. An exit of
    /// the watched generation also ends its watch, so the dead process is not declared hung.
    ///
    /// # Errors
    ///
    /// Returns an error for a signal without a valid instance reference or kind.
    pub fn signal(&mut self, signal: &Signal, now: Moment) -> Result<SignalVerdict> {
        let reference = checked_reference(signal.instance.as_ref(), "signal")?;
        match &signal.kind {
            None => Err(TrackerError::MissingKind {
                id: signal.id.clone(),
            }),
            Some(signal::Kind::Started(_)) => Ok(SignalVerdict::Ignored(Ignored::Started)),
            Some(signal::Kind::Exited(exited)) => {
                let at = signal
                    .at
                    .as_ref()
                    .map_or(now.wall, aro_proto::time::to_system_time);
                Ok(self.exited(reference.clone(), exited, at, now))
            }
        }
    }

    fn exited(
        &mut self,
        reference: InstanceRef,
        exited: &Exited,
        at: SystemTime,
        now: Moment,
    ) -> SignalVerdict {
        let key = InstanceKey::new(&reference.workload, &reference.instance);
        let generation = reference.generation;
        let tracked = self
            .instances
            .entry(key.clone())
            .or_insert_with(|| Tracked {
                entry: Instance {
                    r#ref: Some(reference.clone()),
                    ..Instance::default()
                },
                registered: false,
                exited_generation: 0,
                fault: None,
                watch: None,
            });
        let current = tracked.generation();
        if generation < current {
            return SignalVerdict::Ignored(Ignored::Superseded { current });
        }
        tracked.exited_generation = tracked.exited_generation.max(generation);
        if tracked
            .watch
            .take_if(|watch| watch.generation <= generation)
            .is_some()
        {
            self.events.push(WatchEvent::Unwatched { key: key.clone() });
        }
        if exited.expected {
            return SignalVerdict::Ignored(Ignored::Expected);
        }
        if generation == current && tracked.entry.state() == InstanceState::Isolated {
            return SignalVerdict::Ignored(Ignored::Isolated);
        }
        if let Some(fault) = tracked
            .fault
            .as_ref()
            .filter(|_| tracked.faulted(generation))
        {
            let same_exit = fault
                .target
                .as_ref()
                .is_some_and(|t| t.generation == generation)
                && matches!(fault.kind(), FaultKind::Crash | FaultKind::CrashLoop);
            // A redelivered exit gets the fault it raised. An exit after a fault of another
            // kind (a log anomaly that was only observed, say) is raised as well: the process
            // is gone now and needs a recovery whatever was decided about the earlier fault.
            if same_exit {
                return SignalVerdict::Fault(fault.clone());
            }
            if fault
                .target
                .as_ref()
                .is_some_and(|t| t.generation > generation)
            {
                return SignalVerdict::Ignored(Ignored::AlreadyFaulted {
                    fault_id: fault.id.clone(),
                });
            }
        }

        let recent_exits = self.exits.record(&key, at);
        let kind = if recent_exits > 1 {
            FaultKind::CrashLoop
        } else {
            FaultKind::Crash
        };
        let evidence = evidence::exit(exited, at, recent_exits, self.config.crash_loop_window);
        let node = reference.node;
        let fault = self.raise(
            &key,
            Finding {
                kind,
                generation,
                observed_at: at,
                evidence,
                recent_exits,
                suspicion: 0.0,
            },
            node,
            now,
        );
        SignalVerdict::Fault(fault)
    }

    /// Records a probe result of `generation`. Returns an UNHEALTHY fault when the
    /// consecutive answered failures of a serving generation reach the configured count.
    /// Results for a generation that is no longer watched are dropped.
    pub fn probe_result(
        &mut self,
        key: &InstanceKey,
        generation: u64,
        outcome: &ProbeOutcome,
        now: Moment,
    ) -> Option<FaultEvent> {
        let unhealthy_after = self.config.unhealthy_after;
        let tracked = self.instances.get_mut(key)?;
        let serving = tracked.entry.state() == InstanceState::Serving;
        let faulted = tracked.faulted(generation);
        let watch = tracked
            .watch
            .as_mut()
            .filter(|watch| watch.generation == generation)?;
        watch.probe(outcome, now);
        if !serving || faulted || watch.probe_failures < unhealthy_after {
            return None;
        }
        let finding = Finding {
            kind: FaultKind::Unhealthy,
            generation,
            observed_at: watch.failing_since.unwrap_or(now.wall),
            evidence: evidence::failed_probes(watch, tracked.entry.health_check.as_ref(), now),
            recent_exits: 0,
            suspicion: watch.suspicion,
        };
        let node = node_of(&tracked.entry);
        Some(self.raise(key, finding, node, now))
    }

    /// Evaluates the suspicion level of every watched generation at `now`, returns a HANG
    /// fault for each serving generation that crossed the threshold, and closes the open
    /// incident of instances that served healthily long enough.
    pub fn tick(&mut self, now: Moment) -> Vec<FaultEvent> {
        let threshold = self.config.threshold;
        let mut findings = Vec::new();
        let mut healed = Vec::new();
        for (key, tracked) in &mut self.instances {
            let serving = tracked.entry.state() == InstanceState::Serving;
            let faulted = tracked.faulted(tracked.generation());
            let Some(watch) = tracked.watch.as_mut() else {
                continue;
            };
            let phi = watch.evaluate(now.monotonic, self.config.startup_grace);
            if serving && !faulted && phi >= threshold {
                let observed_at = watch
                    .last_arrival
                    .or(watch.serving_since)
                    .map_or(now.wall, |at| at.wall);
                let evidence =
                    evidence::silence(watch, tracked.entry.pushes_heartbeats, threshold, now);
                findings.push((
                    key.clone(),
                    node_of(&tracked.entry),
                    Finding {
                        kind: FaultKind::Hang,
                        generation: watch.generation,
                        observed_at,
                        evidence,
                        recent_exits: 0,
                        suspicion: phi,
                    },
                ));
                continue;
            }
            if tracked.is_healthy(threshold) {
                let Some(watch) = tracked.watch.as_mut() else {
                    continue;
                };
                let since = *watch.healthy_since.get_or_insert(now.monotonic);
                if now.monotonic.saturating_duration_since(since)
                    >= self.config.incident_close_after
                {
                    healed.push(key.clone());
                }
            } else if let Some(watch) = tracked.watch.as_mut() {
                watch.healthy_since = None;
            }
        }
        for key in healed {
            if let Some(incident) = self.incidents.close(&key) {
                info!(instance = %key, %incident, "incident closed, the instance served healthily");
            }
        }
        findings
            .into_iter()
            .map(|(key, node, finding)| self.raise(&key, finding, node, now))
            .collect()
    }

    /// Raises `finding` about the watched generation it names, unless that generation is no
    /// longer watched, is not serving while `serving_only` is set, or already raised a fault.
    pub(super) fn raise_for_watched(
        &mut self,
        key: &InstanceKey,
        finding: Finding,
        serving_only: bool,
        now: Moment,
    ) -> Option<FaultEvent> {
        let tracked = self.instances.get(key)?;
        tracked
            .watch
            .as_ref()
            .filter(|watch| watch.generation == finding.generation)?;
        let serving = tracked.entry.state() == InstanceState::Serving;
        if tracked.faulted(finding.generation) || (serving_only && !serving) {
            return None;
        }
        let node = node_of(&tracked.entry);
        Some(self.raise(key, finding, node, now))
    }

    /// Turns a finding into a fault: joins or opens the instance's incident, counts the
    /// replicas and remembers the fault so that the generation raises no other.
    fn raise(
        &mut self,
        key: &InstanceKey,
        finding: Finding,
        node: String,
        now: Moment,
    ) -> FaultEvent {
        let incident_id = self.incidents.join(key, finding.generation);
        let healthy_replicas = self.healthy_replicas(key);
        let desired_replicas = self.desired_replicas(key);
        let fault = FaultEvent {
            id: ids::fault_id(&key.instance, finding.generation, finding.kind),
            incident_id,
            target: Some(InstanceRef {
                workload: key.workload.clone(),
                instance: key.instance.clone(),
                generation: finding.generation,
                node,
            }),
            kind: finding.kind.into(),
            observed_at: Some(Timestamp::from(finding.observed_at)),
            detected_at: Some(Timestamp::from(now.wall)),
            evidence: vec![finding.evidence],
            healthy_replicas,
            desired_replicas,
            recent_exits: finding.recent_exits,
            suspicion: finding.suspicion,
        };
        if let Some(tracked) = self.instances.get_mut(key) {
            tracked.fault = Some(fault.clone());
            if let Some(watch) = tracked.watch.as_mut() {
                watch.healthy_since = None;
            }
        }
        fault
    }
}

fn node_of(entry: &Instance) -> String {
    entry
        .r#ref
        .as_ref()
        .map(|r| r.node.clone())
        .unwrap_or_default()
}
