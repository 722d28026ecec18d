use aro_kube::digest::DigestMismatch;
use aro_kube::watch::{PodChange, PodTracker};
use aro_proto::v1::signal::Kind;
use aro_proto::v1::{Exited, InstanceState, Signal};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::scenario::Scenario;

fn typed(pod: Value) -> Pod {
    serde_json::from_value(pod).expect("the pod fixture decodes")
}

/// Pod 1 with its `app` container in `state` after `restarts` restarts.
fn pod_with(restarts: i32, state: Value, last: Option<Value>) -> Value {
    let mut pod = pod(1, true, "100");
    pod["status"]["containerStatuses"] = json!([container_status(restarts, state, last)]);
    pod
}

fn running() -> Value {
    json!({ "running": { "startedAt": "2026-12-04T18:50:00Z" } })
}

fn terminated(code: i32, reason: &str) -> Value {
    json!({ "terminated": { "exitCode": code, "reason": reason, "finishedAt": "2026-12-04T18:55:00Z" } })
}

/// What the tracker reported about one observed pod.
struct Seen {
    instance: aro_proto::v1::Instance,
    signals: Vec<Signal>,
    mismatches: Vec<DigestMismatch>,
    running: Vec<String>,
}

fn observe(tracker: &mut PodTracker, pod: Value) -> Seen {
    let mut changes = tracker.apply(Event::Apply(typed(pod)), now());
    assert_eq!(changes.len(), 1, "one change per pod: {changes:?}");
    match changes.remove(0) {
        PodChange::Observed {
            instance,
            signals,
            mismatches,
            running,
        } => Seen {
            instance,
            signals,
            mismatches,
            running,
        },
        other => panic!("expected an observation, got {other:?}"),
    }
}

fn kinds(signals: &[Signal]) -> Vec<(String, Kind)> {
    signals
        .iter()
        .map(|signal| (signal.id.clone(), signal.kind.expect("signals have a kind")))
        .collect()
}

#[test]
fn running_pod_is_a_serving_instance_that_started() {
    let mut tracker = PodTracker::default();

    let Seen {
        instance,
        signals,
        mismatches,
        running: running_containers,
    } = observe(&mut tracker, pod(1, true, "100"));

    let reference = instance.r#ref.clone().expect("entries carry a reference");
    assert_eq!(reference.workload, "web");
    assert_eq!(reference.instance, pod_name(1));
    assert_eq!(reference.generation, 1);
    assert_eq!(reference.node, "node-a");
    assert_eq!(instance.state(), InstanceState::Serving);
    assert_eq!(instance.artifact_digest, IMAGE_DIGEST);
    assert_eq!(instance.replicas, 1);
    assert_eq!(
        kinds(&signals),
        vec![(
            format!("sig-{}-g1-started", pod_name(1)),
            Kind::Started(Default::default())
        )]
    );
    assert!(mismatches.is_empty());
    assert_eq!(running_containers, vec!["app"]);
}

#[test]
fn unready_pod_is_starting() {
    let mut tracker = PodTracker::default();

    let Seen { instance, .. } = observe(&mut tracker, pod(1, false, "100"));

    assert_eq!(instance.state(), InstanceState::Starting);
}

#[test]
fn oom_killed_restart_is_an_exit_then_a_start() {
    let mut tracker = PodTracker::default();
    observe(&mut tracker, pod_with(0, running(), None));

    let crash_loop = json!({ "waiting": { "reason": "CrashLoopBackOff" } });
    let Seen {
        instance,
        signals,
        running: running_containers,
        ..
    } = observe(
        &mut tracker,
        pod_with(1, crash_loop, Some(terminated(137, "OOMKilled"))),
    );
    assert_eq!(
        instance.r#ref.map(|reference| reference.generation),
        Some(2)
    );
    assert!(
        running_containers.is_empty(),
        "a container waiting in back-off does not run"
    );
    let exit = Exited {
        code: Some(137),
        signal: Some(9),
        expected: false,
        oom_killed: true,
    };
    assert_eq!(
        kinds(&signals),
        vec![(format!("sig-{}-g1-exited", pod_name(1)), Kind::Exited(exit))]
    );
    assert_eq!(
        signals[0].at.as_ref().map(|at| at.seconds),
        Some(now().as_second() - 300)
    );

    let Seen { signals, .. } = observe(
        &mut tracker,
        pod_with(1, running(), Some(terminated(137, "OOMKilled"))),
    );
    assert_eq!(
        kinds(&signals),
        vec![(
            format!("sig-{}-g2-started", pod_name(1)),
            Kind::Started(Default::default())
        )]
    );
}

#[test]
fn terminated_container_reports_its_exit_code_once() {
    let mut tracker = PodTracker::default();
    observe(&mut tracker, pod_with(0, running(), None));

    let Seen { signals, .. } = observe(&mut tracker, pod_with(0, terminated(3, "Error"), None));
    let exit = Exited {
        code: Some(3),
        signal: None,
        expected: false,
        oom_killed: false,
    };
    assert_eq!(
        kinds(&signals),
        vec![(format!("sig-{}-g1-exited", pod_name(1)), Kind::Exited(exit))]
    );

    let Seen { signals, .. } = observe(
        &mut tracker,
        pod_with(1, running(), Some(terminated(3, "Error"))),
    );
    assert_eq!(
        kinds(&signals),
        vec![(
            format!("sig-{}-g2-started", pod_name(1)),
            Kind::Started(Default::default())
        )],
        "the exit of generation 1 was reported already"
    );
}

#[test]
fn exits_of_an_isolated_pod_are_expected() {
    let mut tracker = PodTracker::default();
    let mut isolated = pod_with(0, terminated(143, "Error"), None);
    isolated["metadata"]["labels"] =
        json!({ "aro.io/heal": "enabled", "aro.io/quarantined": "true" });
    isolated["metadata"]["annotations"] = json!({ "aro.io/quarantined-workload": "web" });

    let Seen {
        instance, signals, ..
    } = observe(&mut tracker, isolated);

    assert_eq!(instance.state(), InstanceState::Isolated);
    let exit = Exited {
        code: Some(143),
        signal: Some(15),
        expected: true,
        oom_killed: false,
    };
    assert_eq!(
        kinds(&signals),
        vec![(format!("sig-{}-g1-exited", pod_name(1)), Kind::Exited(exit))]
    );
}

#[test]
fn image_digest_mismatch_is_reported_once() {
    let mut tracker = PodTracker::default();
    let mut swapped = pod(1, true, "100");
    swapped["status"]["containerStatuses"][0]["imageID"] = json!(format!(
        "docker-pullable://registry.local/web@{OTHER_DIGEST}"
    ));

    let Seen {
        mismatches: first, ..
    } = observe(&mut tracker, swapped.clone());
    let Seen {
        mismatches: second, ..
    } = observe(&mut tracker, swapped);

    let expected = DigestMismatch {
        container: "app".to_owned(),
        image: format!("registry.local/web@{IMAGE_DIGEST}"),
        expected: IMAGE_DIGEST.to_owned(),
        actual: OTHER_DIGEST.to_owned(),
    };
    assert_eq!(first, vec![expected]);
    assert!(
        second.is_empty(),
        "a mismatch already reported is not reported again"
    );
}

#[test]
fn expected_digest_annotation_overrides_the_image_pin() {
    let mut tracker = PodTracker::default();
    let mut pinned = pod(1, true, "100");
    pinned["metadata"]["annotations"] =
        json!({ "aro.io/expected-digest": format!("app={OTHER_DIGEST}") });

    let Seen { mismatches, .. } = observe(&mut tracker, pinned);

    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].expected, OTHER_DIGEST);
    assert_eq!(mismatches[0].actual, IMAGE_DIGEST);
}

#[test]
fn pods_missing_from_a_relisting_are_removed() {
    let mut tracker = PodTracker::default();
    observe(&mut tracker, pod(1, true, "100"));
    observe(&mut tracker, pod(2, true, "101"));

    assert!(tracker.apply(Event::Init, now()).is_empty());
    assert_eq!(
        tracker
            .apply(Event::InitApply(typed(pod(2, true, "102"))), now())
            .len(),
        1
    );
    let removed = tracker.apply(Event::InitDone, now());

    assert_eq!(
        removed,
        vec![PodChange::Removed {
            workload: "web".to_owned(),
            instance: pod_name(1)
        }]
    );
}

#[test]
fn deleted_pod_is_removed() {
    let mut tracker = PodTracker::default();
    observe(&mut tracker, pod(1, true, "100"));

    let removed = tracker.apply(Event::Delete(typed(pod(1, true, "100"))), now());

    assert_eq!(
        removed,
        vec![PodChange::Removed {
            workload: "web".to_owned(),
            instance: pod_name(1)
        }]
    );
}

/// The watch lists the opted-in pods, then watches from the listed resourceVersion.
#[tokio::test]
async fn pod_watch_selects_opted_in_pods() {
    let modified = json!({ "type": "MODIFIED", "object": pod(1, false, "501") });
    let (client, server) = Scenario::new()
        .get(PODS)
        .query("labelSelector=aro.io/heal=enabled&limit=500")
        .reply(200, pod_list(vec![pod(1, true, "100")]))
        .get(PODS)
        .query(
            "watch=true&timeoutSeconds=290&labelSelector=aro.io/heal=enabled\
             &allowWatchBookmarks=true&resourceVersion=500",
        )
        .reply_text(200, &format!("{modified}\n"))
        .start();

    let mut events = Box::pin(aro_kube::watch::pod_events(client, NAMESPACE));
    let mut tracker = PodTracker::default();
    let mut states = Vec::new();
    while states.len() < 2 {
        let event = events
            .next()
            .await
            .expect("the watch goes on")
            .expect("the watch works");
        for change in tracker.apply(event, now()) {
            if let PodChange::Observed { instance, .. } = change {
                states.push(instance.state());
            }
        }
    }
    drop(events);
    server.verify().await;

    assert_eq!(
        states,
        vec![InstanceState::Serving, InstanceState::Starting]
    );
}
