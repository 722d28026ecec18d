//! Safety guards between the policy and the world. Each guard gives a verdict on a proposed
//! action; the action runs only when every guard allows it.
//!
//! | guard | allows when | otherwise |
//! | --- | --- | --- |
//! | `last_healthy_replica` | the target is already out of service, or another replica serves | deny: a person decides |
//! | `global_rate` | a token is left in the global bucket | defer until a token refills |
//! | `workload_rate` | a token is left in the workload's bucket | defer until a token refills |
//! | `target_backoff` | the target's back-off since its previous recovery has passed | defer until it passes |
//! | `concurrency` | fewer recoveries than the cap are in flight | defer |
//!
//! Observing and escalating take nothing down, so only `last_healthy_replica` looks at them and
//! it always allows them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aro_policy::{Action, FaultKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Limits of the guards.
#[derive(Clone, Debug)]
pub(crate) struct GuardConfig {
    /// Recoveries per second across all workloads, refilled continuously.
    pub(crate) global_rate: f64,
    /// Recoveries that may start at once across all workloads.
    pub(crate) global_burst: f64,
    /// Recoveries per second for one workload.
    pub(crate) workload_rate: f64,
    /// Recoveries that may start at once for one workload.
    pub(crate) workload_burst: f64,
    /// Back-off after the second recovery of a target within `backoff_window`; it doubles with
    /// each further recovery, up to `backoff_max`, with up to 20 % jitter.
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    /// Recoveries of a target older than this no longer count towards its back-off.
    pub(crate) backoff_window: Duration,
    /// Recoveries in flight at once.
    pub(crate) max_concurrent: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            global_rate: 5.0,
            global_burst: 20.0,
            workload_rate: 2.0,
            workload_burst: 10.0,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            backoff_window: Duration::from_secs(600),
            max_concurrent: 16,
        }
    }
}

/// Proposed action with what the guards need to judge it.
#[derive(Clone, Debug)]
pub(crate) struct Proposal<'a> {
    pub(crate) incident: &'a str,
    pub(crate) workload: &'a str,
    pub(crate) target: &'a str,
    pub(crate) action: Action,
    /// Kind of the fault; `None` for a kind this brain does not know, which counts as a
    /// target that may still serve.
    pub(crate) fault: Option<FaultKind>,
    /// Serving instances of the workload, the target excluded.
    pub(crate) healthy_replicas: u32,
}

/// Verdict of one guard.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    Allow(String),
    Defer(Duration, String),
    Deny(String),
}

impl Verdict {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Verdict::Allow(reason) | Verdict::Defer(_, reason) | Verdict::Deny(reason) => reason,
        }
    }

    pub(crate) fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
}

/// Verdicts of every guard on one proposal.
#[derive(Clone, Debug)]
pub(crate) struct Evaluation {
    pub(crate) verdicts: Vec<(&'static str, Verdict)>,
}

impl Evaluation {
    /// First denial, if any guard denied.
    pub(crate) fn denied(&self) -> Option<&str> {
        self.verdicts.iter().find_map(|(_, verdict)| match verdict {
            Verdict::Deny(reason) => Some(reason.as_str()),
            _ => None,
        })
    }

    /// Maximum deferral, if any guard deferred.
    pub(crate) fn deferred(&self) -> Option<Duration> {
        self.verdicts
            .iter()
            .filter_map(|(_, verdict)| match verdict {
                Verdict::Defer(delay, _) => Some(*delay),
                _ => None,
            })
            .max()
    }

    #[cfg(test)]
    pub(crate) fn allowed(&self) -> bool {
        self.verdicts.iter().all(|(_, verdict)| verdict.allowed())
    }
}

#[derive(Clone, Debug)]
struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }

    /// Time until one token is available, zero when one is.
    fn wait(&self, rate: f64) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate.max(1e-9))
        }
    }
}

/// State of the guards. Not thread-safe: the brain holds it behind a mutex and never across an
/// await point.
#[derive(Debug)]
pub(crate) struct Guards {
    config: GuardConfig,
    global: TokenBucket,
    workloads: HashMap<String, TokenBucket>,
    /// Start times of recent recoveries, and the earliest time of the next one, per target.
    targets: HashMap<String, (Vec<Instant>, Instant)>,
    in_flight: HashMap<String, Instant>,
    rng: StdRng,
}

impl Guards {
    pub(crate) fn new(config: GuardConfig, now: Instant, seed: u64) -> Self {
        let global = TokenBucket::full(config.global_burst, now);
        Self {
            config,
            global,
            workloads: HashMap::new(),
            targets: HashMap::new(),
            in_flight: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Judges `proposal` without changing any state.
    pub(crate) fn evaluate(&mut self, now: Instant, proposal: &Proposal<'_>) -> Evaluation {
        let mut verdicts = vec![("last_healthy_replica", self.last_healthy_replica(proposal))];
        if !takes_action(proposal.action) {
            return Evaluation { verdicts };
        }
        let config = &self.config;
        self.global
            .refill(now, config.global_rate, config.global_burst);
        verdicts.push((
            "global_rate",
            rate_verdict(&self.global, config.global_rate, "global"),
        ));

        let bucket = self
            .workloads
            .entry(proposal.workload.to_owned())
            .or_insert_with(|| TokenBucket::full(config.workload_burst, now));
        bucket.refill(now, config.workload_rate, config.workload_burst);
        verdicts.push((
            "workload_rate",
            rate_verdict(bucket, config.workload_rate, proposal.workload),
        ));

        let backoff = match self.targets.get(proposal.target) {
            Some((_, not_before)) if *not_before > now => Verdict::Defer(
                *not_before - now,
                format!(
                    "{} recovered recently; back-off until it may act again",
                    proposal.target
                ),
            ),
            _ => Verdict::Allow("no back-off pending".to_owned()),
        };
        verdicts.push(("target_backoff", backoff));

        let running =
            self.in_flight.len() - usize::from(self.in_flight.contains_key(proposal.incident));
        let concurrency = if running >= self.config.max_concurrent {
            Verdict::Defer(
                Duration::from_secs(1),
                format!(
                    "{running} recoveries in flight, cap {}",
                    self.config.max_concurrent
                ),
            )
        } else {
            Verdict::Allow(format!(
                "{running} recoveries in flight, cap {}",
                self.config.max_concurrent
            ))
        };
        verdicts.push(("concurrency", concurrency));
        Evaluation { verdicts }
    }

    /// Records that `proposal` was carried out: takes its tokens, starts its back-off and
    /// counts it in flight until [`Guards::finish`].
    pub(crate) fn commit(&mut self, now: Instant, proposal: &Proposal<'_>) {
        if !takes_action(proposal.action) {
            return;
        }
        let config = &self.config;
        self.global
            .refill(now, config.global_rate, config.global_burst);
        self.global.tokens -= 1.0;
        let bucket = self
            .workloads
            .entry(proposal.workload.to_owned())
            .or_insert_with(|| TokenBucket::full(config.workload_burst, now));
        bucket.refill(now, config.workload_rate, config.workload_burst);
        bucket.tokens -= 1.0;
        self.in_flight.insert(proposal.incident.to_owned(), now);

        let window = self.config.backoff_window;
        let (base, max) = (self.config.backoff_base, self.config.backoff_max);
        let (starts, not_before) = self
            .targets
            .entry(proposal.target.to_owned())
            .or_insert_with(|| (Vec::new(), now));
        starts.retain(|&start| now.saturating_duration_since(start) < window);
        starts.push(now);
        // The first two recoveries in the window run at once; each later one waits twice as long.
        let exponent = starts.len().saturating_sub(2) as u32;
        let delay = if exponent == 0 {
            Duration::ZERO
        } else {
            let delay = base
                .saturating_mul(2u32.saturating_pow(exponent - 1))
                .min(max);
            delay.mul_f64(1.0 + self.rng.random_range(0.0..0.2))
        };
        *not_before = now + delay;
    }

    /// Ends the in-flight count of an incident once its outcome arrived.
    pub(crate) fn finish(&mut self, incident: &str) {
        self.in_flight.remove(incident);
    }

    fn last_healthy_replica(&self, proposal: &Proposal<'_>) -> Verdict {
        if !proposal.action.takes_target_down() {
            return Verdict::Allow(format!(
                "{} takes nothing out of service",
                proposal.action.as_str()
            ));
        }
        if let Some(fault) = proposal.fault.filter(|&fault| target_out_of_service(fault)) {
            return Verdict::Allow(format!(
                "{} is already out of service ({})",
                proposal.target,
                fault.as_str()
            ));
        }
        if proposal.healthy_replicas == 0 {
            return Verdict::Deny(format!(
                "{} is the last healthy replica of {}; {} would leave none serving",
                proposal.target,
                proposal.workload,
                proposal.action.as_str()
            ));
        }
        Verdict::Allow(format!(
            "{} other replicas serve",
            proposal.healthy_replicas
        ))
    }
}

fn takes_action(action: Action) -> bool {
    !matches!(action, Action::Observe | Action::Escalate)
}

/// True for faults after which the target serves nothing any more, so acting on it cannot
/// lower the number of serving replicas.
fn target_out_of_service(fault: FaultKind) -> bool {
    matches!(
        fault,
        FaultKind::Crash | FaultKind::CrashLoop | FaultKind::Hang | FaultKind::Unhealthy
    )
}

fn rate_verdict(bucket: &TokenBucket, rate: f64, scope: &str) -> Verdict {
    let wait = bucket.wait(rate);
    if wait.is_zero() {
        Verdict::Allow(format!("{:.1} tokens left for {scope}", bucket.tokens))
    } else {
        Verdict::Defer(wait, format!("rate limit of {rate}/s reached for {scope}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal<'a>(
        incident: &'a str,
        target: &'a str,
        fault: FaultKind,
        healthy: u32,
    ) -> Proposal<'a> {
        Proposal {
            incident,
            workload: "web",
            target,
            action: Action::Restart,
            fault: Some(fault),
            healthy_replicas: healthy,
        }
    }

    fn guards(config: GuardConfig, now: Instant) -> Guards {
        Guards::new(config, now, 7)
    }

    #[test]
    fn last_healthy_replica_is_never_taken_down() {
        let now = Instant::now();
        let mut guards = guards(GuardConfig::default(), now);
        let evaluation = guards.evaluate(now, &proposal("i1", "web-1", FaultKind::LogAnomaly, 0));
        let reason = evaluation
            .denied()
            .expect("a serving last replica must be protected");
        assert!(reason.contains("last healthy replica"), "{reason}");
    }

    #[test]
    fn crashed_last_replica_may_be_restarted() {
        let now = Instant::now();
        let mut guards = guards(GuardConfig::default(), now);
        let evaluation = guards.evaluate(now, &proposal("i1", "web-1", FaultKind::Crash, 0));
        assert!(evaluation.allowed(), "{evaluation:?}");
    }

    #[test]
    fn escalation_passes_every_guard() {
        let now = Instant::now();
        let config = GuardConfig {
            global_burst: 0.0,
            ..GuardConfig::default()
        };
        let mut guards = guards(config, now);
        let mut escalate = proposal("i1", "web-1", FaultKind::LogAnomaly, 0);
        escalate.action = Action::Escalate;
        assert!(guards.evaluate(now, &escalate).allowed());
    }

    #[test]
    fn global_rate_defers_until_a_token_refills() {
        let now = Instant::now();
        let config = GuardConfig {
            global_rate: 2.0,
            global_burst: 1.0,
            ..GuardConfig::default()
        };
        let mut guards = guards(config, now);
        let first = proposal("i1", "web-1", FaultKind::Crash, 1);
        assert!(guards.evaluate(now, &first).allowed());
        guards.commit(now, &first);

        let second = proposal("i2", "web-2", FaultKind::Crash, 1);
        let delay = guards
            .evaluate(now, &second)
            .deferred()
            .expect("the bucket is empty");
        assert_eq!(delay, Duration::from_millis(500));
        let later = now + Duration::from_millis(500);
        assert!(guards.evaluate(later, &second).allowed());
    }

    #[test]
    fn workload_rate_is_per_workload() {
        let now = Instant::now();
        let config = GuardConfig {
            workload_burst: 1.0,
            ..GuardConfig::default()
        };
        let mut guards = guards(config, now);
        let web = proposal("i1", "web-1", FaultKind::Crash, 1);
        guards.commit(now, &web);
        assert!(
            guards
                .evaluate(now, &proposal("i2", "web-2", FaultKind::Crash, 1))
                .deferred()
                .is_some()
        );
        let mut db = proposal("i3", "db-1", FaultKind::Crash, 1);
        db.workload = "db";
        assert!(guards.evaluate(now, &db).allowed());
    }

    #[test]
    fn target_backoff_doubles_from_the_third_recovery() {
        let now = Instant::now();
        let mut guards = guards(GuardConfig::default(), now);
        let mut at = now;
        let mut delays = Vec::new();
        for n in 0..5 {
            let incident = format!("i{n}");
            let restart = proposal(&incident, "web-1", FaultKind::Crash, 1);
            let delay = guards
                .evaluate(at, &restart)
                .deferred()
                .unwrap_or(Duration::ZERO);
            delays.push(delay);
            at += delay;
            guards.commit(at, &restart);
            guards.finish(&incident);
        }
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[1], Duration::ZERO);
        assert_eq!(delays[2], Duration::ZERO);
        // The third recovery set a back-off of 1 s (plus jitter), the fourth 2 s.
        assert!(
            delays[3] >= Duration::from_secs(1) && delays[3] <= Duration::from_millis(1200),
            "{delays:?}"
        );
        assert!(
            delays[4] >= Duration::from_secs(2) && delays[4] <= Duration::from_millis(2400),
            "{delays:?}"
        );
    }

    #[test]
    fn concurrency_cap_defers_new_recoveries() {
        let now = Instant::now();
        let config = GuardConfig {
            max_concurrent: 1,
            ..GuardConfig::default()
        };
        let mut guards = guards(config, now);
        let first = proposal("i1", "web-1", FaultKind::Crash, 1);
        guards.commit(now, &first);
        assert!(
            guards
                .evaluate(now, &proposal("i2", "web-2", FaultKind::Crash, 1))
                .deferred()
                .is_some()
        );
        // The incident already in flight may take its next rung.
        assert!(guards.evaluate(now, &first).deferred().is_none());
        guards.finish("i1");
        assert!(
            guards
                .evaluate(now, &proposal("i2", "web-2", FaultKind::Crash, 1))
                .allowed()
        );
    }
}
