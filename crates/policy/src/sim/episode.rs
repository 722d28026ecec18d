//! One simulated incident, from the fault to its recovery or hand-over.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cause::RootCause;
use super::dynamics::{
    HANDOVER_AFTER_ATTEMPTS, NEEDLESS_ROLLBACK_COST, NO_REPLICA_WEIGHT, PAGE_COST,
    VERIFY_DEADLINE_SECS, action_cost, draw_duration, effect, impact, is_wrong,
};
use super::scenario::Scenario;
use super::{Result, SimError};
use crate::action::Action;
use crate::fault::FaultKind;
use crate::observation::Observation;

/// Divisor from cost (seconds of downtime) to reward: reward = -cost / `REWARD_SCALE`.
pub const REWARD_SCALE: f32 = 100.0;

/// Seconds a rejected command takes: the deployer refuses a rollback without a previous
/// version at once.
const REJECTED_SECS: f32 = 1.0;

/// Seconds from a dependency's return until the target's health check passes.
const HEALTH_CHECK_SECS: f32 = 2.0;

/// Exits within the detector's window from which it classifies a crash as a crash loop.
const CRASH_LOOP_EXITS: u32 = 3;

/// Figures of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Action taken.
    pub action: Action,
    /// Seconds the step took, until the next decision or the end.
    pub elapsed_secs: f32,
    /// Seconds of the target's service lost during the step.
    pub downtime_secs: f32,
    /// Cost of the step in seconds of downtime: weighted downtime, the action, its risk and
    /// any page.
    pub cost: f32,
    /// True when the action could not be expected to end the incident.
    pub wrong_action: bool,
    /// True when a person was paged, by escalation or by hand-over.
    pub paged: bool,
    /// True when the target serves again and the incident is over.
    pub recovered: bool,
    /// True when the action recovered the target but the fault came back.
    pub relapsed: bool,
    /// True when the incident went to a person because it ran out of attempts.
    pub handed_over: bool,
}

/// Result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Negative cost, scaled by [`REWARD_SCALE`].
    pub reward: f32,
    /// True when the incident is over.
    pub done: bool,
    pub info: StepInfo,
}

/// Summary of a finished incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    pub seed: u64,
    pub cause: RootCause,
    /// Fault kind of the first decision.
    pub fault: FaultKind,
    /// Actions in the order they were taken.
    pub actions: Vec<Action>,
    pub downtime_secs: f32,
    pub cost: f32,
    pub wrong_actions: u32,
    /// True when a person was paged.
    pub paged: bool,
    /// Seconds from the first decision to the end.
    pub duration_secs: f32,
}

/// One incident in the simulator.
#[derive(Debug, Clone)]
pub struct Episode {
    scenario: Scenario,
    observation: Observation,
    rng: ChaCha8Rng,
    record: EpisodeRecord,
    done: bool,
}

/// Random number generator of an episode's scenario (stream 0) or outcomes (stream 1).
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

impl Episode {
    /// Starts the incident that `seed` draws. The same seed always draws the same fault, and
    /// the same actions then meet the same outcomes.
    pub fn new(seed: u64) -> Episode {
        let scenario = Scenario::draw(&mut stream(seed, 0));
        Episode::from_scenario(seed, scenario)
    }

    /// Starts an incident with the given cause; `seed` draws its hints and outcomes.
    pub fn with_cause(seed: u64, cause: RootCause) -> Episode {
        let scenario = Scenario::draw_with_cause(&mut stream(seed, 0), cause);
        Episode::from_scenario(seed, scenario)
    }

    /// Starts an incident from a prepared scenario; `seed` draws its outcomes.
    pub fn from_scenario(seed: u64, scenario: Scenario) -> Episode {
        let record = EpisodeRecord {
            seed,
            cause: scenario.cause,
            fault: scenario.observation.fault,
            actions: Vec::new(),
            downtime_secs: 0.0,
            cost: 0.0,
            wrong_actions: 0,
            paged: false,
            duration_secs: 0.0,
        };
        Episode {
            observation: scenario.observation.clone(),
            scenario,
            rng: stream(seed, 1),
            record,
            done: false,
        }
    }

    /// Observation for the next decision, or of the last one when the incident is over.
    pub fn observation(&self) -> &Observation {
        &self.observation
    }

    /// Hidden root cause.
    pub fn cause(&self) -> RootCause {
        self.scenario.cause
    }

    /// Hidden state the incident started from.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// True when the incident is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Summary of the incident so far.
    pub fn record(&self) -> &EpisodeRecord {
        &self.record
    }

    /// Takes `action` and advances the incident to the next decision or its end.
    ///
    /// # Errors
    ///
    /// Returns [`SimError::EpisodeOver`] when the incident has already ended.
    pub fn step(&mut self, action: Action) -> Result<Step> {
        if self.done {
            return Err(SimError::EpisodeOver);
        }
        let (mut info, relapse_secs) = self.apply(action);
        self.record.actions.push(action);
        if !info.recovered && self.observation.attempt + 1 > HANDOVER_AFTER_ATTEMPTS {
            self.hand_over(&mut info);
        }
        self.done = info.recovered;
        if !self.done {
            self.advance(&info, relapse_secs);
        }
        self.record.downtime_secs += info.downtime_secs;
        self.record.cost += info.cost;
        self.record.wrong_actions += u32::from(info.wrong_action);
        self.record.paged |= info.paged;
        self.record.duration_secs += info.elapsed_secs;
        Ok(Step {
            reward: -info.cost / REWARD_SCALE,
            done: self.done,
            info,
        })
    }

    /// Weight of a second of the target's downtime: higher while no other replica serves.
    fn downtime_weight(&self) -> f32 {
        if self.observation.is_last_replica() {
            NO_REPLICA_WEIGHT
        } else {
            1.0
        }
    }

    /// Draws what `action` does to the target, without touching the observation. Returns the
    /// step and, after a relapse, the seconds the target served before the fault came back.
    fn apply(&mut self, action: Action) -> (StepInfo, f32) {
        let fault = self.observation.fault;
        let impact = impact(self.scenario.cause, fault);
        let mut info = StepInfo {
            action,
            elapsed_secs: 0.0,
            downtime_secs: 0.0,
            cost: action_cost(action),
            wrong_action: is_wrong(&self.scenario, fault, action),
            paged: action == Action::Escalate,
            recovered: false,
            relapsed: false,
            handed_over: false,
        };
        let mut relapse_secs = 0.0;
        if action == Action::Rollback && !self.observation.rollback_available {
            // The deployer ran nothing, so the rollback's own cost and risk do not apply.
            info.cost = 0.0;
            info.elapsed_secs = REJECTED_SECS;
            info.downtime_secs = impact * REJECTED_SECS;
        } else if action == Action::Escalate {
            let person_secs = self.person_secs(0.0);
            info.elapsed_secs = person_secs;
            info.downtime_secs = impact * person_secs;
            info.recovered = true;
        } else {
            if action == Action::Rollback && !self.rollback_fixes_cause() {
                info.cost += NEEDLESS_ROLLBACK_COST;
            }
            let mut duration = draw_duration(&mut self.rng, action);
            let success = if self.scenario.cause == RootCause::DependencyOutage {
                let back_after = self.scenario.outage_secs - self.observation.incident_age_secs;
                if action == Action::Observe {
                    // Waiting ends once the health check passes again after the dependency is back.
                    let healthy_after = (back_after + HEALTH_CHECK_SECS).max(0.0);
                    let healthy = healthy_after <= duration;
                    if healthy {
                        duration = healthy_after;
                    }
                    healthy
                } else {
                    duration >= back_after
                }
            } else {
                let effect = effect(&self.scenario, fault, action);
                if self.rng.random_bool(f64::from(effect.success)) {
                    info.relapsed = self.rng.random_bool(f64::from(effect.relapse));
                    true
                } else {
                    false
                }
            };
            let verify = if success || action == Action::Observe {
                0.0
            } else {
                VERIFY_DEADLINE_SECS
            };
            info.elapsed_secs = duration + verify;
            let down_share = if action.takes_target_down() {
                1.0
            } else {
                impact
            };
            info.downtime_secs = down_share * info.elapsed_secs;
            info.recovered = success && !info.relapsed;
            if info.relapsed {
                relapse_secs = self.rng.random_range(20.0..120.0);
                info.elapsed_secs += relapse_secs;
            }
        }
        info.cost += info.downtime_secs * self.downtime_weight();
        (info, relapse_secs)
    }

    /// Ends the incident with a person taking over after the last attempt.
    fn hand_over(&mut self, info: &mut StepInfo) {
        let person_secs = self.person_secs(info.elapsed_secs);
        let downtime = impact(self.scenario.cause, self.observation.fault) * person_secs;
        info.elapsed_secs += person_secs;
        info.downtime_secs += downtime;
        info.cost += PAGE_COST + downtime * self.downtime_weight();
        info.paged = true;
        info.handed_over = true;
        info.recovered = true;
    }

    /// Seconds until a paged person has ended the incident, `step_secs` into the current step.
    /// In a dependency outage that is the remaining outage: the target recovers when the
    /// dependency is back, and a person cannot bring it back sooner.
    fn person_secs(&mut self, step_secs: f32) -> f32 {
        let person = draw_duration(&mut self.rng, Action::Escalate);
        if self.scenario.cause == RootCause::DependencyOutage {
            let age = self.observation.incident_age_secs + step_secs;
            let remaining = self.scenario.outage_secs - age;
            remaining.max(REJECTED_SECS)
        } else {
            person
        }
    }

    fn rollback_fixes_cause(&self) -> bool {
        match self.scenario.cause {
            RootCause::BadRelease => true,
            RootCause::MemoryLeak => self.scenario.leak_from_release,
            _ => false,
        }
    }

    /// Moves the observation on to the next decision after an action that did not end the
    /// incident.
    fn advance(&mut self, info: &StepInfo, relapse_secs: f32) {
        let action = info.action;
        let elapsed = info.elapsed_secs;
        // A rollback without a previous version was rejected and changed nothing.
        let ran = action != Action::Rollback || self.observation.rollback_available;
        let cause = self.scenario.cause;
        let observation = &mut self.observation;

        observation.attempt += 1;
        observation.previous_action = Some(action);
        observation.previous_failed = !info.relapsed;
        observation.tried.insert(action);
        observation.incident_age_secs += elapsed;
        observation.since_deploy_secs = observation.since_deploy_secs.map(|secs| secs + elapsed);

        if action == Action::Rollback && ran {
            observation.since_deploy_secs = Some(elapsed);
            observation.rollback_available = false;
        }

        if action.takes_target_down() && ran {
            let serving = if info.relapsed {
                relapse_secs
            } else {
                VERIFY_DEADLINE_SECS
            };
            observation.uptime_secs = Some(serving);
            if matches!(observation.fault, FaultKind::Crash | FaultKind::CrashLoop) {
                observation.recent_exits += 1;
                if observation.recent_exits >= CRASH_LOOP_EXITS {
                    observation.fault = FaultKind::CrashLoop;
                }
            }
        } else {
            observation.uptime_secs = observation.uptime_secs.map(|secs| secs + elapsed);
        }

        let replica_serves = !matches!(
            cause,
            RootCause::BadRelease | RootCause::DependencyOutage | RootCause::Overload
        );
        if action == Action::ScaleOut && replica_serves {
            observation.desired_replicas += 1;
            observation.healthy_replicas += 1;
        }
    }
}
