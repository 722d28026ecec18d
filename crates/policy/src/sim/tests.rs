use super::*;
use crate::action::Action;
use crate::fault::FaultKind;

fn play(seed: u64, actions: &[Action]) -> Vec<(f32, bool, StepInfo)> {
    let mut episode = Episode::new(seed);
    let mut steps = Vec::new();
    for action in actions {
        if episode.is_done() {
            break;
        }
        let step = episode.step(*action).expect("episode is open");
        steps.push((step.reward, step.done, step.info));
    }
    steps
}

/// Share of `seeds` episodes of `cause` that `action` ends on the first step.
fn first_step_fix_share(cause: RootCause, action: Action, seeds: u64) -> f64 {
    let fixed = (0..seeds)
        .filter(|seed| {
            let mut episode = Episode::with_cause(*seed, cause);
            episode.step(action).expect("first step").done
        })
        .count();
    fixed as f64 / seeds as f64
}

#[test]
fn same_seed_gives_same_episode() {
    let actions = [
        Action::Restart,
        Action::Replace,
        Action::Rollback,
        Action::Move,
    ];
    for seed in 0..200 {
        assert_eq!(
            Episode::new(seed).observation(),
            Episode::new(seed).observation()
        );
        assert_eq!(play(seed, &actions), play(seed, &actions), "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_episodes() {
    let distinct: std::collections::HashSet<String> = (0..50)
        .map(|seed| format!("{:?}", Episode::new(seed).observation()))
        .collect();
    assert!(
        distinct.len() > 45,
        "only {} distinct observations",
        distinct.len()
    );
}

#[test]
fn same_scenario_for_every_policy() {
    let mut first = Episode::new(77);
    let second = Episode::new(77);
    first.step(Action::Observe).expect("first step");
    assert_eq!(first.scenario(), second.scenario());
}

#[test]
fn episode_ends_by_hand_over() {
    for seed in 0..100 {
        let mut episode = Episode::new(seed);
        let mut steps = 0;
        while !episode.is_done() {
            episode.step(Action::Rollback).expect("episode is open");
            steps += 1;
        }
        assert!(
            steps <= HANDOVER_AFTER_ATTEMPTS,
            "seed {seed} took {steps} steps"
        );
    }
}

#[test]
fn step_after_end_is_an_error() {
    let mut episode = Episode::new(1);
    let step = episode.step(Action::Escalate).expect("first step");
    assert!(step.done);
    assert!(step.info.paged);
    assert!(matches!(
        episode.step(Action::Restart),
        Err(SimError::EpisodeOver)
    ));
}

#[test]
fn observation_advances_after_failure() {
    let mut episode = Episode::with_cause(3, RootCause::NodeProblem);
    let first = episode.observation().clone();
    let step = episode.step(Action::Observe).expect("first step");
    assert!(!step.done);
    let next = episode.observation();
    assert_eq!(next.attempt, first.attempt + 1);
    assert_eq!(next.previous_action, Some(Action::Observe));
    assert!(next.previous_failed);
    assert!(next.tried.contains(Action::Observe));
    assert_eq!(next.incident_age_secs, OBSERVE_WAIT_SECS);
    assert!(step.info.wrong_action);
}

#[test]
fn restart_does_not_fix_corrupt_artifact() {
    assert!(first_step_fix_share(RootCause::CorruptArtifact, Action::Restart, 400) < 0.1);
    assert!(first_step_fix_share(RootCause::CorruptArtifact, Action::Replace, 400) > 0.9);
}

#[test]
fn restart_fixes_transient_faults() {
    assert!(first_step_fix_share(RootCause::Transient, Action::Restart, 400) > 0.9);
}

#[test]
fn rollback_fixes_bad_release_only_with_previous_version() {
    for seed in 0..300 {
        let mut episode = Episode::with_cause(seed, RootCause::BadRelease);
        let available = episode.observation().rollback_available;
        let step = episode.step(Action::Rollback).expect("first step");
        if !available {
            assert!(
                !step.done,
                "seed {seed}: rollback without previous version recovered"
            );
            assert!(step.info.wrong_action);
            assert_eq!(step.info.elapsed_secs, 1.0);
            assert!(step.info.cost <= NO_REPLICA_WEIGHT * step.info.downtime_secs);
        }
    }
    assert!(first_step_fix_share(RootCause::BadRelease, Action::Rollback, 400) > 0.75);
}

#[test]
fn bad_release_follows_recent_deploy() {
    let recent = |cause| {
        (0..400)
            .filter(|seed| {
                let episode = Episode::with_cause(*seed, cause);
                episode
                    .observation()
                    .since_deploy_secs
                    .is_some_and(|secs| secs < 1_800.0)
            })
            .count()
    };
    assert!(recent(RootCause::BadRelease) > 300);
    assert!(recent(RootCause::Transient) < 60);
}

#[test]
fn corrupt_artifact_shows_checksum_mismatch() {
    let mismatches = (0..400)
        .filter(|seed| {
            let episode = Episode::with_cause(*seed, RootCause::CorruptArtifact);
            episode.observation().fault == FaultKind::ChecksumMismatch
        })
        .count();
    assert!((240..320).contains(&mismatches), "{mismatches} of 400");
}

#[test]
fn dependency_outage_ends_by_waiting() {
    for seed in 0..100 {
        let mut episode = Episode::with_cause(seed, RootCause::DependencyOutage);
        while !episode.is_done() {
            episode.step(Action::Observe).expect("episode is open");
        }
        let record = episode.record();
        let outage = episode.scenario().outage_secs;
        if record.paged {
            assert_eq!(
                record.actions.len() as u32,
                HANDOVER_AFTER_ATTEMPTS,
                "seed {seed}"
            );
        } else {
            // The last observe ends when the health check passes, 2 s after the dependency is back.
            let end = outage + 2.0;
            assert!((record.duration_secs - end).abs() < 1e-3, "seed {seed}");
        }
        assert_eq!(record.wrong_actions, 0);
    }
}

#[test]
fn relapse_is_not_a_failure() {
    let relapsed = (0..200).find_map(|seed| {
        let mut episode = Episode::with_cause(seed, RootCause::Overload);
        let step = episode.step(Action::Restart).expect("first step");
        step.info.relapsed.then(|| episode.observation().clone())
    });
    let observation = relapsed.expect("a restart under overload relapses in 200 seeds");
    assert!(!observation.previous_failed);
    assert_eq!(observation.previous_action, Some(Action::Restart));
}

#[test]
fn crash_becomes_crash_loop_after_failed_restarts() {
    let seed = (0..200)
        .find(|seed| {
            let episode = Episode::with_cause(*seed, RootCause::CorruptArtifact);
            episode.observation().fault == FaultKind::Crash
        })
        .expect("a corrupt artifact shows as a crash in 200 seeds");
    let mut episode = Episode::with_cause(seed, RootCause::CorruptArtifact);
    for _ in 0..3 {
        if !episode.is_done() {
            episode.step(Action::Restart).expect("episode is open");
        }
    }
    if !episode.is_done() {
        assert_eq!(episode.observation().fault, FaultKind::CrashLoop);
        assert!(episode.observation().recent_exits >= 3);
    }
}

#[test]
fn scale_out_adds_a_serving_replica() {
    let mut episode = Episode::with_cause(8, RootCause::NodeProblem);
    let before = episode.observation().clone();
    let step = episode.step(Action::ScaleOut).expect("first step");
    assert!(!step.done);
    assert_eq!(
        episode.observation().healthy_replicas,
        before.healthy_replicas + 1
    );
    assert_eq!(
        episode.observation().desired_replicas,
        before.desired_replicas + 1
    );
}

#[test]
fn downtime_costs_more_without_replicas() {
    let mut alone = None;
    let mut replicated = None;
    for seed in 0..400 {
        let mut episode = Episode::with_cause(seed, RootCause::NodeProblem);
        let last = episode.observation().is_last_replica();
        let step = episode.step(Action::Observe).expect("first step");
        let ratio = step.info.cost / step.info.downtime_secs;
        if last {
            alone.get_or_insert(ratio);
        } else {
            replicated.get_or_insert(ratio);
        }
    }
    assert_eq!(alone, Some(NO_REPLICA_WEIGHT));
    assert_eq!(replicated, Some(1.0));
}

#[test]
fn causes_follow_priors() {
    let mut counts = [0_u32; 8];
    for seed in 0..8_000 {
        let cause = Episode::new(seed).cause();
        let index = RootCause::ALL
            .iter()
            .position(|known| *known == cause)
            .expect("known cause");
        counts[index] += 1;
    }
    let transient = f64::from(counts[0]) / 8_000.0;
    let corrupt = f64::from(counts[2]) / 8_000.0;
    assert!(
        (0.20..0.24).contains(&transient),
        "transient share {transient}"
    );
    assert!((0.065..0.095).contains(&corrupt), "corrupt share {corrupt}");
}
