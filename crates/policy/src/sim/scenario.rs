//! Drawing the fault that opens a simulated incident, with the hints it shows.

use rand::Rng;
use rand::distr::weighted::WeightedIndex;
use rand_distr::{Binomial, Distribution, Exp};

use super::cause::RootCause;
use super::dynamics::log_normal;
use crate::fault::FaultKind;
use crate::observation::Observation;

const MINUTE: f32 = 60.0;
const HOUR: f32 = 3_600.0;
const DAY: f32 = 86_400.0;

/// Lower bound of the target's uptime, for causes that set none of their own.
const UPTIME_LOW: f32 = 10.0 * MINUTE;

/// Prior probability of each cause, in [`RootCause::ALL`] order.
pub(crate) const CAUSE_WEIGHTS: [f32; 8] = [0.22, 0.14, 0.08, 0.12, 0.10, 0.10, 0.10, 0.14];

/// Hidden state of an incident together with the observation of its first decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Root cause, hidden from the policy.
    pub cause: RootCause,
    /// Observation of the first decision.
    pub observation: Observation,
    /// For a memory leak: true when the last release brought the leak, so a rollback fixes it.
    pub leak_from_release: bool,
    /// For a dependency outage: seconds until the dependency is back.
    pub outage_secs: f32,
}

fn pick<R: Rng, T: Copy>(rng: &mut R, choices: &[(T, f32)]) -> T {
    let index = WeightedIndex::new(choices.iter().map(|(_, weight)| *weight))
        .expect("weights in the tables are positive")
        .sample(rng);
    choices[index].0
}

fn log_uniform<R: Rng>(rng: &mut R, low: f32, high: f32) -> f32 {
    if high <= low {
        return low;
    }
    (low.ln() + rng.random::<f32>() * (high.ln() - low.ln())).exp()
}

fn binomial<R: Rng>(rng: &mut R, trials: u32, p: f64) -> u32 {
    let draw = Binomial::new(u64::from(trials), p)
        .expect("p is a probability")
        .sample(rng);
    u32::try_from(draw).expect("a binomial draw is at most its trials")
}

/// Seconds since the last deploy: recent with probability `recent`, else long ago.
fn since_deploy<R: Rng>(rng: &mut R, recent: f64, recent_range: (f32, f32)) -> f32 {
    if rng.random_bool(recent) {
        log_uniform(rng, recent_range.0, recent_range.1)
    } else {
        log_uniform(rng, HOUR, 30.0 * DAY)
    }
}

/// Phi when a hang was declared: the threshold 8 plus an exponential overshoot.
fn suspicion<R: Rng>(rng: &mut R, mean_overshoot: f32) -> f32 {
    let overshoot: f32 = Exp::new(1.0 / mean_overshoot)
        .expect("mean is positive")
        .sample(rng);
    (8.0 + overshoot).min(16.0)
}

/// Fills in an exit: crash kinds get exits and an exit status or signal; other kinds none.
fn exit<R: Rng>(rng: &mut R, observation: &mut Observation, causes: &[(Exit, f32)]) {
    observation.recent_exits = match observation.fault {
        FaultKind::Crash => rng.random_range(1..=2),
        FaultKind::CrashLoop => rng.random_range(3..=8),
        _ => return,
    };
    match pick(rng, causes) {
        Exit::Code(code) => observation.exit_code = Some(code),
        Exit::Signal(signal) => observation.signal = Some(signal),
    }
}

#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    Signal(i32),
}

const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGKILL: i32 = 9;
const SIGSEGV: i32 = 11;

impl Scenario {
    /// Draws a cause from the priors and the hints it shows.
    pub fn draw<R: Rng>(rng: &mut R) -> Scenario {
        let weights = WeightedIndex::new(CAUSE_WEIGHTS).expect("cause weights are positive");
        let cause = RootCause::ALL[weights.sample(rng)];
        Scenario::draw_with_cause(rng, cause)
    }

    /// Draws the hints of a given cause.
    pub fn draw_with_cause<R: Rng>(rng: &mut R, cause: RootCause) -> Scenario {
        let desired = pick(rng, &[(1, 0.2), (2, 0.25), (3, 0.4), (5, 0.15)]);
        let mut observation = Observation::new(FaultKind::Crash);
        observation.desired_replicas = desired;
        observation.rollback_available = rng.random_bool(0.85);
        let mut scenario = Scenario {
            cause,
            observation,
            leak_from_release: false,
            outage_secs: 0.0,
        };

        let others = desired - 1;
        let uptime_low = match cause {
            RootCause::Transient => transient(rng, &mut scenario, others),
            RootCause::BadRelease => bad_release(rng, &mut scenario, others),
            RootCause::CorruptArtifact => corrupt_artifact(rng, &mut scenario),
            RootCause::NodeProblem => node_problem(rng, &mut scenario, others),
            RootCause::DependencyOutage => dependency_outage(rng, &mut scenario, others),
            RootCause::MemoryLeak => memory_leak(rng, &mut scenario, others),
            RootCause::Overload => overload(rng, &mut scenario, others),
            RootCause::Flapping => flapping(rng, &mut scenario, others),
        };

        let observation = &mut scenario.observation;
        if observation.fault == FaultKind::Hang {
            let mean_overshoot = if cause == RootCause::Flapping {
                0.5
            } else {
                2.0
            };
            observation.suspicion = suspicion(rng, mean_overshoot);
        }
        let deploy = observation.since_deploy_secs.unwrap_or(30.0 * DAY);
        observation.uptime_secs = Some(match observation.fault {
            FaultKind::CrashLoop => log_uniform(rng, 1.0, MINUTE),
            _ => log_uniform(rng, uptime_low.min(deploy), deploy),
        });
        if rng.random_bool(0.05) {
            observation.since_deploy_secs = None;
        }
        if rng.random_bool(0.05) {
            observation.uptime_secs = None;
        }
        observation.healthy_replicas = others.saturating_sub(observation.workload_peer_faults);
        scenario
    }
}

// Each function below draws the hints of one cause into the scenario's observation, given the
// number of other replicas, and returns the lower bound of the target's uptime.

/// One-off crash or deadlock: long after a deploy, a single exit.
fn transient<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    observation.fault = pick(rng, &[(FaultKind::Crash, 0.65), (FaultKind::Hang, 0.35)]);
    let deploy = since_deploy(rng, 0.1, (5.0 * MINUTE, HOUR));
    observation.since_deploy_secs = Some(deploy);
    let exits = [
        (Exit::Code(101), 0.35),
        (Exit::Code(1), 0.25),
        (Exit::Signal(SIGABRT), 0.25),
        (Exit::Signal(SIGKILL), 0.15),
    ];
    exit(rng, observation, &exits);
    if observation.fault == FaultKind::Crash {
        observation.recent_exits = 1 + u32::from(rng.random_bool(0.15));
    }
    observation.node_peer_faults = u32::from(rng.random_bool(0.1));
    observation.workload_peer_faults = u32::from(rng.random_bool(0.1)).min(others);
    UPTIME_LOW
}

/// Bad release: soon after a deploy, often a crash loop, with replicas failing together.
fn bad_release<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::CrashLoop, 0.5),
        (FaultKind::Crash, 0.15),
        (FaultKind::Unhealthy, 0.2),
        (FaultKind::LogAnomaly, 0.15),
    ];
    observation.fault = pick(rng, &kinds);
    let deploy = since_deploy(rng, 0.85, (30.0, 30.0 * MINUTE));
    observation.since_deploy_secs = Some(deploy);
    let exits = [
        (Exit::Code(1), 0.7),
        (Exit::Signal(SIGABRT), 0.2),
        (Exit::Signal(SIGSEGV), 0.1),
    ];
    exit(rng, observation, &exits);
    observation.workload_peer_faults = binomial(rng, others, 0.6);
    observation.node_peer_faults = u32::from(rng.random_bool(0.1));
    // Crashing instances restarted since the deploy; the others run since it.
    if observation.recent_exits > 0 {
        1.0
    } else {
        deploy
    }
}

/// Corrupt artifact or data: a checksum mismatch, or a crash with a memory-fault signal.
fn corrupt_artifact<R: Rng>(rng: &mut R, scenario: &mut Scenario) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::ChecksumMismatch, 0.7),
        (FaultKind::Crash, 0.15),
        (FaultKind::CrashLoop, 0.15),
    ];
    observation.fault = pick(rng, &kinds);
    let deploy = since_deploy(rng, 0.2, (MINUTE, HOUR));
    observation.since_deploy_secs = Some(deploy);
    let exits = [
        (Exit::Signal(SIGSEGV), 0.5),
        (Exit::Signal(SIGBUS), 0.3),
        (Exit::Code(1), 0.2),
    ];
    exit(rng, observation, &exits);
    observation.node_peer_faults = u32::from(rng.random_bool(0.15));
    UPTIME_LOW
}

/// Node problem: other instances on the same node fault too.
fn node_problem<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::Hang, 0.4),
        (FaultKind::Crash, 0.3),
        (FaultKind::Unhealthy, 0.3),
    ];
    observation.fault = pick(rng, &kinds);
    observation.since_deploy_secs = Some(since_deploy(rng, 0.05, (5.0 * MINUTE, HOUR)));
    let exits = [
        (Exit::Signal(SIGKILL), 0.5),
        (Exit::Signal(SIGBUS), 0.2),
        (Exit::Code(1), 0.3),
    ];
    exit(rng, observation, &exits);
    if rng.random_bool(0.75) {
        observation.node_peer_faults = rng.random_range(1..=3);
    }
    observation.workload_peer_faults = u32::from(rng.random_bool(0.3)).min(others);
    UPTIME_LOW
}

/// Dependency outage: most replicas fail with the target, until the dependency is back.
fn dependency_outage<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::DependencyFailure, 0.6),
        (FaultKind::Unhealthy, 0.3),
        (FaultKind::LogAnomaly, 0.1),
    ];
    observation.fault = pick(rng, &kinds);
    observation.since_deploy_secs = Some(since_deploy(rng, 0.1, (5.0 * MINUTE, HOUR)));
    observation.workload_peer_faults = if rng.random_bool(0.7) {
        others
    } else {
        binomial(rng, others, 0.3)
    };
    observation.node_peer_faults = rng.random_range(0..=2);
    scenario.outage_secs = log_normal(rng, 60.0, 0.6);
    UPTIME_LOW
}

/// Memory leak: hours to days of uptime, then resource exhaustion or an OOM kill.
fn memory_leak<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::ResourceExhaustion, 0.5),
        (FaultKind::Crash, 0.5),
    ];
    observation.fault = pick(rng, &kinds);
    scenario.leak_from_release = rng.random_bool(0.3);
    let deploy = if scenario.leak_from_release {
        log_uniform(rng, 2.0 * HOUR, 2.0 * DAY)
    } else {
        log_uniform(rng, DAY, 30.0 * DAY)
    };
    observation.since_deploy_secs = Some(deploy);
    if observation.fault == FaultKind::Crash {
        observation.recent_exits = 1;
        observation.signal = Some(SIGKILL);
        observation.oom_killed = true;
    }
    observation.workload_peer_faults = binomial(rng, others, 0.2);
    // A leak that came with the release has grown since the deploy.
    if scenario.leak_from_release {
        deploy
    } else {
        6.0 * HOUR
    }
}

/// Overload: replicas strained together, without an OOM kill.
fn overload<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    let kinds = [
        (FaultKind::ResourceExhaustion, 0.45),
        (FaultKind::Hang, 0.3),
        (FaultKind::Unhealthy, 0.25),
    ];
    observation.fault = pick(rng, &kinds);
    observation.since_deploy_secs = Some(since_deploy(rng, 0.1, (5.0 * MINUTE, HOUR)));
    observation.workload_peer_faults = binomial(rng, others, 0.6);
    observation.node_peer_faults = u32::from(rng.random_bool(0.2));
    UPTIME_LOW
}

/// Flapping health check: unhealthy, or a hang barely past the suspicion threshold.
fn flapping<R: Rng>(rng: &mut R, scenario: &mut Scenario, others: u32) -> f32 {
    let observation = &mut scenario.observation;
    observation.fault = pick(rng, &[(FaultKind::Unhealthy, 0.6), (FaultKind::Hang, 0.4)]);
    observation.since_deploy_secs = Some(since_deploy(rng, 0.15, (5.0 * MINUTE, HOUR)));
    observation.node_peer_faults = u32::from(rng.random_bool(0.1));
    observation.workload_peer_faults = u32::from(rng.random_bool(0.1)).min(others);
    UPTIME_LOW
}
