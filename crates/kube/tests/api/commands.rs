use std::time::Duration;

use aro_kube::commands::{Execution, Executor};
use aro_proto::v1::{Action, Outcome, OutcomeStatus};
use kube::Client;

use crate::fixtures::*;
use crate::scenario::Scenario;

fn executor(client: Client) -> Executor {
    Executor::new(actuator(client), vec![NAMESPACE.to_owned()])
}

fn finished(execution: Execution) -> Outcome {
    match execution {
        Execution::Finished(outcome) => *outcome,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn restart_evicts_and_verifies_the_replacement() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .evict_pod(1)
        .event(NAMESPACE, "Normal", "Evicted", "Pod", &pod_name(1))
        .list_web_pods(vec![pod(2, true, "101"), pod(3, true, "110")])
        .run(executor, async |executor| {
            executor.execute(&command(Action::Restart)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert_eq!(outcome.id, "out-cmd-inc-web-1-a1");
    assert_eq!(
        outcome.replacement.map(|pod| pod.instance),
        Some(pod_name(3))
    );
    assert!(outcome.verified_at.is_some());
}

#[tokio::test(start_paused = true)]
async fn replace_fails_when_the_workload_stays_short() {
    let mut scenario = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "102"))
        .event(NAMESPACE, "Normal", "Isolated", "Pod", &pod_name(1));
    // A 10 s verification that looks every second, from 0 s to 10 s.
    for _ in 0..=10 {
        scenario = scenario.list_web_pods(vec![pod(2, true, "101"), pod(3, false, "110")]);
    }
    let execution = scenario
        .run(executor, async |executor| {
            executor.execute(&command(Action::Replace)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(outcome.status(), OutcomeStatus::Failed);
    assert!(
        outcome.message.contains("serves only 1/2 replicas"),
        "{}",
        outcome.message
    );
    assert!(outcome.isolated_at.is_some());
}

#[tokio::test]
async fn blocked_restart_is_retried_later() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .post(&format!("{}/eviction", pod_path(&pod_name(1))))
        .reply(
            429,
            status(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            ),
        )
        .event(NAMESPACE, "Warning", "EvictionBlocked", "Pod", &pod_name(1))
        .run(executor, async |executor| {
            executor.execute(&command(Action::Restart)).await
        })
        .await;

    match execution {
        Execution::RetryAfter { delay, reason } => {
            assert_eq!(
                delay,
                Duration::from_secs(10),
                "the default back-off applies without retryAfterSeconds"
            );
            assert!(reason.contains("disruption budget"), "{reason}");
        }
        other => panic!("expected RetryAfter, got {other:?}"),
    }
}

#[tokio::test]
async fn replacing_the_last_ready_pod_is_rejected() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .list_web_pods(vec![pod(1, true, "100")])
        .run(executor, async |executor| {
            executor.execute(&command(Action::Replace)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(outcome.status(), OutcomeStatus::Rejected);
    assert_eq!(
        outcome.message,
        format!(
            "pod {} is the last ready pod of web; it is not touched",
            pod_name(1)
        )
    );
}

#[tokio::test]
async fn rollback_command_waits_for_the_rollout() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .get(REPLICA_SETS)
        .query(SELECTOR)
        .reply(
            200,
            replica_set_list(vec![
                replica_set(3, "web:v3", "uid-deploy"),
                replica_set(2, "web:v2", "uid-deploy"),
            ]),
        )
        .check_lease()
        .put(DEPLOYMENT)
        .body_at("/spec/template", template("web:v2", None))
        .echo(200)
        .event(NAMESPACE, "Normal", "RolledBack", "Deployment", "web")
        .read_deployment()
        .run(executor, async |executor| {
            executor.execute(&command(Action::Rollback)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert!(
        outcome
            .message
            .starts_with("rolled deployment web back from revision 3 to 2"),
        "{}",
        outcome.message
    );
}

#[tokio::test]
async fn escalation_calls_nothing() {
    let execution = Scenario::new()
        .run(executor, async |executor| {
            executor.execute(&command(Action::Escalate)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(outcome.status(), OutcomeStatus::Noop);
}

#[tokio::test]
async fn command_for_a_vanished_pod_is_superseded() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(404, not_found("pods web-5d8f7c9b4-p1"))
        .run(executor, async |executor| {
            executor.execute(&command(Action::Restart)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(outcome.status(), OutcomeStatus::Superseded);
    assert_eq!(
        outcome.message,
        format!("pod {} not found in namespaces [\"shop\"]", pod_name(1))
    );
}

#[tokio::test]
async fn lease_held_elsewhere_defers_the_command() {
    let execution = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T18:59:55.000000Z"))
        .run(executor, async |executor| {
            executor.execute(&command(Action::Restart)).await
        })
        .await;

    match execution {
        Execution::RetryAfter { delay, .. } => assert_eq!(delay, Duration::from_secs(30)),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn long_verification_renews_the_lease() {
    let mut scenario = Scenario::new()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .evict_pod(1)
        .event(NAMESPACE, "Normal", "Evicted", "Pod", &pod_name(1));
    // The looks at 0 s to 15 s find one serving pod. Half the 30 s lease has passed after the
    // one at 15 s, so the lease is renewed before the look at 16 s finds two.
    for _ in 0..=15 {
        scenario = scenario.list_web_pods(vec![pod(2, true, "101")]);
    }
    let slow_verification = |client: Client| {
        let settings = aro_kube::Settings {
            verify_timeout: Duration::from_secs(30),
            ..settings()
        };
        let actuator = aro_kube::Actuator::new(client, settings, aro_kube::Clock::fixed(now()));
        Executor::new(actuator, vec![NAMESPACE.to_owned()])
    };
    let execution = scenario
        .renew_lease()
        .list_web_pods(vec![pod(2, true, "101"), pod(3, true, "110")])
        .run(slow_verification, async |executor| {
            executor.execute(&command(Action::Restart)).await
        })
        .await;

    let outcome = finished(execution);
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
}
