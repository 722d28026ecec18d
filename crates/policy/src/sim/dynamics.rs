//! Effects, durations and costs of actions; the numbers behind the tables in the module docs.

use rand::Rng;
use rand_distr::{Distribution, LogNormal};

use super::cause::RootCause;
use super::scenario::Scenario;
use crate::action::Action;
use crate::fault::FaultKind;

/// Seconds that one observe waits before the next decision.
pub const OBSERVE_WAIT_SECS: f32 = 30.0;

/// Seconds after an action's end within which the deployer verifies the target. An action that
/// did not recover the target counts as failed once this deadline has passed.
pub const VERIFY_DEADLINE_SECS: f32 = 10.0;

/// Decisions after which an incident that is still open goes to a person anyway.
pub const HANDOVER_AFTER_ATTEMPTS: u32 = 10;

/// Cost of paging a person, in seconds of downtime.
pub const PAGE_COST: f32 = 600.0;

/// Factor on downtime cost while no other replica of the workload serves.
pub const NO_REPLICA_WEIGHT: f32 = 4.0;

/// Extra cost of rolling back a release that was not the cause, in seconds of downtime: the
/// release has to be rolled out again.
pub const NEEDLESS_ROLLBACK_COST: f32 = 60.0;

/// Effective fix probability under which an action counts as wrong for a cause.
pub const WRONG_ACTION_BELOW: f32 = 0.5;

/// Chance that an action recovers the target, and chance that the fault then comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Effect {
    pub(crate) success: f32,
    pub(crate) relapse: f32,
}

impl Effect {
    const NONE: Effect = Effect {
        success: 0.0,
        relapse: 0.0,
    };

    const fn fixes(success: f32) -> Effect {
        Effect {
            success,
            relapse: 0.0,
        }
    }

    const fn relapses(success: f32, relapse: f32) -> Effect {
        Effect { success, relapse }
    }

    /// Probability that the action ends the incident for good.
    pub(crate) fn fix_probability(self) -> f32 {
        self.success * (1.0 - self.relapse)
    }
}

/// Effect of `action` on the scenario's cause. Escalation always ends the incident and is not
/// in this table; a dependency outage ends by itself and is handled by the episode.
pub(crate) fn effect(scenario: &Scenario, fault: FaultKind, action: Action) -> Effect {
    use Action::{Escalate, Move, Observe, Replace, Restart, Rollback, ScaleOut};
    if action == Rollback && !scenario.observation.rollback_available {
        return Effect::NONE;
    }
    match (scenario.cause, action) {
        (_, Escalate) => Effect::fixes(1.0),
        (RootCause::Transient, Restart) => Effect::fixes(0.95),
        (RootCause::Transient, Replace | Move) => Effect::fixes(0.97),
        (RootCause::Transient, Rollback) => Effect::fixes(0.90),
        (RootCause::BadRelease, Rollback) => Effect::fixes(0.95),
        (RootCause::BadRelease, Restart | Replace | Move)
            if matches!(fault, FaultKind::Unhealthy | FaultKind::LogAnomaly) =>
        {
            Effect::relapses(0.6, 0.9)
        }
        (RootCause::BadRelease, Restart | Replace | Move) => Effect::fixes(0.05),
        (RootCause::CorruptArtifact, Restart) => Effect::fixes(0.03),
        (RootCause::CorruptArtifact, Replace) => Effect::fixes(0.95),
        (RootCause::CorruptArtifact, Rollback) => Effect::fixes(0.70),
        (RootCause::CorruptArtifact, Move) => Effect::fixes(0.93),
        (RootCause::NodeProblem, Restart) => Effect::fixes(0.10),
        (RootCause::NodeProblem, Replace) => Effect::fixes(0.35),
        (RootCause::NodeProblem, Rollback) => Effect::fixes(0.30),
        (RootCause::NodeProblem, Move) => Effect::fixes(0.95),
        (RootCause::MemoryLeak, Restart) => Effect::fixes(0.92),
        (RootCause::MemoryLeak, Replace | Move) => Effect::fixes(0.95),
        (RootCause::MemoryLeak, Rollback) if scenario.leak_from_release => Effect::fixes(0.90),
        (RootCause::MemoryLeak, Rollback) => Effect::fixes(0.30),
        (RootCause::MemoryLeak, ScaleOut) => Effect::fixes(0.05),
        (RootCause::Overload, Observe) => Effect::fixes(0.25),
        (RootCause::Overload, Restart | Replace | Move) => Effect::relapses(0.7, 0.85),
        (RootCause::Overload, Rollback) => Effect::fixes(0.10),
        (RootCause::Overload, ScaleOut) => Effect::fixes(0.90),
        (RootCause::Flapping, Observe) => Effect::fixes(0.70),
        (RootCause::Flapping, Restart | Replace | Move) => Effect::relapses(0.9, 0.3),
        (RootCause::Flapping, Rollback) => Effect::relapses(0.5, 0.3),
        _ => Effect::NONE,
    }
}

/// True when an action cannot be expected to end the incident: its effective fix probability
/// is under [`WRONG_ACTION_BELOW`]. Escalation is never wrong. In a dependency outage every
/// action but observe is wrong, because only waiting ends it.
pub(crate) fn is_wrong(scenario: &Scenario, fault: FaultKind, action: Action) -> bool {
    match (scenario.cause, action) {
        (_, Action::Escalate) => false,
        (RootCause::DependencyOutage, action) => action != Action::Observe,
        _ => effect(scenario, fault, action).fix_probability() < WRONG_ACTION_BELOW,
    }
}

/// Fraction of the target's service lost while the fault persists.
pub(crate) fn impact(cause: RootCause, fault: FaultKind) -> f32 {
    match (cause, fault) {
        (RootCause::Flapping, _) => 0.1,
        (_, FaultKind::LogAnomaly) => 0.3,
        _ => 1.0,
    }
}

/// Cost of an action itself and of its risk, in seconds of downtime.
pub(crate) fn action_cost(action: Action) -> f32 {
    match action {
        Action::Observe => 0.0,
        Action::Restart => 1.0,
        Action::Replace => 3.0,
        Action::Rollback => 30.0,
        Action::Move => 6.0,
        Action::ScaleOut => 10.0,
        Action::Escalate => PAGE_COST,
    }
}

/// Median and log-scale spread (sigma) of an action's duration in seconds.
pub(crate) fn duration_params(action: Action) -> (f32, f32) {
    match action {
        Action::Observe => (OBSERVE_WAIT_SECS, 0.0),
        Action::Restart => (5.0, 0.4),
        Action::Replace => (15.0, 0.4),
        Action::Rollback => (90.0, 0.3),
        Action::Move => (30.0, 0.4),
        Action::ScaleOut => (45.0, 0.3),
        Action::Escalate => (900.0, 0.4),
    }
}

/// Draws a log-normal duration with the given median and sigma, clamped to a quarter and four
/// times the median.
pub(crate) fn log_normal<R: Rng>(rng: &mut R, median: f32, sigma: f32) -> f32 {
    if sigma == 0.0 {
        return median;
    }
    let distribution =
        LogNormal::new(median.ln(), sigma).expect("sigma is finite and positive by the tables");
    distribution.sample(rng).clamp(median / 4.0, median * 4.0)
}

/// Draws an action's duration in seconds.
pub(crate) fn draw_duration<R: Rng>(rng: &mut R, action: Action) -> f32 {
    let (median, sigma) = duration_params(action);
    log_normal(rng, median, sigma)
}
