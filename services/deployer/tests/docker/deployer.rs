//! The deployer binary with `--runtime docker`: it removes its earlier run's containers, runs
//! the fleet as containers, reports their exits, restarts them on command and removes every
//! container it created when it stops.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aro_bus::async_nats::Subscriber;
use aro_bus::{Bus, Registry, subjects};
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::{
    Action, CancelFaultRequest, ChaosKind, Command, CorruptFileParams, FaultParams,
    InjectFaultRequest, Instance, InstanceRef, InstanceState, Outcome, OutcomeStatus, Signal,
    TargetSelector, fault_params, health_check, signal,
};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, KillContainerOptions};
use futures::StreamExt;
use nix::sys::signal::Signal as UnixSignal;
use prost::Message;

use super::fixture::{Scope, WAIT, image};
use crate::support::deployer::{Deployer, Options};
use crate::support::nats_server::NatsServer;

fn fleet() -> String {
    format!(
        r#"
[[workload]]
name = "web"
image = "{}"
replicas = 2
start_timeout = "20s"
checksum_files = ["/srv/aro/beat-data.txt"]
labels = {{ tier = "web" }}

[workload.health]
http = "http://{{host}}:{{port}}/healthz"
interval = "100ms"
timeout = "1s"
"#,
        image()
    )
}

async fn entries(registry: &Registry) -> HashMap<String, Instance> {
    registry
        .list()
        .await
        .expect("listing the registry")
        .into_iter()
        .filter_map(|entry| Some((entry.r#ref.clone()?.instance, entry)))
        .collect()
}

async fn wait_serving(registry: &Registry, count: usize) -> HashMap<String, Instance> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let entries = entries(registry).await;
        let serving = entries
            .values()
            .filter(|entry| entry.state() == InstanceState::Serving)
            .count();
        if serving == count && entries.len() == count {
            return entries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} serving instances, registry: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn next<M: Message + Default>(subscriber: &mut Subscriber) -> M {
    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .expect("timed out waiting for a message")
        .expect("the subscription is open");
    M::decode(message.payload).expect("a decodable message")
}

async fn next_exit(subscriber: &mut Subscriber) -> aro_proto::v1::Exited {
    loop {
        let signal: Signal = next(subscriber).await;
        if let Some(signal::Kind::Exited(exited)) = signal.kind {
            return exited;
        }
    }
}

fn command(action: Action, instance: &str, generation: u64) -> Command {
    Command {
        id: format!("cmd-{}-{instance}-g{generation}", action.as_str_name()),
        incident_id: format!("inc-{instance}-g{generation}"),
        attempt: 1,
        target: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: instance.to_owned(),
            generation,
            node: String::new(),
        }),
        action: action as i32,
        issued_at: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..Command::default()
    }
}

/// Declared file of the sample workload's image.
const DATA_FILE: &str = "/srv/aro/beat-data.txt";

async fn chaos_client(deployer: &Deployer) -> ChaosClient<tonic::transport::Channel> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(client) = ChaosClient::connect(deployer.grpc_url()).await {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deployer's gRPC server did not accept connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn request(kind: ChaosKind, instance: &str) -> InjectFaultRequest {
    InjectFaultRequest {
        kind: kind as i32,
        selector: Some(TargetSelector {
            workload: "web".to_owned(),
            instances: vec![instance.to_owned()],
            ..TargetSelector::default()
        }),
        ..InjectFaultRequest::default()
    }
}

/// Injects a fault and returns the injection's id.
async fn inject(
    chaos: &mut ChaosClient<tonic::transport::Channel>,
    request: InjectFaultRequest,
) -> String {
    chaos
        .inject_fault(request)
        .await
        .expect("injecting the fault")
        .into_inner()
        .injection
        .expect("the injection")
        .id
}

async fn cancel(chaos: &mut ChaosClient<tonic::transport::Channel>, id: &str) {
    chaos
        .cancel_fault(CancelFaultRequest { id: id.to_owned() })
        .await
        .expect("cancelling the fault");
}

fn http_url(entry: &Instance) -> String {
    match entry
        .health_check
        .as_ref()
        .and_then(|check| check.check.clone())
    {
        Some(health_check::Check::HttpUrl(url)) => url,
        other => panic!("expected an HTTP check, got {other:?}"),
    }
}

#[tokio::test]
async fn deployer_runs_heals_and_removes_its_containers() {
    let scope = Scope::new("deployer").await;
    let engine = scope.engine().await;
    let image_id = engine
        .resolve_image(&image())
        .await
        .expect("resolving the image");

    // A container of an earlier run of the same replica.
    let leftover = scope
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("{}-leftover", scope.replica)),
                ..CreateContainerOptions::default()
            }),
            ContainerCreateBody {
                image: Some(image()),
                labels: Some(HashMap::from([
                    ("io.aro.managed".to_owned(), "true".to_owned()),
                    ("io.aro.replica".to_owned(), scope.replica.clone()),
                    ("io.aro.instance".to_owned(), "web-1".to_owned()),
                ])),
                ..ContainerCreateBody::default()
            },
        )
        .await
        .expect("creating a leftover container")
        .id;

    let nats = NatsServer::start();
    let bus = Bus::connect_and_prepare(&nats.url(), "deployer-test")
        .await
        .expect("connecting to the test NATS server");
    let registry = Registry::open(&bus).await.expect("opening the registry");
    let options = Options {
        extra_args: vec![
            "--runtime".to_owned(),
            "docker".to_owned(),
            "--docker-network".to_owned(),
            scope.network.clone(),
            "--replica".to_owned(),
            scope.replica.clone(),
        ],
        ..Options::default()
    };
    let mut deployer = Deployer::start(&nats.url(), &fleet(), &options);

    let serving = wait_serving(&registry, 2).await;
    let containers = scope.containers().await;
    assert!(
        containers
            .iter()
            .all(|c| c.id.as_deref() != Some(&leftover)),
        "the leftover container was removed"
    );
    assert_eq!(containers.len(), 2);
    for entry in serving.values() {
        assert_eq!(entry.artifact_digest, image_id);
        assert!(entry.pid > 0);
        let url = http_url(entry);
        assert!(!url.contains("127.0.0.1"), "{url} names the container");
        assert_eq!(entry.declared_files.len(), 1);
    }

    // Faults through the Chaos API: a corrupted file inside web-2's container, and a
    // partition of it, each undone when cancelled.
    let mut chaos = chaos_client(&deployer).await;
    let web_2 = scope.container_of("web-2").await;
    let pristine = scope.read_file(&web_2, DATA_FILE).await;
    let corrupt = inject(
        &mut chaos,
        InjectFaultRequest {
            params: Some(FaultParams {
                kind: Some(fault_params::Kind::CorruptFile(CorruptFileParams {
                    path: DATA_FILE.to_owned(),
                })),
            }),
            ..request(ChaosKind::CorruptFile, "web-2")
        },
    )
    .await;
    let corrupted = scope.read_file(&web_2, DATA_FILE).await;
    assert_eq!(corrupted.len(), pristine.len());
    assert_ne!(corrupted, pristine);
    cancel(&mut chaos, &corrupt).await;
    assert_eq!(scope.read_file(&web_2, DATA_FILE).await, pristine);

    let partition = inject(&mut chaos, request(ChaosKind::Partition, "web-2")).await;
    assert!(scope.state(&web_2).await.1.is_empty(), "web-2 is cut off");
    cancel(&mut chaos, &partition).await;
    assert_eq!(
        scope.state(&web_2).await.1,
        std::slice::from_ref(&scope.network)
    );

    // A restart command replaces generation 1 by a fresh container, whose output is
    // published.
    let mut outcomes = bus
        .client()
        .subscribe(subjects::outcome("web"))
        .await
        .expect("subscribing to outcomes");
    let mut signals = bus
        .client()
        .subscribe(subjects::signal("web", "web-1"))
        .await
        .expect("subscribing to signals");
    let mut logs = bus
        .client()
        .subscribe("aro.logs.web.web-1".to_owned())
        .await
        .expect("subscribing to logs");
    bus.jetstream()
        .query_account()
        .await
        .expect("the subscriptions are active");
    let restart = command(Action::Restart, "web-1", 1);
    bus.publish(subjects::command("web"), &restart.id, &restart)
        .await
        .expect("publishing the command");
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert!(next_exit(&mut signals).await.expected);
    let line = tokio::time::timeout(WAIT, logs.next())
        .await
        .expect("timed out waiting for a log line")
        .expect("the subscription is open");
    assert!(!line.payload.is_empty());

    // A container killed behind the deployer's back is an unexpected exit, and a restart
    // brings generation 3.
    let entry = wait_serving(&registry, 2)
        .await
        .remove("web-1")
        .expect("web-1");
    assert_eq!(entry.r#ref.as_ref().map(|r| r.generation), Some(2));
    let generation_2 = scope.container_of("web-1").await;
    scope
        .docker
        .kill_container(
            &generation_2,
            Some(KillContainerOptions {
                signal: "SIGKILL".to_owned(),
            }),
        )
        .await
        .expect("killing the container");
    let exited = next_exit(&mut signals).await;
    assert!(!exited.expected);
    assert_eq!(exited.signal, Some(9));
    let restart = command(Action::Restart, "web-1", 2);
    bus.publish(subjects::command("web"), &restart.id, &restart)
        .await
        .expect("publishing the command");
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    wait_serving(&registry, 2).await;

    // A replacement keeps web-2's container paused and off the network for inspection, and
    // starts web-3 in its slot.
    let web_2 = scope.container_of("web-2").await;
    let replace = command(Action::Replace, "web-2", 1);
    bus.publish(subjects::command("web"), &replace.id, &replace)
        .await
        .expect("publishing the command");
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert_eq!(
        outcome.replacement.map(|replacement| replacement.instance),
        Some("web-3".to_owned())
    );
    let (paused, networks) = scope.state(&web_2).await;
    assert!(paused, "the isolated container is paused");
    assert!(
        networks.is_empty(),
        "the isolated container is on {networks:?}"
    );
    assert_eq!(scope.containers().await.len(), 3);

    // Stopping the deployer removes every container it created.
    deployer.signal(UnixSignal::SIGTERM);
    assert!(deployer.wait_exit(WAIT).success());
    assert!(scope.containers().await.is_empty());
}

#[tokio::test]
async fn command_workload_is_refused_by_the_docker_runtime() {
    let scope = Scope::new("refuse").await;
    let nats = NatsServer::start();
    let options = Options {
        extra_args: vec![
            "--runtime".to_owned(),
            "docker".to_owned(),
            "--docker-network".to_owned(),
            scope.network.clone(),
        ],
        ..Options::default()
    };
    let fleet = "[[workload]]\nname = \"web\"\ncommand = \"python3\"\n\
                 [workload.health]\nhttp = \"http://{host}:{port}/\"\n";
    let mut deployer = Deployer::start(&nats.url(), fleet, &options);
    assert!(!deployer.wait_exit(WAIT).success());
    let log = deployer.log();
    for part in [
        "fleet.toml",
        "\"web\"",
        "field command",
        "\"python3\"",
        "set image",
    ] {
        assert!(log.contains(part), "the error should mention {part}: {log}");
    }
}
