//! Simulator of faults and recoveries, the environment the policy model is trained in.
//!
//! An episode is one incident on one target instance. [`Episode::new`] draws a hidden root
//! cause and the observation it shows. [`Episode::step`] takes an action, draws its outcome
//! and duration, and returns the cost and whether the incident is over. Every draw comes from
//! ChaCha8 generators seeded with the episode seed (stream 0 for the scenario, stream 1 for
//! outcomes), so the same seed and the same actions always give the same episode.
//!
//! The numbers below are assumptions, chosen to be plausible for services on one cluster;
//! none was measured. They live in `sim/scenario.rs` and `sim/dynamics.rs`.
//!
//! # Causes and the hints they show
//!
//! Every scenario first draws the desired replicas (1: 20 %, 2: 25 %, 3: 40 %, 5: 15 %) and
//! whether a previous version exists to roll back to (85 %). Times since the last deploy are
//! log-uniform; "long ago" means 1 hour to 30 days. The time since the deploy and the uptime
//! are each unknown in 5 % of scenarios. Replicas that fault together with the target are not
//! healthy. A hang's suspicion is the threshold 8 plus an exponential overshoot (mean 0.5 for a
//! flapping health check, 2 otherwise), capped at 16.
//!
//! | cause | prior | fault kinds | hints |
//! | --- | --- | --- | --- |
//! | transient (one-off crash, deadlock) | 22 % | crash 65 %, hang 35 % | one exit (two in 15 %), deploy long ago (5 min to 1 h in 10 %), exit 101, 1, SIGABRT or SIGKILL; a fault on the node in 10 %, in the workload in 10 % |
//! | bad release | 14 % | crash loop 50 %, crash 15 %, unhealthy 20 %, log anomaly 15 % | deploy 30 s to 30 min ago (85 %, else up to a day), exit 1, SIGABRT or SIGSEGV, short uptime when crashing; each other replica faults with 60 %; a fault on the node in 10 % |
//! | corrupt artifact or data | 8 % | checksum mismatch 70 %, crash 15 %, crash loop 15 % | SIGSEGV, SIGBUS or exit 1 when crashing; deploy long ago (1 min to 1 h in 20 %); a fault on the node in 15 % |
//! | node problem | 12 % | hang 40 %, crash 30 %, unhealthy 30 % | 1 to 3 faults of other instances on the node (75 %); SIGKILL, SIGBUS or exit 1 when crashing; a co-located replica faults in 30 % |
//! | dependency outage | 10 % | dependency failure 60 %, unhealthy 30 %, log anomaly 10 % | every other replica faults (70 %, else each with 30 %); 0 to 2 faults on the node; the dependency is back after a log-normal time, median 60 s, sigma 0.6 |
//! | memory leak | 10 % | resource exhaustion 50 %, crash with OOM kill 50 % | uptime of 6 hours or more; in 30 % the last release brought the leak (deploy 2 h to 2 days ago, uptime = time since the deploy); each other replica faults with 20 % |
//! | overload | 10 % | resource exhaustion 45 %, hang 30 %, unhealthy 25 % | each other replica faults with 60 %, no OOM kill; a fault on the node in 20 % |
//! | flapping health check | 14 % | unhealthy 60 %, hang 40 % | no exit; a hang's suspicion just over the threshold; a fault on the node in 10 %, in the workload in 10 % |
//!
//! # Effects of actions
//!
//! Each cell is the chance that the action recovers the target. "Then r" is the chance that
//! the fault comes back 20 to 120 s later, so the next decision opens with
//! `previous_failed == false`. Escalation always ends the incident. A rollback without a
//! previous version is rejected within 1 s and costs nothing but that time.
//!
//! | cause | observe | restart | replace | rollback | move | scale out |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | transient | 0 | 0.95 | 0.97 | 0.90 | 0.97 | 0 |
//! | bad release, crashing | 0 | 0.05 | 0.05 | 0.95 | 0.05 | 0 |
//! | bad release, unhealthy or log anomaly | 0 | 0.6 then 0.9 | 0.6 then 0.9 | 0.95 | 0.6 then 0.9 | 0 |
//! | corrupt artifact | 0 | 0.03 | 0.95 | 0.70 | 0.93 | 0 |
//! | node problem | 0 | 0.10 | 0.35 | 0.30 | 0.95 | 0 |
//! | dependency outage | recovers when the dependency is back, whatever the action; an observe ends 2 s after that |||||
//! | memory leak | 0 | 0.92 | 0.95 | 0.90 if the release brought it, else 0.30 | 0.95 | 0.05 |
//! | overload | 0.25 | 0.7 then 0.85 | 0.7 then 0.85 | 0.10 | 0.7 then 0.85 | 0.90 |
//! | flapping | 0.70 | 0.9 then 0.3 | 0.9 then 0.3 | 0.5 then 0.3 | 0.9 then 0.3 | 0 |
//!
//! A scale-out that does not recover the target still adds a serving replica, except for a
//! bad release, a dependency outage or overload. An action counts as wrong when its chance to
//! end the incident for good (success times one minus relapse) is under 0.5; in a dependency
//! outage every action but observe is wrong, and escalation is never wrong.
//!
//! # Durations
//!
//! Durations are log-normal with the median and sigma below, clamped to a quarter and four
//! times the median. A failed action costs its duration plus the verification deadline of
//! 10 s before the next decision.
//!
//! | action | median | sigma | action and risk cost |
//! | --- | --- | --- | --- |
//! | observe | 30 s (fixed) | 0 | 0 |
//! | restart | 5 s | 0.4 | 1 |
//! | replace | 15 s | 0.4 | 3 |
//! | rollback | 90 s | 0.3 | 30, plus 60 when the release was not the cause |
//! | move | 30 s | 0.4 | 6 |
//! | scale out | 45 s | 0.3 | 10 |
//! | escalate (a person fixes it) | 900 s | 0.4 | 600 for the page |
//!
//! # Costs and reward
//!
//! Costs are in seconds of downtime. Downtime is the time the target is out of service: all of
//! an action that stops the target (restart, replace, rollback, move), and otherwise the
//! fault's impact times the time (impact 1, except 0.3 for a log anomaly and 0.1 for a
//! flapping health check). Downtime counts 4 times while no other replica serves. After 10
//! decisions an open incident goes to a person: the page and the person's time are added. The
//! reward of a step is minus its cost divided by [`REWARD_SCALE`].

mod cause;
mod dynamics;
mod episode;
mod scenario;

pub use cause::RootCause;
pub use dynamics::{
    HANDOVER_AFTER_ATTEMPTS, NEEDLESS_ROLLBACK_COST, NO_REPLICA_WEIGHT, OBSERVE_WAIT_SECS,
    PAGE_COST, VERIFY_DEADLINE_SECS, WRONG_ACTION_BELOW,
};
pub(crate) use dynamics::{action_cost, duration_params};
pub use episode::{Episode, EpisodeRecord, REWARD_SCALE, Step, StepInfo};
pub use scenario::Scenario;

/// Error raised by the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("failed to step: the episode is over, reset it first")]
    EpisodeOver,
}

/// Result of a simulator operation.
pub type Result<T, E = SimError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
