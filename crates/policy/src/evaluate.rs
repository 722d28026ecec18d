//! Running policies over seeded episodes of the simulator and summarising how they did.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::observation::Observation;
use crate::rules;
use crate::sim::{Episode, EpisodeRecord, RootCause};

/// Episodes of an evaluation: seeds `first_seed` to `first_seed + episodes - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalConfig {
    pub episodes: u64,
    pub first_seed: u64,
}

/// Policies that the crate can run itself, to compare the trained model against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// [`rules::decide`].
    Rules,
    /// Always restart and never escalate, as Kubernetes does; the simulator still hands the
    /// incident to a person after its last attempt.
    RestartOnly,
    /// Uniformly random actions.
    Random,
    /// Policy that is given the root cause; see [`oracle`].
    Oracle,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 4] = [
        Baseline::Rules,
        Baseline::RestartOnly,
        Baseline::Random,
        Baseline::Oracle,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Baseline::Rules => "rules",
            Baseline::RestartOnly => "restart_only",
            Baseline::Random => "random",
            Baseline::Oracle => "oracle",
        }
    }
}

crate::impl_names!(Baseline, "baseline policy");

/// Figures of a policy over a set of episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub episodes: u64,
    /// Mean seconds of target downtime per incident.
    pub mean_downtime_secs: f64,
    /// Mean cost per incident, in seconds of downtime.
    pub mean_cost: f64,
    /// Wrong actions over all incidents.
    pub wrong_actions: u64,
    /// Wrong actions per incident.
    pub wrong_actions_per_fault: f64,
    /// Actions per incident.
    pub actions_per_fault: f64,
    /// Incidents in which a person was paged.
    pub paged: u64,
    /// Share of incidents in which a person was paged.
    pub paged_share: f64,
    /// The same figures for each root cause that occurred, in [`RootCause::ALL`] order.
    pub per_cause: Vec<CauseSummary>,
}

/// Figures of a policy on the incidents of one root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CauseSummary {
    pub cause: RootCause,
    pub episodes: u64,
    pub mean_downtime_secs: f64,
    pub mean_cost: f64,
    pub wrong_actions_per_fault: f64,
    pub actions_per_fault: f64,
    pub paged: u64,
}

struct Totals {
    episodes: u64,
    downtime: f64,
    cost: f64,
    wrong: u64,
    actions: u64,
    paged: u64,
}

impl Totals {
    fn of<'a>(records: impl Iterator<Item = &'a EpisodeRecord>) -> Totals {
        let mut totals = Totals {
            episodes: 0,
            downtime: 0.0,
            cost: 0.0,
            wrong: 0,
            actions: 0,
            paged: 0,
        };
        for record in records {
            totals.episodes += 1;
            totals.downtime += f64::from(record.downtime_secs);
            totals.cost += f64::from(record.cost);
            totals.wrong += u64::from(record.wrong_actions);
            totals.actions += record.actions.len() as u64;
            totals.paged += u64::from(record.paged);
        }
        totals
    }

    fn per_episode(&self, total: f64) -> f64 {
        if self.episodes == 0 {
            0.0
        } else {
            total / self.episodes as f64
        }
    }
}

impl Summary {
    /// Summarises finished episodes.
    pub fn from_records(records: &[EpisodeRecord]) -> Summary {
        let all = Totals::of(records.iter());
        let per_cause = RootCause::ALL
            .into_iter()
            .filter_map(|cause| {
                let totals = Totals::of(records.iter().filter(|record| record.cause == cause));
                (totals.episodes > 0).then(|| CauseSummary {
                    cause,
                    episodes: totals.episodes,
                    mean_downtime_secs: totals.per_episode(totals.downtime),
                    mean_cost: totals.per_episode(totals.cost),
                    wrong_actions_per_fault: totals.per_episode(totals.wrong as f64),
                    actions_per_fault: totals.per_episode(totals.actions as f64),
                    paged: totals.paged,
                })
            })
            .collect();
        Summary {
            episodes: all.episodes,
            mean_downtime_secs: all.per_episode(all.downtime),
            mean_cost: all.per_episode(all.cost),
            wrong_actions: all.wrong,
            wrong_actions_per_fault: all.per_episode(all.wrong as f64),
            actions_per_fault: all.per_episode(all.actions as f64),
            paged: all.paged,
            paged_share: all.per_episode(all.paged as f64),
            per_cause,
        }
    }
}

/// Runs `policy` over the episodes of `config`. The policy gets the whole episode, the hidden
/// cause included.
pub fn run_episodes<F>(config: EvalConfig, mut policy: F) -> Vec<EpisodeRecord>
where
    F: FnMut(&Episode) -> Action,
{
    (0..config.episodes)
        .map(|offset| {
            let mut episode = Episode::new(config.first_seed.wrapping_add(offset));
            while !episode.is_done() {
                let action = policy(&episode);
                episode
                    .step(action)
                    .expect("the loop steps only episodes that are not over");
            }
            episode.record().clone()
        })
        .collect()
}

/// Runs a policy that reads only the observation, as the brain's policies do.
pub fn evaluate<F>(config: EvalConfig, mut policy: F) -> Summary
where
    F: FnMut(&Observation) -> Action,
{
    Summary::from_records(&run_episodes(config, |episode| {
        policy(episode.observation())
    }))
}

/// Runs one of the baselines.
pub fn evaluate_baseline(baseline: Baseline, config: EvalConfig) -> Summary {
    Summary::from_records(&run_baseline(baseline, config))
}

/// Runs one of the baselines and returns every episode.
pub fn run_baseline(baseline: Baseline, config: EvalConfig) -> Vec<EpisodeRecord> {
    match baseline {
        Baseline::Rules => run_episodes(config, |episode| rules::decide(episode.observation())),
        Baseline::RestartOnly => run_episodes(config, |_| Action::Restart),
        Baseline::Random => {
            // Stream 2 keeps the policy's draws apart from the simulator's own streams.
            let mut rng = ChaCha8Rng::seed_from_u64(config.first_seed);
            rng.set_stream(2);
            run_episodes(config, |_| {
                Action::ALL[rng.random_range(0..Action::ALL.len())]
            })
        }
        Baseline::Oracle => run_episodes(config, oracle),
    }
}

/// Times the oracle tries one action before it moves to the next choice.
const ORACLE_TRIES: usize = 2;

/// Decisions for which the oracle waits out a flapping health check before it restarts.
const ORACLE_FLAPPING_OBSERVES: usize = 3;

/// Chooses the action with the lowest expected cost for the episode's hidden root cause, by
/// the tables of the simulator: each preferred action up to twice, then escalation.
pub fn oracle(episode: &Episode) -> Action {
    use Action::{Move, Observe, Replace, Restart, Rollback, ScaleOut};
    let actions = &episode.record().actions;
    let tries = |action: Action| actions.iter().filter(|taken| **taken == action).count();
    let preferences: &[Action] = match episode.cause() {
        RootCause::Transient | RootCause::MemoryLeak => &[Restart, Replace, Move],
        RootCause::BadRelease => &[Rollback],
        RootCause::CorruptArtifact => &[Replace, Move],
        RootCause::NodeProblem => &[Move],
        RootCause::DependencyOutage => return Observe,
        RootCause::Overload => &[ScaleOut],
        RootCause::Flapping if tries(Observe) < ORACLE_FLAPPING_OBSERVES => return Observe,
        RootCause::Flapping => &[Restart, Replace],
    };
    let rollback_available = episode.observation().rollback_available;
    preferences
        .iter()
        .copied()
        .filter(|action| *action != Rollback || rollback_available)
        .find(|action| tries(*action) < ORACLE_TRIES)
        .unwrap_or(Action::Escalate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: EvalConfig = EvalConfig {
        episodes: 3_000,
        first_seed: 42,
    };

    #[test]
    fn oracle_beats_rules_beats_restart_only() {
        let oracle = evaluate_baseline(Baseline::Oracle, CONFIG);
        let rules = evaluate_baseline(Baseline::Rules, CONFIG);
        let restart_only = evaluate_baseline(Baseline::RestartOnly, CONFIG);
        assert!(
            oracle.mean_downtime_secs < rules.mean_downtime_secs,
            "oracle {} rules {}",
            oracle.mean_downtime_secs,
            rules.mean_downtime_secs
        );
        assert!(
            rules.mean_downtime_secs < restart_only.mean_downtime_secs,
            "rules {} restart-only {}",
            rules.mean_downtime_secs,
            restart_only.mean_downtime_secs
        );
        assert!(oracle.mean_cost < rules.mean_cost);
        assert!(rules.mean_cost < restart_only.mean_cost);
    }

    #[test]
    fn random_policy_is_worst_by_cost() {
        let random = evaluate_baseline(Baseline::Random, CONFIG);
        let rules = evaluate_baseline(Baseline::Rules, CONFIG);
        assert!(random.mean_cost > rules.mean_cost);
        assert!(random.wrong_actions_per_fault > rules.wrong_actions_per_fault);
    }

    #[test]
    fn oracle_pages_less_than_rules() {
        let oracle = evaluate_baseline(Baseline::Oracle, CONFIG);
        let rules = evaluate_baseline(Baseline::Rules, CONFIG);
        assert!(
            oracle.paged < rules.paged,
            "oracle {} rules {}",
            oracle.paged,
            rules.paged
        );
    }

    #[test]
    fn restart_only_never_escalates_itself() {
        let records = run_baseline(
            Baseline::RestartOnly,
            EvalConfig {
                episodes: 200,
                first_seed: 1,
            },
        );
        assert!(
            records
                .iter()
                .all(|record| !record.actions.contains(&Action::Escalate))
        );
    }

    #[test]
    fn summary_counts_every_episode_once() {
        let summary = evaluate_baseline(
            Baseline::Rules,
            EvalConfig {
                episodes: 500,
                first_seed: 9,
            },
        );
        assert_eq!(summary.episodes, 500);
        let per_cause: u64 = summary.per_cause.iter().map(|cause| cause.episodes).sum();
        assert_eq!(per_cause, 500);
    }

    #[test]
    fn evaluation_is_deterministic() {
        let config = EvalConfig {
            episodes: 300,
            first_seed: 5,
        };
        assert_eq!(
            evaluate_baseline(Baseline::Random, config),
            evaluate_baseline(Baseline::Random, config)
        );
    }

    #[test]
    fn baseline_names_round_trip() {
        for baseline in Baseline::ALL {
            assert_eq!(baseline.as_str().parse::<Baseline>(), Ok(baseline));
        }
        let err = "greedy"
            .parse::<Baseline>()
            .expect_err("greedy is no baseline");
        assert_eq!(err.to_string(), "unknown baseline policy \"greedy\"");
    }
}
