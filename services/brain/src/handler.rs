//! Handling of fault events and outcomes: opening and joining incidents, deciding, guarding,
//! publishing commands and climbing the escalation ladder.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aro_bus::{Bus, Disposition, subjects};
use aro_policy::{Action, ActionSet, FaultKind, N_FEATURES};
use aro_proto::{time, v1};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::convert::{self, action_to_proto};
use crate::domain::choose::{Choice, Source, choose};
use crate::domain::guards::{Evaluation, Guards, Proposal};
use crate::domain::ladder::next_rung;
use crate::domain::peers::{PeerFaults, RecentFaults};
use crate::domain::storm::{StormDetector, Verdict as StormVerdict};
use crate::incidents::{IncidentError, IncidentStore, Versioned};
use crate::metrics::{DecisionLabels, GuardLabels, Metrics, OutcomeLabels, WorkloadLabels};
use crate::onnx::Policy;

/// Attempts of one read-modify-write of an incident before the message is retried later.
const CAS_ATTEMPTS: usize = 5;

/// Deliveries of an outcome whose incident does not record its command yet, after which the
/// outcome is taken as belonging to no incident of this brain.
const UNKNOWN_INCIDENT_DELIVERIES: i64 = 8;

/// Deliveries of a deferred message after which the brain stops waiting and escalates.
const MAX_DEFERRALS: i64 = 5;

pub(crate) const OPEN: &str = "open";
pub(crate) const RECOVERED: &str = "recovered";
pub(crate) const ESCALATED: &str = "escalated";
pub(crate) const SUPERSEDED: &str = "superseded";
pub(crate) const RECORDED: &str = "recorded";
pub(crate) const PROPOSED: &str = "proposed";
pub(crate) const REJECTED: &str = "rejected";
pub(crate) const STORM: &str = "storm";

/// Errors of approving or rejecting a proposed command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReviewError {
    #[error("incident {0} not found")]
    NotFound(String),
    #[error("incident {id} waits for no approval: its state is {state:?}")]
    NotPending { id: String, state: String },
    #[error("a guard refuses the command now: {0}")]
    Refused(String),
    #[error("incident {0} kept changing; try again")]
    Busy(String),
    #[error(transparent)]
    Incident(#[from] IncidentError),
    #[error(transparent)]
    Bus(#[from] aro_bus::Error),
}

/// Settings of the decision step.
#[derive(Clone, Debug)]
pub(crate) struct DecisionConfig {
    /// Actions the deployer's runtime executes.
    pub(crate) supported: ActionSet,
    /// Minimum policy confidence below which the rule policy decides.
    pub(crate) min_confidence: f32,
    /// Mode of workloads without a mode of their own.
    pub(crate) default_mode: v1::Mode,
    /// Modes of single workloads.
    pub(crate) workload_modes: std::collections::HashMap<String, v1::Mode>,
}

impl DecisionConfig {
    /// Mode in which the brain handles `workload`.
    pub(crate) fn mode(&self, workload: &str) -> v1::Mode {
        self.workload_modes
            .get(workload)
            .copied()
            .unwrap_or(self.default_mode)
    }
}

/// The brain's state shared by the consumers and the gRPC service.
#[derive(Debug)]
pub(crate) struct Brain {
    pub(crate) bus: Bus,
    pub(crate) incidents: IncidentStore,
    pub(crate) policy: Policy,
    pub(crate) guards: Mutex<Guards>,
    pub(crate) recent: Mutex<RecentFaults>,
    pub(crate) storms: Mutex<StormDetector>,
    pub(crate) config: DecisionConfig,
    pub(crate) metrics: Metrics,
}

/// Result of deciding: a decision to publish, or a delay before trying again.
#[derive(Debug)]
pub(crate) enum Plan {
    Act(v1::Decision),
    Defer(Duration),
}

/// Returns the rules' choice for a fault kind this brain does not know. Neither the policy nor
/// the rules have seen it, so a person decides.
pub(crate) fn unknown_kind(kind: i32) -> Choice {
    Choice {
        action: Action::Escalate,
        source: Source::Rules,
        confidence: 0.0,
        reason: format!("unknown fault kind {kind}: a person decides"),
    }
}

fn source_to_proto(source: Source) -> v1::DecisionSource {
    match source {
        Source::Policy => v1::DecisionSource::Policy,
        Source::Rules => v1::DecisionSource::Rules,
        Source::Ladder => v1::DecisionSource::Ladder,
    }
}

fn verdicts_to_proto(evaluation: &Evaluation) -> Vec<v1::GuardVerdict> {
    evaluation
        .verdicts
        .iter()
        .map(|(guard, verdict)| v1::GuardVerdict {
            guard: (*guard).to_owned(),
            allowed: verdict.allowed(),
            reason: verdict.reason().to_owned(),
        })
        .collect()
}

impl Brain {
    /// Chooses the first action for `fault` with the policy and the confidence gate. Acts on
    /// nothing and changes no state.
    pub(crate) fn peer_faults(&self, target: &v1::InstanceRef, record: bool) -> PeerFaults {
        let mut recent = self
            .recent
            .lock()
            .expect("recent faults are never poisoned: no code panics holding them");
        let (workload, instance, node) = (&target.workload, &target.instance, &target.node);
        if record {
            recent.record(Instant::now(), workload, instance, node)
        } else {
            recent.count(Instant::now(), workload, instance, node)
        }
    }

    pub(crate) async fn choose_first(
        &self,
        fault: &v1::FaultEvent,
        kind: FaultKind,
        peers: PeerFaults,
    ) -> (Choice, [f32; N_FEATURES], Option<[f32; 7]>) {
        let observation = convert::observation(fault, kind, peers);
        let features = observation.features();
        let started = Instant::now();
        let scores = match self.policy.score(features).await {
            Ok(scores) => Some(scores),
            Err(error) => {
                warn!(%error, fault_id = %fault.id, "policy inference failed, using rules");
                None
            }
        };
        self.metrics
            .inference_seconds
            .observe(started.elapsed().as_secs_f64());
        let choice = choose(
            &observation,
            &features,
            scores.as_ref(),
            self.config.supported,
            self.config.min_confidence,
        );
        (choice, features, scores)
    }

    /// Runs `choice` through the guards. A denial turns the action into an escalation. When
    /// `deliveries` is given, a deferral is returned as such unless the message was deferred
    /// too often already, and an allowed action is recorded by the guards (tokens, back-off,
    /// in-flight count). Without it, nothing is recorded and a deferral only shows in the
    /// verdicts: that is the dry run of the `Decide` call.
    pub(crate) fn guard(
        &self,
        mut choice: Choice,
        proposal: Proposal<'_>,
        features: &[f32],
        scores: Option<&[f32; 7]>,
        deliveries: Option<i64>,
    ) -> Plan {
        let now = Instant::now();
        let mut guards = self
            .guards
            .lock()
            .expect("guard state is never poisoned: no guard code panics");
        let mut proposal = proposal;
        proposal.action = choice.action;
        let mut evaluation = guards.evaluate(now, &proposal);
        if let Some(reason) = evaluation.denied().map(str::to_owned) {
            choice.reason = format!("{}; guard denied it: {reason}", choice.reason);
            choice.action = Action::Escalate;
            proposal.action = Action::Escalate;
            let escalation = guards.evaluate(now, &proposal);
            evaluation.verdicts.extend(escalation.verdicts);
        } else if let (Some(delay), Some(deliveries)) = (evaluation.deferred(), deliveries) {
            if deliveries < MAX_DEFERRALS {
                return Plan::Defer(delay);
            }
            choice.reason = format!("{}; deferred {deliveries} times, escalating", choice.reason);
            choice.action = Action::Escalate;
            proposal.action = Action::Escalate;
            evaluation = guards.evaluate(now, &proposal);
        }
        if deliveries.is_some() {
            guards.commit(now, &proposal);
        }
        drop(guards);
        for (guard, verdict) in &evaluation.verdicts {
            let verdict = if verdict.allowed() { "allow" } else { "refuse" };
            self.metrics
                .guard_verdicts
                .get_or_create(&GuardLabels {
                    guard: (*guard).to_owned(),
                    verdict: verdict.to_owned(),
                })
                .inc();
        }
        let mut action_scores = Vec::new();
        if let Some(scores) = scores {
            for action in Action::ALL {
                action_scores.push(v1::ActionScore {
                    action: action_to_proto(action) as i32,
                    score: scores[action.index()],
                });
            }
        }
        Plan::Act(v1::Decision {
            action: action_to_proto(choice.action) as i32,
            source: source_to_proto(choice.source) as i32,
            model_version: self.policy.version().to_owned(),
            scores: action_scores,
            confidence: choice.confidence,
            guards: verdicts_to_proto(&evaluation),
            features: features.to_vec(),
            reason: choice.reason,
            mode: v1::Mode::Enforce as i32,
        })
    }

    /// Handles one fault event: opens or joins its incident and, when the incident needs an
    /// action, decides and publishes the command.
    pub(crate) async fn handle_fault(&self, fault: v1::FaultEvent, deliveries: i64) -> Disposition {
        let kind = match convert::validate_fault(&fault) {
            Ok(kind) => kind,
            Err(error) => {
                self.metrics.invalid_faults.inc();
                warn!(%error, "invalid fault event rejected");
                return Disposition::Reject;
            }
        };
        let target = fault
            .target
            .clone()
            .expect("validated faults have a target");
        self.metrics
            .faults
            .get_or_create(&WorkloadLabels {
                workload: target.workload.clone(),
            })
            .inc();

        for _ in 0..CAS_ATTEMPTS {
            let current = match self.incidents.get(&fault.incident_id).await {
                Ok(current) => current,
                Err(error) => {
                    warn!(%error, incident_id = %fault.incident_id, "incident unreadable, retrying");
                    return Disposition::Retry(Duration::from_secs(1));
                }
            };
            let Versioned {
                mut incident,
                revision,
            } = current.unwrap_or_else(|| Versioned {
                incident: v1::Incident {
                    id: fault.incident_id.clone(),
                    target: Some(target.clone()),
                    kind: fault.kind,
                    state: OPEN.to_owned(),
                    opened_at: Some(time::now()),
                    fault_observed_at: fault.observed_at,
                    fault_detected_at: fault.detected_at,
                    ..Default::default()
                },
                revision: 0,
            });
            let new_fault = !incident.fault_ids.contains(&fault.id);
            if new_fault {
                incident.fault_ids.push(fault.id.clone());
            }
            if revision == 0 {
                let verdict = self
                    .storms
                    .lock()
                    .expect("storm state is never poisoned: no code panics holding it")
                    .observe(Instant::now(), &target.workload, &fault.id);
                if let Some(result) = self
                    .join_storm(&mut incident, &target, kind, verdict, deliveries)
                    .await
                {
                    return match result {
                        Ok(disposition) => disposition,
                        Err(IncidentError::Conflict { .. }) => continue,
                        Err(error) => {
                            warn!(%error, "saving incident failed, retrying");
                            Disposition::Retry(Duration::from_secs(1))
                        }
                    };
                }
            }
            // Later commands of an open incident follow outcomes, not faults: a fault that joins
            // an incident with a command in flight only adds evidence.
            let awaiting_command = incident.state == OPEN && incident.attempt == 0;
            let relapse = new_fault && incident.state == RECOVERED;
            if relapse {
                info!(incident_id = %incident.id, fault_id = %fault.id, "fault after recovery, incident reopened");
                incident.state = OPEN.to_owned();
                incident.last_status = v1::OutcomeStatus::Failed as i32;
            }
            if !awaiting_command && !relapse {
                if new_fault {
                    match self.incidents.save(&incident, revision).await {
                        Ok(_) => {
                            debug!(incident_id = %incident.id, fault_id = %fault.id, "fault joined open incident")
                        }
                        Err(IncidentError::Conflict { .. }) => continue,
                        Err(error) => {
                            warn!(%error, "saving incident failed, retrying");
                            return Disposition::Retry(Duration::from_secs(1));
                        }
                    }
                }
                return Disposition::Ack;
            }

            let plan = if incident.attempt == 0 {
                let peers = self.peer_faults(&target, true);
                let proposal = self.proposal(&incident, &target, kind, fault.healthy_replicas);
                let deliveries = self.enforced(&target.workload).then_some(deliveries);
                match kind {
                    Some(known) => {
                        let (choice, features, scores) =
                            self.choose_first(&fault, known, peers).await;
                        self.guard(choice, proposal, &features, scores.as_ref(), deliveries)
                    }
                    None => self.guard(unknown_kind(fault.kind), proposal, &[], None, deliveries),
                }
            } else {
                self.ladder_plan(&incident, &target, kind, fault.healthy_replicas, deliveries)
            };
            return match self
                .issue(&mut incident, revision, target.clone(), plan)
                .await
            {
                Ok(disposition) => disposition,
                Err(IncidentError::Conflict { .. }) => continue,
                Err(error) => {
                    warn!(%error, "saving incident failed, retrying");
                    Disposition::Retry(Duration::from_secs(1))
                }
            };
        }
        Disposition::Retry(Duration::from_millis(100))
    }

    fn proposal<'a>(
        &self,
        incident: &'a v1::Incident,
        target: &'a v1::InstanceRef,
        kind: Option<FaultKind>,
        healthy: u32,
    ) -> Proposal<'a> {
        Proposal {
            incident: &incident.id,
            workload: &target.workload,
            target: &target.instance,
            action: Action::Observe,
            fault: kind,
            healthy_replicas: healthy,
        }
    }

    /// Plans the next rung of the ladder for an incident whose latest action did not recover it.
    fn ladder_plan(
        &self,
        incident: &v1::Incident,
        target: &v1::InstanceRef,
        kind: Option<FaultKind>,
        healthy: u32,
        deliveries: i64,
    ) -> Plan {
        let tried = convert::action_set(incident.actions.iter().copied());
        let action = next_rung(tried, self.config.supported);
        let status = v1::OutcomeStatus::try_from(incident.last_status).unwrap_or_default();
        let last = convert::action_from_proto(incident.last_action).map_or("none", Action::as_str);
        let choice = Choice {
            action,
            source: Source::Ladder,
            confidence: 0.0,
            reason: format!(
                "{last} ended {}; next rung is {}",
                status.as_str_name(),
                action.as_str()
            ),
        };
        let proposal = self.proposal(incident, target, kind, healthy);
        let deliveries = self.enforced(&target.workload).then_some(deliveries);
        self.guard(choice, proposal, &[], None, deliveries)
    }

    /// Handles a new incident that storm detection put in a storm. The fault that opens the
    /// storm also opens the storm incident, which pages a person once. Every fault of the storm
    /// is recorded in an incident of its own that takes no action. Returns `None` when there is
    /// no storm.
    async fn join_storm(
        &self,
        incident: &mut v1::Incident,
        target: &v1::InstanceRef,
        kind: Option<FaultKind>,
        verdict: StormVerdict,
        deliveries: i64,
    ) -> Option<Result<Disposition, IncidentError>> {
        let storm = match verdict {
            StormVerdict::Normal => return None,
            StormVerdict::Joins { storm } => storm,
            StormVerdict::Opens { storm, faults } => {
                let opened = match self.incidents.get(&storm).await {
                    Ok(opened) => opened,
                    Err(error) => return Some(Err(error)),
                };
                if opened.is_none() {
                    let mut storm_incident = v1::Incident {
                        id: storm.clone(),
                        target: Some(target.clone()),
                        kind: incident.kind,
                        state: OPEN.to_owned(),
                        opened_at: Some(time::now()),
                        fault_ids: incident.fault_ids.clone(),
                        fault_observed_at: incident.fault_observed_at,
                        fault_detected_at: incident.fault_detected_at,
                        ..Default::default()
                    };
                    let choice = Choice {
                        action: Action::Escalate,
                        source: Source::Rules,
                        confidence: 0.0,
                        reason: format!(
                            "storm: {faults} faults of {} within the storm window; one page instead of {faults} recoveries",
                            target.workload
                        ),
                    };
                    let proposal = self.proposal(&storm_incident, target, kind, 0);
                    let deliveries = self.enforced(&target.workload).then_some(deliveries);
                    let plan = self.guard(choice, proposal, &[], None, deliveries);
                    warn!(storm_id = %storm, workload = %target.workload, faults, "fault storm, paging a person once");
                    match self
                        .issue(&mut storm_incident, 0, target.clone(), plan)
                        .await
                    {
                        Ok(Disposition::Ack) | Err(IncidentError::Conflict { .. }) => {}
                        other => return Some(other),
                    }
                }
                storm
            }
        };
        self.metrics.storm_faults.inc();
        incident.state = STORM.to_owned();
        incident.reason =
            format!("part of {storm}, which pages a person once; no action of its own");
        incident.updated_at = Some(time::now());
        info!(incident_id = %incident.id, storm_id = %storm, "fault joined a storm");
        Some(
            self.incidents
                .save(incident, 0)
                .await
                .map(|_| Disposition::Ack),
        )
    }

    /// True when the brain carries out its decisions for `workload`.
    fn enforced(&self, workload: &str) -> bool {
        self.config.mode(workload) == v1::Mode::Enforce
    }

    /// Publishes the planned command and records it in the incident. In enforce mode the
    /// command goes to the deployer. In observe mode it is only recorded on the decisions
    /// subject. In propose mode it is recorded there too and waits in the incident for
    /// [`Brain::approve`].
    async fn issue(
        &self,
        incident: &mut v1::Incident,
        revision: u64,
        target: v1::InstanceRef,
        plan: Plan,
    ) -> Result<Disposition, IncidentError> {
        let decision = match plan {
            Plan::Defer(delay) => {
                debug!(incident_id = %incident.id, ?delay, "decision deferred by guards");
                return Ok(Disposition::Retry(delay));
            }
            Plan::Act(decision) => decision,
        };
        let mode = self.config.mode(&target.workload);
        let mut decision = decision;
        decision.mode = mode as i32;
        let attempt = incident.attempt + 1;
        let command = v1::Command {
            id: format!("cmd-{}-a{attempt}", incident.id),
            incident_id: incident.id.clone(),
            attempt,
            target: Some(target.clone()),
            action: decision.action,
            issued_at: Some(time::now()),
            fault_id: incident.fault_ids.first().cloned().unwrap_or_default(),
            fault_observed_at: incident.fault_observed_at,
            fault_detected_at: incident.fault_detected_at,
            decision: Some(decision.clone()),
        };
        let action = convert::action_from_proto(command.action).unwrap_or(Action::Escalate);
        let span = info_span!(
            "brain.command",
            otel.kind = "producer",
            incident_id = %incident.id,
            command_id = %command.id,
            action = action.as_str(),
        );
        let subject = if mode == v1::Mode::Enforce {
            subjects::command(&target.workload)
        } else {
            subjects::decision(&target.workload)
        };
        let published = self
            .bus
            .publish(subject, &command.id, &command)
            .instrument(span)
            .await;
        if let Err(error) = published {
            warn!(%error, command_id = %command.id, "publishing command failed, retrying");
            return Ok(Disposition::Retry(Duration::from_secs(1)));
        }
        let source = v1::DecisionSource::try_from(decision.source).unwrap_or_default();
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels {
                workload: target.workload.clone(),
                action: action.as_str().to_owned(),
                source: source.as_str_name().to_owned(),
            })
            .inc();
        if let Some(ms) = time::millis_between(
            incident.fault_detected_at.as_ref(),
            command.issued_at.as_ref(),
        ) {
            self.metrics.decide_seconds.observe(ms / 1e3);
        }
        info!(
            incident_id = %incident.id,
            command_id = %command.id,
            action = action.as_str(),
            source = source.as_str_name(),
            reason = %decision.reason,
            mode = mode.as_str_name(),
            "command issued"
        );

        incident.attempt = attempt;
        incident.command_ids.push(command.id.clone());
        incident.actions.push(command.action);
        incident.last_action = command.action;
        incident.last_status = v1::OutcomeStatus::Unspecified as i32;
        incident.target = Some(target);
        incident.reason = decision.reason;
        incident.updated_at = Some(time::now());
        // Observing stays open: the deployer probes the target after its observation period
        // and a FAILED outcome climbs the ladder.
        incident.state = match (mode, action) {
            (v1::Mode::Observe, _) => RECORDED.to_owned(),
            (v1::Mode::Propose, _) => {
                incident.pending = Some(command);
                PROPOSED.to_owned()
            }
            (_, Action::Escalate) => ESCALATED.to_owned(),
            _ => OPEN.to_owned(),
        };
        self.incidents.save(incident, revision).await?;
        Ok(Disposition::Ack)
    }

    /// Carries out the command that a proposed incident waits with, after the guards allow it.
    ///
    /// # Errors
    ///
    /// Returns a message for the caller when the incident does not exist, waits for no
    /// approval, or a guard refuses the command now.
    pub(crate) async fn approve(
        &self,
        incident_id: &str,
        approver: &str,
    ) -> Result<v1::Command, ReviewError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(Versioned {
                mut incident,
                revision,
            }) = self.incidents.get(incident_id).await?
            else {
                return Err(ReviewError::NotFound(incident_id.to_owned()));
            };
            let (true, Some(command)) = (incident.state == PROPOSED, incident.pending.clone())
            else {
                return Err(ReviewError::NotPending {
                    id: incident_id.to_owned(),
                    state: incident.state,
                });
            };
            let target = command.target.clone().unwrap_or_default();
            let action = convert::action_from_proto(command.action).unwrap_or(Action::Escalate);
            let kind = FaultKind::from_proto_value(incident.kind);
            // NOTE: the last-healthy-replica guard judged the command when it was proposed. The
            // replica count is not read again here, so a fleet that shrank since is not noticed.
            let mut proposal = self.proposal(&incident, &target, kind, u32::MAX);
            proposal.action = action;
            {
                let now = Instant::now();
                let mut guards = self
                    .guards
                    .lock()
                    .expect("guard state is never poisoned: no guard code panics");
                let evaluation = guards.evaluate(now, &proposal);
                if let Some(reason) = evaluation.denied() {
                    return Err(ReviewError::Refused(reason.to_owned()));
                }
                if let Some(delay) = evaluation.deferred() {
                    return Err(ReviewError::Refused(format!(
                        "guards defer the command, retry in {delay:?}"
                    )));
                }
                guards.commit(now, &proposal);
            }
            self.bus
                .publish(subjects::command(&target.workload), &command.id, &command)
                .await?;
            info!(incident_id, command_id = %command.id, approver, "proposed command approved");
            incident.pending = None;
            incident.state = if action == Action::Escalate {
                ESCALATED
            } else {
                OPEN
            }
            .to_owned();
            incident.reason = format!("approved by {approver}");
            incident.updated_at = Some(time::now());
            match self.incidents.save(&incident, revision).await {
                Ok(_) => return Ok(command),
                Err(IncidentError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ReviewError::Busy(incident_id.to_owned()))
    }

    /// Drops the command a proposed incident waits with and hands the incident to a person.
    ///
    /// # Errors
    ///
    /// Returns a message for the caller when the incident does not exist or waits for no
    /// approval.
    pub(crate) async fn reject(
        &self,
        incident_id: &str,
        approver: &str,
        reason: &str,
    ) -> Result<v1::Incident, ReviewError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(Versioned {
                mut incident,
                revision,
            }) = self.incidents.get(incident_id).await?
            else {
                return Err(ReviewError::NotFound(incident_id.to_owned()));
            };
            if incident.state != PROPOSED {
                return Err(ReviewError::NotPending {
                    id: incident_id.to_owned(),
                    state: incident.state,
                });
            }
            incident.pending = None;
            incident.state = REJECTED.to_owned();
            incident.reason = format!("rejected by {approver}: {reason}");
            incident.updated_at = Some(time::now());
            match self.incidents.save(&incident, revision).await {
                Ok(_) => {
                    info!(incident_id, approver, reason, "proposed command rejected");
                    return Ok(incident);
                }
                Err(IncidentError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ReviewError::Busy(incident_id.to_owned()))
    }

    /// Handles one outcome: closes the incident when recovered, climbs the ladder when not.
    pub(crate) async fn handle_outcome(
        &self,
        outcome: v1::Outcome,
        deliveries: i64,
    ) -> Disposition {
        let status = v1::OutcomeStatus::try_from(outcome.status).unwrap_or_default();
        let workload = outcome
            .target
            .as_ref()
            .map(|t| t.workload.clone())
            .unwrap_or_default();
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.incidents.get(&outcome.incident_id).await {
                Ok(current) => current,
                Err(error) => {
                    warn!(%error, incident_id = %outcome.incident_id, "incident unreadable, retrying");
                    return Disposition::Retry(Duration::from_secs(1));
                }
            };
            let Some(Versioned {
                mut incident,
                revision,
            }) = current
            else {
                // The brain publishes a command before it stores the incident that records
                // it, so a fast outcome can arrive first: wait for the incident a little.
                if deliveries < UNKNOWN_INCIDENT_DELIVERIES {
                    return Disposition::Retry(Duration::from_millis(50));
                }
                warn!(incident_id = %outcome.incident_id, outcome_id = %outcome.id, deliveries, "outcome for an unknown incident ignored");
                return Disposition::Ack;
            };
            if outcome.attempt > incident.attempt && deliveries < UNKNOWN_INCIDENT_DELIVERIES {
                return Disposition::Retry(Duration::from_millis(50));
            }
            if outcome.attempt != incident.attempt
                || incident.last_status != v1::OutcomeStatus::Unspecified as i32
            {
                debug!(outcome_id = %outcome.id, "outcome already handled");
                return Disposition::Ack;
            }
            self.guards
                .lock()
                .expect("guard state is never poisoned: no guard code panics")
                .finish(&incident.id);
            incident.last_status = outcome.status;
            incident.last_action = outcome.action;
            incident.updated_at = Some(time::now());
            let kind = FaultKind::from_proto_value(incident.kind);
            let next_target = outcome
                .replacement
                .clone()
                .filter(|replacement| !replacement.instance.is_empty())
                .or_else(|| outcome.target.clone())
                .or_else(|| incident.target.clone())
                .expect("outcomes and incidents always name a target");

            let result = match status {
                v1::OutcomeStatus::Recovered => {
                    incident.state = RECOVERED.to_owned();
                    incident.reason = format!(
                        "{} recovered {}",
                        outcome.action().as_str_name(),
                        next_target.instance
                    );
                    if let Some(ms) = time::millis_between(
                        incident.fault_observed_at.as_ref(),
                        outcome.verified_at.as_ref(),
                    ) {
                        self.metrics
                            .recover_seconds
                            .get_or_create(&WorkloadLabels {
                                workload: workload.clone(),
                            })
                            .observe(ms / 1e3);
                    }
                    self.incidents
                        .save(&incident, revision)
                        .await
                        .map(|_| Disposition::Ack)
                }
                v1::OutcomeStatus::Failed | v1::OutcomeStatus::Rejected => {
                    let plan = self.ladder_plan(&incident, &next_target, kind, 0, deliveries);
                    self.issue(&mut incident, revision, next_target, plan).await
                }
                v1::OutcomeStatus::Superseded => {
                    incident.state = SUPERSEDED.to_owned();
                    incident.reason = outcome.message.clone();
                    self.incidents
                        .save(&incident, revision)
                        .await
                        .map(|_| Disposition::Ack)
                }
                v1::OutcomeStatus::Noop | v1::OutcomeStatus::Unspecified => self
                    .incidents
                    .save(&incident, revision)
                    .await
                    .map(|_| Disposition::Ack),
            };
            self.metrics
                .outcomes
                .get_or_create(&OutcomeLabels {
                    workload: workload.clone(),
                    status: status.as_str_name().to_owned(),
                })
                .inc();
            return match result {
                Ok(disposition) => {
                    info!(incident_id = %incident.id, outcome_id = %outcome.id, status = status.as_str_name(), state = %incident.state, "outcome handled");
                    disposition
                }
                Err(IncidentError::Conflict { .. }) => continue,
                Err(error) => {
                    warn!(%error, "saving incident failed, retrying");
                    Disposition::Retry(Duration::from_secs(1))
                }
            };
        }
        Disposition::Retry(Duration::from_millis(100))
    }
}
