//! Component test of the Kubernetes mode: a real `nats-server`, the deployer's command
//! consumer, and the scripted mock API server of `aro-kube`'s tests in place of a cluster.

#[path = "../../../crates/kube/tests/api/fixtures.rs"]
#[allow(
    dead_code,
    reason = "the deployer's test uses some of the shared fixtures"
)]
mod fixtures;
#[path = "support/nats_server.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the helper is public for the shared support module; this test uses part of it"
)]
mod nats_server;
#[path = "../../../crates/kube/tests/api/scenario.rs"]
#[allow(
    dead_code,
    reason = "the deployer's test uses some of the scenario steps"
)]
mod scenario;

use std::sync::Arc;
use std::time::Duration;

use aro_bus::{Bus, subjects};
use aro_deployer::kubernetes::consume_commands;
use aro_deployer::metrics::Metrics;
use aro_kube::commands::Executor;
use aro_proto::v1::{Action, Outcome, OutcomeStatus};
use futures::StreamExt;
use prost::Message;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use fixtures::*;
use nats_server::NatsServer;
use scenario::Scenario;

const WAIT: Duration = Duration::from_secs(20);

/// Scripts a RESTART whose eviction a disruption budget blocks once, then succeeds.
fn blocked_then_evicted() -> Scenario {
    let blocked = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 429,
        "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": { "retryAfterSeconds": 1 }
    });
    // Each delivery reads the pod, renews the lease, reads the Deployment, lists its pods
    // and reads the lease again before it calls the Eviction API.
    let until_eviction = |scenario: Scenario| {
        scenario
            .get(&pod_path(&pod_name(1)))
            .reply(200, pod(1, true, "100"))
            .renew_lease()
            .read_deployment()
            .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
            .check_lease()
    };
    let blocked_delivery = until_eviction(Scenario::new())
        .post(&format!("{}/eviction", pod_path(&pod_name(1))))
        .reply(429, blocked)
        .event(NAMESPACE, "Warning", "EvictionBlocked", "Pod", &pod_name(1));
    until_eviction(blocked_delivery)
        .evict_pod(1)
        .event(NAMESPACE, "Normal", "Evicted", "Pod", &pod_name(1))
        .list_web_pods(vec![pod(2, true, "101"), pod(3, true, "110")])
}

#[tokio::test]
async fn blocked_restart_is_redelivered_then_recovers() {
    let nats = NatsServer::start();
    let bus = Bus::connect_and_prepare(&nats.url(), "kubernetes-test")
        .await
        .expect("NATS is reachable");
    let mut outcomes = bus
        .client()
        .subscribe(subjects::outcome("web"))
        .await
        .expect("subscribing to outcomes works");
    let (client, server) = blocked_then_evicted().start();
    let executor = Executor::new(actuator(client), vec![NAMESPACE.to_owned()]);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(consume_commands(
        bus.clone(),
        executor,
        metrics,
        shutdown.clone(),
        Duration::from_secs(5),
    ));

    let command = command(Action::Restart);
    bus.publish(subjects::command("web"), &command.id, &command)
        .await
        .expect("the command is stored");
    let message = tokio::time::timeout(WAIT, outcomes.next())
        .await
        .expect("an outcome is published in time")
        .expect("the subscription is open");
    let outcome = Outcome::decode(message.payload).expect("the outcome decodes");

    shutdown.cancel();
    consumer.await.expect("the consumer stops");
    server.verify().await;
    assert_eq!(outcome.id, "out-cmd-inc-web-1-a1");
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert_eq!(
        outcome.replacement.map(|replacement| replacement.instance),
        Some(pod_name(3))
    );
}
