//! Component tests of the Kubernetes mode: a real `nats-server`, the deployer's command
//! consumer and Chaos service, and the scripted mock API server of `aro-kube`'s tests in
//! place of a cluster.

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
use std::time::{Duration, SystemTime};

use aro_bus::InjectionStore;
use aro_bus::{Bus, subjects};
use aro_deployer::chaos::{ChaosRuntime, ChaosState};
use aro_deployer::domain::chaos::{Injection, Params, State, Target};
use aro_deployer::grpc::ChaosService;
use aro_deployer::injections;
use aro_deployer::kubernetes::chaos::KubeChaos;
use aro_deployer::kubernetes::consume_commands;
use aro_deployer::kubernetes::start_chaos;
use aro_deployer::metrics::Metrics;
use aro_kube::commands::Executor;
use aro_kube::kube;
use aro_proto::v1::chaos_server::Chaos;
use aro_proto::v1::{
    Action, CancelFaultRequest, ChaosEvent, ChaosKind, InjectFaultRequest, InjectionState,
    ListFaultsRequest, Outcome, OutcomeStatus, TargetSelector, WatchFaultsRequest,
    WatchFaultsResponse,
};
use futures::StreamExt;
use prost::Message;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Code, Request};

use fixtures::*;
use nats_server::NatsServer;
use scenario::Scenario;

const WAIT: Duration = Duration::from_secs(20);

async fn connect(nats: &NatsServer, name: &str) -> Bus {
    Bus::connect_and_prepare(&nats.url(), name)
        .await
        .expect("NATS is reachable")
}

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
    let bus = connect(&nats, "kubernetes-test").await;
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

/// Ids the test's injections take, in order.
const FIRST: &str = "inj-k8s-first";
const SECOND: &str = "inj-k8s-second";
const THIRD: &str = "inj-k8s-third";

fn empty_list(kind: &str) -> serde_json::Value {
    json!({ "kind": kind, "metadata": { "resourceVersion": "1" }, "items": [] })
}

trait ChaosSteps {
    /// Expects the partitions of an earlier run to be looked for, and none found.
    fn find_no_leftovers(self) -> Self;
    /// Expects the opted-in pods of `shop` to be listed for a selection.
    fn list_opted_in(self, items: Vec<serde_json::Value>) -> Self;
    /// Expects pod `n` to be partitioned by `injection`: read, lease renewed and checked,
    /// labelled, the injection's policy created, and an Event recorded.
    fn partition(self, n: u32, injection: &str) -> Self;
}

impl ChaosSteps for Scenario {
    fn find_no_leftovers(self) -> Self {
        self.get(PODS)
            .query("labelSelector=aro.io/partitioned")
            .reply(200, empty_list("PodList"))
            .get(POLICIES)
            .query("labelSelector=io.aro.managed=true,aro.io/injection")
            .reply(200, empty_list("NetworkPolicyList"))
    }

    fn list_opted_in(self, items: Vec<serde_json::Value>) -> Self {
        self.get(PODS)
            .query("labelSelector=aro.io/heal=enabled")
            .reply(200, pod_list(items))
    }

    fn partition(self, n: u32, injection: &str) -> Self {
        self.get(&pod_path(&pod_name(n)))
            .reply(200, pod(n, true, "100"))
            .label_partitioned(n, injection)
            .post(POLICIES)
            .body(partition_policy(injection))
            .echo(201)
            .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(n))
    }
}

/// Fault injection on namespace `shop` through the mock API server's `client`.
struct Started {
    runtime: Arc<KubeChaos>,
    stopping: CancellationToken,
    tasks: TaskTracker,
}

impl Started {
    async fn new(bus: &Bus, client: kube::Client, ids: &[&str]) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let stopping = CancellationToken::new();
        let tasks = TaskTracker::new();
        let state = ChaosState::new(bus.clone(), metrics, "node-a".to_owned(), stopping.clone())
            .with_ids(ids.iter().map(|id| (*id).to_owned()));
        let runtime = start_chaos(
            bus,
            actuator(client),
            vec![NAMESPACE.to_owned()],
            state,
            &tasks,
        )
        .await
        .expect("fault injection starts");
        Self {
            runtime,
            stopping,
            tasks,
        }
    }

    /// Stops the reconciliation and drops the runtime, and with it the API client.
    async fn stop(self) {
        self.stopping.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn request(kind: ChaosKind, instance: u32) -> InjectFaultRequest {
    InjectFaultRequest {
        kind: kind.into(),
        selector: Some(TargetSelector {
            workload: "web".to_owned(),
            instances: vec![pod_name(instance)],
            ..TargetSelector::default()
        }),
        ..InjectFaultRequest::default()
    }
}

async fn next_change(
    stream: &mut (impl futures::Stream<Item = Result<WatchFaultsResponse, tonic::Status>> + Unpin),
) -> WatchFaultsResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a change comes in time")
        .expect("the watch is open")
        .expect("the watch sends no error")
}

/// Scripts every call of the chaos test, in order.
fn chaos_calls() -> Scenario {
    let both_ready = || vec![pod(1, true, "100"), pod(2, true, "101")];
    Scenario::new()
        .find_no_leftovers()
        // The dry run only selects.
        .list_opted_in(both_ready())
        // Killing the last ready pod is rejected after the selection.
        .list_opted_in(vec![pod(1, true, "100"), pod(2, false, "101")])
        // HANG is rejected after the selection.
        .list_opted_in(both_ready())
        // A partition of pod 1 for 1 s, undone when it expires.
        .list_opted_in(both_ready())
        .partition(1, FIRST)
        .reconnect(1)
        .delete_policy(FIRST)
        // A partition of pod 2, cancelled.
        .list_opted_in(both_ready())
        .partition(2, SECOND)
        .reconnect(2)
        .delete_policy(SECOND)
        // A kill of pod 1, which has nothing to undo.
        .list_opted_in(both_ready())
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .renew_lease()
        .check_lease()
        .delete(&pod_path(&pod_name(1)))
        .body_contains(json!({ "gracePeriodSeconds": 0 }))
        .reply(200, pod(1, true, "130"))
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(1))
}

#[tokio::test]
async fn chaos_api_kills_and_partitions_pods() {
    let nats = NatsServer::start();
    let bus = connect(&nats, "kubernetes-chaos-test").await;
    let mut chaos_events = bus
        .client()
        .subscribe("aro.chaos.web")
        .await
        .expect("subscribing to chaos events works");
    let (client, server) = chaos_calls().start();
    let started = Started::new(&bus, client, &[FIRST, SECOND, THIRD]).await;
    let service = ChaosService::new(Arc::clone(&started.runtime), true, "node-a".to_owned());
    let mut watch = service
        .watch_faults(Request::new(WatchFaultsRequest::default()))
        .await
        .expect("the watch starts")
        .into_inner();
    assert_eq!(next_change(&mut watch).await.phase, "synced");

    let dry_run = service
        .inject_fault(Request::new(InjectFaultRequest {
            dry_run: true,
            ..request(ChaosKind::Partition, 1)
        }))
        .await
        .expect("the dry run succeeds")
        .into_inner();
    assert!(dry_run.dry_run);
    let would = dry_run
        .injection
        .expect("the dry run returns the injection");
    assert_eq!(would.targets.len(), 1);
    assert_eq!(
        would.targets[0]
            .instance
            .as_ref()
            .map(|instance| instance.instance.clone()),
        Some(pod_name(1))
    );

    let last_ready = service
        .inject_fault(Request::new(request(ChaosKind::Kill, 1)))
        .await
        .expect_err("pod 1 is the last ready pod");
    assert_eq!(last_ready.code(), Code::FailedPrecondition);
    assert!(
        last_ready.message().contains("allow_last_replica"),
        "{}",
        last_ready.message()
    );

    let hang = service
        .inject_fault(Request::new(request(ChaosKind::Hang, 1)))
        .await
        .expect_err("HANG needs exec");
    assert_eq!(hang.code(), Code::FailedPrecondition);
    assert!(
        hang.message()
            .starts_with("kubernetes runtime cannot inject HANG"),
        "{}",
        hang.message()
    );

    let expiring = service
        .inject_fault(Request::new(InjectFaultRequest {
            duration: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..request(ChaosKind::Partition, 1)
        }))
        .await
        .expect("pod 1 is partitioned")
        .into_inner()
        .injection
        .expect("the injection is returned");
    assert_eq!(expiring.id, FIRST);
    assert_eq!(expiring.state(), InjectionState::Active);
    let injected = next_change(&mut watch).await;
    assert_eq!(injected.phase, "injected");
    let expired = next_change(&mut watch).await;
    assert_eq!(expired.phase, "expired");
    assert_eq!(
        expired.injection.map(|injection| injection.id),
        Some(FIRST.to_owned())
    );

    let keyed = || InjectFaultRequest {
        idempotency_key: "partition-pod-2".to_owned(),
        ..request(ChaosKind::Partition, 2)
    };
    let first = service
        .inject_fault(Request::new(keyed()))
        .await
        .expect("pod 2 is partitioned")
        .into_inner();
    assert!(!first.replayed);
    assert_eq!(
        first.injection.map(|injection| injection.id),
        Some(SECOND.to_owned())
    );
    // The repeated request makes no API call: the script has none for it.
    let repeated = service
        .inject_fault(Request::new(keyed()))
        .await
        .expect("the repeated request succeeds")
        .into_inner();
    assert!(repeated.replayed);
    assert_eq!(
        repeated.injection.map(|injection| injection.id),
        Some(SECOND.to_owned())
    );
    let cancelled = service
        .cancel_fault(Request::new(CancelFaultRequest {
            id: SECOND.to_owned(),
        }))
        .await
        .expect("the partition is cancelled")
        .into_inner()
        .injection
        .expect("the injection is returned");
    assert_eq!(cancelled.state(), InjectionState::Cancelled);
    let killed = service
        .inject_fault(Request::new(request(ChaosKind::Kill, 1)))
        .await
        .expect("pod 1 is killed")
        .into_inner()
        .injection
        .expect("the injection is returned");
    assert_eq!(killed.id, THIRD);
    assert_eq!(killed.state(), InjectionState::Completed);
    let listed = service
        .list_faults(Request::new(ListFaultsRequest {
            active_only: true,
            ..ListFaultsRequest::default()
        }))
        .await
        .expect("listing works")
        .into_inner();
    assert!(listed.injections.is_empty(), "{:?}", listed.injections);

    let event = tokio::time::timeout(WAIT, chaos_events.next())
        .await
        .expect("a chaos event comes in time")
        .expect("the subscription is open");
    let event = ChaosEvent::decode(event.payload).expect("the chaos event decodes");
    assert_eq!(event.injection_id, FIRST);
    assert_eq!(event.phase, "injected");

    drop(service);
    drop(watch);
    started.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn restart_removes_a_leftover_partition() {
    const LEFTOVER: &str = "inj-k8s-leftover";
    let nats = NatsServer::start();
    let bus = connect(&nats, "kubernetes-chaos-restart-test").await;
    let store = InjectionStore::open(&bus)
        .await
        .expect("the injections bucket opens");
    let leftover = Injection {
        id: LEFTOVER.to_owned(),
        kind: ChaosKind::Partition,
        params: Params::None,
        targets: vec![Target {
            workload: "web".to_owned(),
            instance: pod_name(1),
            generation: 1,
            active: true,
            remaining: 0,
            message: String::new(),
        }],
        injected_at: SystemTime::now(),
        expires_at: None,
        state: State::Active,
        ended_at: None,
        message: "PARTITION into web-5d8f7c9b4-p1 generation 1".to_owned(),
        idempotency_key: String::new(),
        files: Vec::new(),
        run_id: "run-earlier".to_owned(),
        runtime: "kubernetes".to_owned(),
    };
    store
        .put(&injections::to_record(&leftover, "node-a"))
        .await
        .expect("the leftover is stored");
    let scenario = Scenario::new()
        .get(PODS)
        .query("labelSelector=aro.io/partitioned")
        .reply(200, pod_list(vec![partitioned_pod(1, LEFTOVER)]))
        .reconnect(1)
        .get(POLICIES)
        .query("labelSelector=io.aro.managed=true,aro.io/injection")
        .reply(
            200,
            json!({
                "kind": "NetworkPolicyList",
                "metadata": {},
                "items": [partition_policy(LEFTOVER)],
            }),
        )
        .delete_policy(LEFTOVER);
    let (client, server) = scenario.start();
    let started = Started::new(&bus, client, &[]).await;

    let closed = aro_deployer::chaos::get_fault(started.runtime.chaos(), LEFTOVER)
        .expect("the leftover is adopted");
    let stored = store.list().await.expect("the bucket lists");
    started.stop().await;
    server.verify().await;

    assert_eq!(closed.state, State::Reverted);
    assert!(
        closed.message.contains("removed its partitions"),
        "{}",
        closed.message
    );
    let stored = stored
        .iter()
        .find_map(injections::from_record)
        .expect("the leftover stays in the bucket");
    assert_eq!(stored.state, State::Reverted);
}
