//! Component tests of the Chaos API: a real `nats-server`, the real `aro-deployer` binary and
//! real processes (shell loops) or containers of the local Docker engine, checked through their
//! state, the `aro_injections` bucket and the chaos events on `aro.chaos.<workload>`. The
//! Docker test needs the `aro-sample-workload:dev` image of `make images`.

// Shared with the docker test binary, which uses the helpers this one does not.
#[allow(dead_code)]
#[path = "docker/fixture.rs"]
mod docker_fixture;
mod support;

use std::time::Duration;

use aro_bus::async_nats::Subscriber;
use aro_bus::{Bus, InjectionStore, Registry, subjects};
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::{
    Action, BlastRadius, BlastRadiusMode, CancelFaultRequest, ChaosEvent, ChaosKind, Command,
    FaultParams, GetFaultRequest, InjectFaultRequest, InjectFaultResponse, Injection,
    InjectionState, Instance, InstanceRef, InstanceState, ListFaultsRequest, TargetSelector,
    WatchFaultsRequest, WatchFaultsResponse, fault_params,
};
use futures::StreamExt;
use nix::sys::signal::Signal as UnixSignal;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use support::deployer::{Deployer, Options};
use support::nats_server::NatsServer;
use support::poll::{WAIT, eventually, is_alive, is_stopped, wait_stopped};

/// Three replicas labelled as the front tier and one labelled as the back tier, each a shell
/// loop whose exec check passes at once, so instances serve as soon as they start.
const FLEET: &str = r#"
[[workload]]
name = "web"
command = "sh"
args = ["-c", "while true; do sleep 0.1; done"]
labels = { tier = "front", team = "shop" }
replicas = 3

[workload.health]
exec = ["true"]
interval = "100ms"

[[workload]]
name = "db"
command = "sh"
args = ["-c", "while true; do sleep 0.1; done"]
labels = { tier = "back", team = "shop" }
replicas = 1

[workload.health]
exec = ["true"]
interval = "100ms"
"#;

const PRISTINE: &str = "sku-0001 bolt-m6 57\nsku-0002 bolt-m8 94\nsku-0003 nut-m6 131\n";

/// Two replicas that declare `data.txt`.
const FLEET_WITH_FILE: &str = r#"
[[workload]]
name = "web"
command = "sh"
args = ["-c", "while true; do sleep 0.1; done"]
replicas = 2
checksum_files = ["data.txt"]

[workload.health]
exec = ["true"]
interval = "100ms"
"#;

/// A NATS server with a client. The deployers of a test are started on it separately, so a
/// test can kill one and start another on the same store.
struct Nats {
    bus: Bus,
    registry: Registry,
    server: NatsServer,
}

impl Nats {
    async fn start() -> Self {
        let server = NatsServer::start();
        let bus = Bus::connect_and_prepare(&server.url(), "chaos-api-test")
            .await
            .expect("connecting to the test NATS server");
        let registry = Registry::open(&bus).await.expect("opening the registry");
        Self {
            bus,
            registry,
            server,
        }
    }

    fn deployer(&self, fleet: &str) -> Deployer {
        self.deployer_with(fleet, Vec::new())
    }

    fn deployer_with(&self, fleet: &str, extra_args: Vec<String>) -> Deployer {
        let options = Options {
            files: vec![("data.txt", PRISTINE)],
            extra_args,
            ..Options::default()
        };
        Deployer::start(&self.server.url(), fleet, &options)
    }

    /// Waits until `workload` has `count` serving instances and returns them by id.
    async fn wait_serving(&self, workload: &str, count: usize) -> Vec<Instance> {
        eventually(
            &format!("{count} serving instances of {workload}"),
            || async {
                let mut serving: Vec<Instance> = self
                    .registry
                    .list()
                    .await
                    .expect("listing the registry")
                    .into_iter()
                    .filter(|i| reference(i).workload == workload)
                    .filter(|i| i.state() == InstanceState::Serving)
                    .collect();
                serving.sort_by(|a, b| reference(a).instance.cmp(&reference(b).instance));
                serving.dedup_by(|a, b| reference(a).instance == reference(b).instance);
                (serving.len() == count).then_some(serving)
            },
        )
        .await
    }

    /// Subscribes to every chaos event and returns once the server registered it.
    async fn chaos_events(&self) -> Subscriber {
        let subscriber = self
            .bus
            .client()
            .subscribe("aro.chaos.>")
            .await
            .expect("subscribing");
        // The reply to a request sent after the subscription means the server has it.
        self.bus
            .jetstream()
            .query_account()
            .await
            .expect("querying the JetStream account");
        subscriber
    }

    /// Lists every injection in the `aro_injections` bucket.
    async fn stored(&self) -> Vec<Injection> {
        InjectionStore::open(&self.bus)
            .await
            .expect("opening the injections bucket")
            .list()
            .await
            .expect("listing the injections bucket")
            .into_iter()
            .filter_map(|record| record.injection)
            .collect()
    }
}

fn reference(instance: &Instance) -> &InstanceRef {
    instance
        .r#ref
        .as_ref()
        .expect("registry entries carry a reference")
}

async fn chaos(deployer: &Deployer) -> ChaosClient<Channel> {
    let url = deployer.grpc_url();
    let channel = eventually("the deployer's gRPC server", || async {
        Channel::from_shared(url.clone())
            .expect("a valid URL")
            .connect()
            .await
            .ok()
    })
    .await;
    ChaosClient::new(channel)
}

fn selector(workload: &str, instances: &[&str]) -> Option<TargetSelector> {
    Some(TargetSelector {
        workload: workload.to_owned(),
        instances: instances.iter().map(|i| (*i).to_owned()).collect(),
        ..TargetSelector::default()
    })
}

fn request(kind: ChaosKind, selector: Option<TargetSelector>) -> InjectFaultRequest {
    InjectFaultRequest {
        kind: kind as i32,
        selector,
        ..InjectFaultRequest::default()
    }
}

fn blast(mode: BlastRadiusMode, count: u32, percent: u32) -> Option<BlastRadius> {
    Some(BlastRadius {
        mode: mode as i32,
        count,
        percent,
    })
}

fn dry(mut request: InjectFaultRequest) -> InjectFaultRequest {
    request.dry_run = true;
    request
}

async fn inject(
    chaos: &mut ChaosClient<Channel>,
    request: InjectFaultRequest,
) -> InjectFaultResponse {
    chaos
        .inject_fault(request)
        .await
        .unwrap_or_else(|status| panic!("InjectFault failed: {status}"))
        .into_inner()
}

/// Instance ids an injection hit, sorted.
fn hit(injection: &Injection) -> Vec<String> {
    let mut names: Vec<String> = injection
        .targets
        .iter()
        .filter_map(|t| t.instance.as_ref())
        .map(|r| r.instance.clone())
        .collect();
    names.sort();
    names
}

async fn get(chaos: &mut ChaosClient<Channel>, id: &str) -> Injection {
    chaos
        .get_fault(GetFaultRequest { id: id.to_owned() })
        .await
        .expect("getting the injection")
        .into_inner()
        .injection
        .expect("the response carries the injection")
}

/// Next chaos event, decoded.
async fn next_event(events: &mut Subscriber) -> ChaosEvent {
    let message = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("timed out waiting for a chaos event")
        .expect("the subscription is open");
    ChaosEvent::decode(message.payload).expect("a decodable chaos event")
}

async fn next_change(stream: &mut Streaming<WatchFaultsResponse>) -> WatchFaultsResponse {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("timed out waiting for a watched change")
        .expect("the watch is open")
        .expect("the watch did not fail")
}

fn id_of(change: &WatchFaultsResponse) -> &str {
    change.injection.as_ref().map_or("", |i| i.id.as_str())
}

#[tokio::test]
async fn labels_and_instance_ids_select_targets() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    nats.wait_serving("db", 1).await;
    let mut chaos = chaos(&deployer).await;

    let cases: [(TargetSelector, &[&str]); 4] = [
        (
            TargetSelector {
                labels: [("tier".to_owned(), "back".to_owned())].into(),
                ..TargetSelector::default()
            },
            &["db-1"],
        ),
        (
            TargetSelector {
                labels: [("team".to_owned(), "shop".to_owned())].into(),
                ..TargetSelector::default()
            },
            &["db-1", "web-1", "web-2", "web-3"],
        ),
        (
            TargetSelector {
                instances: vec!["web-3".to_owned(), "db-1".to_owned()],
                ..TargetSelector::default()
            },
            &["db-1", "web-3"],
        ),
        (
            TargetSelector {
                workload: "web".to_owned(),
                labels: [("tier".to_owned(), "front".to_owned())].into(),
                instances: vec!["web-2".to_owned()],
            },
            &["web-2"],
        ),
    ];
    for (selector, expected) in cases {
        let response = inject(
            &mut chaos,
            InjectFaultRequest {
                blast_radius: blast(BlastRadiusMode::All, 0, 0),
                allow_last_replica: true,
                ..dry(request(ChaosKind::Hang, Some(selector.clone())))
            },
        )
        .await;
        let injection = response.injection.expect("a dry run returns the injection");
        assert_eq!(hit(&injection), expected, "{selector:?}");
    }

    let no_match = TargetSelector {
        labels: [("tier".to_owned(), "cache".to_owned())].into(),
        ..TargetSelector::default()
    };
    let error = chaos
        .inject_fault(request(ChaosKind::Hang, Some(no_match)))
        .await
        .expect_err("no workload has tier=cache");
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        error.message().contains("tier=cache"),
        "{}",
        error.message()
    );
    let wrong_workload = TargetSelector {
        labels: [("tier".to_owned(), "front".to_owned())].into(),
        instances: vec!["db-1".to_owned()],
        ..TargetSelector::default()
    };
    let error = chaos
        .inject_fault(request(ChaosKind::Hang, Some(wrong_workload)))
        .await
        .expect_err("db-1 is not in the front tier");
    assert_eq!(error.code(), Code::NotFound);
    assert!(error.message().contains("db-1"), "{}", error.message());

    let by_label = TargetSelector {
        labels: [("tier".to_owned(), "front".to_owned())].into(),
        instances: vec!["web-2".to_owned()],
        ..TargetSelector::default()
    };
    let response = inject(&mut chaos, request(ChaosKind::Hang, Some(by_label))).await;
    let injection = response.injection.expect("the injection");
    assert_eq!(hit(&injection), ["web-2"]);
    assert_eq!(injection.state(), InjectionState::Active);
    wait_stopped(web[1].pid, true).await;
    assert!(!is_stopped(web[0].pid));
    assert!(!is_stopped(web[2].pid));
}

#[tokio::test]
async fn blast_radius_modes_pick_their_share() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    let mut chaos = chaos(&deployer).await;

    let cases = [
        (blast(BlastRadiusMode::Unspecified, 0, 0), 1),
        (blast(BlastRadiusMode::One, 0, 0), 1),
        (blast(BlastRadiusMode::All, 0, 0), 3),
        (blast(BlastRadiusMode::Fixed, 2, 0), 2),
        (blast(BlastRadiusMode::Fixed, 9, 0), 3),
        (blast(BlastRadiusMode::Percent, 0, 50), 2),
        (blast(BlastRadiusMode::Percent, 0, 33), 1),
        (blast(BlastRadiusMode::Percent, 0, 100), 3),
    ];
    for (radius, count) in cases {
        let response = inject(
            &mut chaos,
            InjectFaultRequest {
                blast_radius: radius,
                allow_last_replica: true,
                ..dry(request(ChaosKind::Kill, selector("web", &[])))
            },
        )
        .await;
        let injection = response.injection.expect("a dry run returns the injection");
        let names = hit(&injection);
        assert_eq!(names.len(), count, "{radius:?}: {names:?}");
        let mut distinct = names.clone();
        distinct.dedup();
        assert_eq!(distinct, names, "{radius:?}");
    }

    let invalid = [
        (
            blast(BlastRadiusMode::Fixed, 0, 0),
            "invalid blast_radius.count: 0",
        ),
        (
            blast(BlastRadiusMode::Percent, 0, 0),
            "invalid blast_radius.percent: 0",
        ),
        (
            blast(BlastRadiusMode::Percent, 0, 101),
            "invalid blast_radius.percent: 101",
        ),
        (
            Some(BlastRadius {
                mode: 9,
                count: 0,
                percent: 0,
            }),
            "invalid blast_radius.mode: unknown mode value 9",
        ),
    ];
    for (radius, message) in invalid {
        let error = chaos
            .inject_fault(InjectFaultRequest {
                blast_radius: radius,
                ..request(ChaosKind::Kill, selector("web", &[]))
            })
            .await
            .expect_err("the blast radius is invalid");
        assert_eq!(error.code(), Code::InvalidArgument, "{radius:?}");
        assert!(error.message().starts_with(message), "{}", error.message());
    }

    let response = inject(
        &mut chaos,
        InjectFaultRequest {
            blast_radius: blast(BlastRadiusMode::Fixed, 2, 0),
            ..request(ChaosKind::Hang, selector("web", &[]))
        },
    )
    .await;
    let injection = response.injection.expect("the injection");
    assert_eq!(hit(&injection).len(), 2);
    for instance in &web {
        let name = &reference(instance).instance;
        wait_stopped(instance.pid, hit(&injection).contains(name)).await;
    }
    for instance in &web {
        assert!(is_alive(instance.pid));
    }
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET_WITH_FILE);
    let web = nats.wait_serving("web", 2).await;
    let mut chaos = chaos(&deployer).await;
    let mut events = nats.chaos_events().await;

    for kind in [ChaosKind::Kill, ChaosKind::Hang, ChaosKind::CorruptFile] {
        let response = inject(
            &mut chaos,
            InjectFaultRequest {
                blast_radius: blast(BlastRadiusMode::All, 0, 0),
                allow_last_replica: true,
                idempotency_key: format!("dry-{kind:?}"),
                duration: (kind != ChaosKind::Kill).then_some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..dry(request(kind, selector("web", &[])))
            },
        )
        .await;
        assert!(response.dry_run);
        let injection = response.injection.expect("a dry run returns the injection");
        assert_eq!(hit(&injection), ["web-1", "web-2"], "{kind:?}");
        assert!(injection.id.is_empty(), "{kind:?}: {}", injection.id);
        assert_eq!(injection.state(), InjectionState::Unspecified);
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    for instance in &web {
        assert!(is_alive(instance.pid));
        assert!(!is_stopped(instance.pid));
    }
    let data = std::fs::read_to_string(deployer.file("data.txt")).expect("reading data.txt");
    assert_eq!(data, PRISTINE);
    assert!(nats.stored().await.is_empty());
    let listed = chaos
        .list_faults(ListFaultsRequest::default())
        .await
        .expect("listing")
        .into_inner()
        .injections;
    assert!(listed.is_empty(), "{listed:?}");
    let event = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(event.is_err(), "a dry run published {event:?}");

    let key_after_dry_run = inject(
        &mut chaos,
        InjectFaultRequest {
            idempotency_key: "dry-Hang".to_owned(),
            ..request(ChaosKind::Kill, selector("web", &["web-1"]))
        },
    )
    .await;
    assert!(
        !key_after_dry_run.replayed,
        "a dry run does not claim its idempotency key"
    );
}

#[tokio::test]
async fn idempotency_key_survives_a_deployer_restart() {
    let nats = Nats::start().await;
    let mut first = nats.deployer(FLEET);
    nats.wait_serving("web", 3).await;
    let mut chaos_first = chaos(&first).await;
    let keyed = InjectFaultRequest {
        idempotency_key: "hang-web-once".to_owned(),
        ..request(ChaosKind::Hang, selector("web", &["web-1"]))
    };
    let made = inject(&mut chaos_first, keyed.clone()).await;
    assert!(!made.replayed);
    let made = made.injection.expect("the injection");
    let again = inject(&mut chaos_first, keyed.clone()).await;
    assert!(again.replayed);
    assert_eq!(again.injection.as_ref().map(|i| &i.id), Some(&made.id));
    let error = chaos_first
        .inject_fault(InjectFaultRequest {
            kind: ChaosKind::Kill as i32,
            ..keyed.clone()
        })
        .await
        .expect_err("the key already made a hang");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with("invalid idempotency_key: \"hang-web-once\""),
        "{}",
        error.message()
    );
    assert_eq!(
        chaos_first
            .list_faults(ListFaultsRequest::default())
            .await
            .expect("listing")
            .into_inner()
            .injections
            .len(),
        1
    );

    first.signal(UnixSignal::SIGKILL);
    first.wait_exit(WAIT);
    let second = nats.deployer(FLEET);
    nats.wait_serving("web", 3).await;
    let mut chaos_second = chaos(&second).await;
    let replayed = inject(&mut chaos_second, keyed).await;
    assert!(replayed.replayed);
    let replayed = replayed.injection.expect("the injection");
    assert_eq!(replayed.id, made.id);
    assert_eq!(replayed.state(), InjectionState::Reverted);
    assert_eq!(get(&mut chaos_second, &made.id).await.id, made.id);
}

#[tokio::test]
async fn duration_undoes_a_hang() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    let mut chaos = chaos(&deployer).await;
    let mut events = nats.chaos_events().await;

    let response = inject(
        &mut chaos,
        InjectFaultRequest {
            duration: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            ..request(ChaosKind::Hang, selector("web", &["web-1"]))
        },
    )
    .await;
    let injection = response.injection.expect("the injection");
    assert!(injection.expires_at.is_some());
    wait_stopped(web[0].pid, true).await;

    let injected = next_event(&mut events).await;
    assert_eq!(injected.phase, "injected");
    assert_eq!(injected.id, format!("chaos-{}-injected", injection.id));
    let expired = next_event(&mut events).await;
    assert_eq!(expired.phase, "expired", "{expired:?}");
    assert_eq!(expired.id, format!("chaos-{}-expired", injection.id));
    assert_eq!(expired.injection_id, injection.id);
    wait_stopped(web[0].pid, false).await;
    assert!(is_alive(web[0].pid));

    let ended = get(&mut chaos, &injection.id).await;
    assert_eq!(ended.state(), InjectionState::Expired);
    assert!(ended.ended_at.is_some());
    let stored = nats.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].state(), InjectionState::Expired);

    let error = chaos
        .inject_fault(request(ChaosKind::Partition, selector("web", &["web-2"])))
        .await
        .expect_err("the process runtime has no networks to cut");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(error.message().contains("process"), "{}", error.message());
    assert!(
        nats.stored()
            .await
            .iter()
            .all(|i| i.kind() != ChaosKind::Partition)
    );

    let error = chaos
        .inject_fault(InjectFaultRequest {
            duration: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            ..request(ChaosKind::Kill, selector("web", &["web-2"]))
        })
        .await
        .expect_err("a kill has nothing to undo");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("invalid duration: 5s"),
        "{}",
        error.message()
    );
    assert!(is_alive(web[1].pid));

    let error = chaos
        .inject_fault(InjectFaultRequest {
            duration: Some(prost_types::Duration::default()),
            ..request(ChaosKind::Hang, selector("web", &["web-2"]))
        })
        .await
        .expect_err("a zero duration would never undo the hang");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with("invalid duration: 0s"),
        "{}",
        error.message()
    );
    assert!(!is_stopped(web[1].pid));
}

#[tokio::test]
async fn cancel_undoes_a_hang_now() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    let mut chaos = chaos(&deployer).await;
    let mut events = nats.chaos_events().await;

    let response = inject(
        &mut chaos,
        request(ChaosKind::Hang, selector("web", &["web-2"])),
    )
    .await;
    let injection = response.injection.expect("the injection");
    assert!(injection.revertible);
    wait_stopped(web[1].pid, true).await;

    let cancelled = chaos
        .cancel_fault(CancelFaultRequest {
            id: injection.id.clone(),
        })
        .await
        .expect("cancelling")
        .into_inner()
        .injection
        .expect("the injection");
    assert_eq!(cancelled.state(), InjectionState::Cancelled);
    assert!(cancelled.targets.iter().all(|t| !t.active));
    wait_stopped(web[1].pid, false).await;
    assert_eq!(next_event(&mut events).await.phase, "injected");
    let event = next_event(&mut events).await;
    assert_eq!(event.phase, "cancelled");
    assert!(event.message.contains("resume"), "{}", event.message);

    let again = chaos
        .cancel_fault(CancelFaultRequest {
            id: injection.id.clone(),
        })
        .await
        .expect_err("it already ended");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let unknown = chaos
        .get_fault(GetFaultRequest {
            id: "inj-unknown".to_owned(),
        })
        .await
        .expect_err("no such injection");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("inj-unknown"));
    let active = chaos
        .list_faults(ListFaultsRequest {
            active_only: true,
            ..ListFaultsRequest::default()
        })
        .await
        .expect("listing")
        .into_inner()
        .injections;
    assert!(active.is_empty(), "{active:?}");
}

#[tokio::test]
async fn watch_sends_the_active_set_then_each_change() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    let mut chaos = chaos(&deployer).await;
    let first = inject(
        &mut chaos,
        request(ChaosKind::Hang, selector("web", &["web-1"])),
    )
    .await
    .injection
    .expect("the injection");
    let kill_db = inject(
        &mut chaos,
        InjectFaultRequest {
            allow_last_replica: true,
            ..request(ChaosKind::Kill, selector("db", &["db-1"]))
        },
    )
    .await
    .injection
    .expect("the injection");
    assert_eq!(kill_db.state(), InjectionState::Completed);
    assert!(!kill_db.revertible);

    let mut watch = chaos
        .watch_faults(WatchFaultsRequest {
            workload: "web".to_owned(),
        })
        .await
        .expect("watching")
        .into_inner();
    let current = next_change(&mut watch).await;
    assert_eq!(current.phase, "active");
    assert_eq!(id_of(&current), first.id);
    let synced = next_change(&mut watch).await;
    assert_eq!(synced.phase, "synced");
    assert!(synced.injection.is_none());

    let second = inject(
        &mut chaos,
        request(ChaosKind::Hang, selector("web", &["web-2"])),
    )
    .await
    .injection
    .expect("the injection");
    let injected = next_change(&mut watch).await;
    assert_eq!(injected.phase, "injected");
    assert_eq!(id_of(&injected), second.id);

    chaos
        .cancel_fault(CancelFaultRequest {
            id: first.id.clone(),
        })
        .await
        .expect("cancelling");
    let cancelled = next_change(&mut watch).await;
    assert_eq!(cancelled.phase, "cancelled");
    assert_eq!(id_of(&cancelled), first.id);
    wait_stopped(web[0].pid, false).await;

    // The engine restarts the hung instance, which ends the hang.
    let restart = Command {
        id: "cmd-inc-web-2-g1-a1".to_owned(),
        incident_id: "inc-web-2-g1".to_owned(),
        attempt: 1,
        target: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: "web-2".to_owned(),
            generation: 1,
            node: String::new(),
        }),
        action: Action::Restart as i32,
        ..Command::default()
    };
    nats.bus
        .publish(subjects::command("web"), &restart.id, &restart)
        .await
        .expect("publishing the restart");
    let recovered = next_change(&mut watch).await;
    assert_eq!(recovered.phase, "target-recovered", "{recovered:?}");
    assert_eq!(id_of(&recovered), second.id);
    let state = recovered.injection.as_ref().map(|i| i.state());
    assert_eq!(state, Some(InjectionState::TargetRecovered));
    let more = tokio::time::timeout(Duration::from_millis(500), watch.next()).await;
    assert!(
        more.is_err(),
        "no change of db reaches a watch of web: {more:?}"
    );
}

#[tokio::test]
async fn last_serving_replica_needs_the_flag() {
    let nats = Nats::start().await;
    let deployer = nats.deployer(FLEET);
    let web = nats.wait_serving("web", 3).await;
    let db = nats.wait_serving("db", 1).await;
    let mut chaos = chaos(&deployer).await;

    let rejected_requests = [
        request(ChaosKind::Kill, selector("db", &[])),
        InjectFaultRequest {
            blast_radius: blast(BlastRadiusMode::All, 0, 0),
            ..request(ChaosKind::Hang, selector("web", &[]))
        },
        dry(request(ChaosKind::Kill, selector("db", &["db-1"]))),
    ];
    for rejected in rejected_requests {
        let workload = rejected
            .selector
            .as_ref()
            .map(|s| s.workload.clone())
            .unwrap_or_default();
        let error = chaos
            .inject_fault(rejected)
            .await
            .expect_err("the last serving replica is protected");
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert!(
            error.message().contains(&format!("workload {workload:?}")),
            "{}",
            error.message()
        );
        assert!(
            error.message().contains("allow_last_replica"),
            "{}",
            error.message()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for instance in web.iter().chain(&db) {
        assert!(is_alive(instance.pid));
        assert!(!is_stopped(instance.pid));
    }
    assert!(nats.stored().await.is_empty());

    let allowed = inject(
        &mut chaos,
        InjectFaultRequest {
            allow_last_replica: true,
            ..request(ChaosKind::Hang, selector("db", &[]))
        },
    )
    .await;
    assert_eq!(
        allowed.injection.map(|i| hit(&i)),
        Some(vec!["db-1".to_owned()])
    );
    wait_stopped(db[0].pid, true).await;
}

#[tokio::test]
async fn restarted_deployer_restores_files_and_closes_injections() {
    let nats = Nats::start().await;
    let mut first = nats.deployer(FLEET_WITH_FILE);
    let web = nats.wait_serving("web", 2).await;
    let mut chaos_first = chaos(&first).await;

    let corrupt = inject(
        &mut chaos_first,
        InjectFaultRequest {
            duration: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            params: Some(FaultParams {
                kind: Some(fault_params::Kind::CorruptFile(
                    aro_proto::v1::CorruptFileParams {
                        path: "data.txt".to_owned(),
                    },
                )),
            }),
            ..request(ChaosKind::CorruptFile, selector("web", &["web-1"]))
        },
    )
    .await
    .injection
    .expect("the corruption");
    let hang = inject(
        &mut chaos_first,
        request(ChaosKind::Hang, selector("web", &["web-2"])),
    )
    .await
    .injection
    .expect("the hang");
    wait_stopped(web[1].pid, true).await;
    let data_path = first.file("data.txt");
    let corrupted = std::fs::read(&data_path).expect("reading data.txt");
    assert_ne!(corrupted, PRISTINE.as_bytes());
    let stored = nats.stored().await;
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|i| i.state() == InjectionState::Active));

    first.signal(UnixSignal::SIGKILL);
    first.wait_exit(WAIT);
    assert_eq!(
        std::fs::read(&data_path).expect("reading data.txt"),
        corrupted,
        "a killed deployer cannot restore the file itself"
    );
    let mut events = nats.chaos_events().await;

    let second = nats.deployer(FLEET_WITH_FILE);
    let mut chaos_second = chaos(&second).await;
    let restored = std::fs::read(&data_path).expect("reading data.txt");
    assert_eq!(
        restored,
        PRISTINE.as_bytes(),
        "the restarted deployer restores data.txt"
    );

    let mut phases = Vec::new();
    for _ in 0..2 {
        let event = next_event(&mut events).await;
        phases.push((event.injection_id.clone(), event.phase.clone()));
        if event.injection_id == corrupt.id {
            assert!(
                event.message.contains("restored 16 bytes"),
                "{}",
                event.message
            );
        }
    }
    phases.sort();
    let mut expected = vec![
        (corrupt.id.clone(), "reverted".to_owned()),
        (hang.id.clone(), "reverted".to_owned()),
    ];
    expected.sort();
    assert_eq!(phases, expected);

    for id in [&corrupt.id, &hang.id] {
        let closed = get(&mut chaos_second, id).await;
        assert_eq!(closed.state(), InjectionState::Reverted, "{closed:?}");
        assert!(closed.targets.iter().all(|t| !t.active));
    }
    let stored = nats.stored().await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|i| i.state() == InjectionState::Reverted),
        "{stored:?}"
    );
}

/// Two replicas of the sample workload image, which declare a file inside the image.
fn docker_fleet() -> String {
    format!(
        r#"
[[workload]]
name = "web"
image = "{}"
replicas = 2
start_timeout = "20s"
checksum_files = ["/srv/aro/beat-data.txt"]

[workload.health]
http = "http://{{host}}:{{port}}/healthz"
interval = "100ms"
timeout = "1s"
"#,
        docker_fixture::image()
    )
}

#[tokio::test]
async fn docker_faults_expire_and_close_after_a_restart() {
    let scope = docker_fixture::Scope::new("chaos").await;
    scope.engine().await;
    let nats = Nats::start().await;
    let docker_args = vec![
        "--runtime".to_owned(),
        "docker".to_owned(),
        "--docker-network".to_owned(),
        scope.network.clone(),
        "--replica".to_owned(),
        scope.replica.clone(),
    ];
    let mut first = nats.deployer_with(&docker_fleet(), docker_args.clone());
    nats.wait_serving("web", 2).await;
    let mut chaos_first = chaos(&first).await;
    let web_1 = scope.container_of("web-1").await;
    let web_2 = scope.container_of("web-2").await;
    let on_network = |networks: &[String]| networks.contains(&scope.network);

    // A partition with a duration is reconnected by the deployer.
    let partition = inject(
        &mut chaos_first,
        InjectFaultRequest {
            duration: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..request(ChaosKind::Partition, selector("web", &["web-1"]))
        },
    )
    .await
    .injection
    .expect("the partition");
    assert!(!on_network(&scope.state(&web_1).await.1));
    eventually("web-1 reconnected", || async {
        on_network(&scope.state(&web_1).await.1).then_some(())
    })
    .await;
    // The deployer records the expiry right after it reconnected the container.
    eventually("the partition recorded as expired", || {
        let mut chaos = chaos_first.clone();
        let id = partition.id.clone();
        async move { (get(&mut chaos, &id).await.state() == InjectionState::Expired).then_some(()) }
    })
    .await;

    // A hang pauses the container until it is cancelled.
    let hang = inject(
        &mut chaos_first,
        request(ChaosKind::Hang, selector("web", &["web-2"])),
    )
    .await
    .injection
    .expect("the hang");
    assert!(scope.state(&web_2).await.0, "web-2 is paused");
    chaos_first
        .cancel_fault(CancelFaultRequest { id: hang.id })
        .await
        .expect("cancelling the hang");
    assert!(!scope.state(&web_2).await.0, "web-2 runs again");

    // A partition left by a killed deployer is closed by the next one, whose fresh
    // containers replace the partitioned one.
    let leftover = inject(
        &mut chaos_first,
        request(ChaosKind::Partition, selector("web", &["web-1"])),
    )
    .await
    .injection
    .expect("the partition");
    let mut events = nats.chaos_events().await;
    first.signal(UnixSignal::SIGKILL);
    first.wait_exit(docker_fixture::WAIT);
    let second = nats.deployer_with(&docker_fleet(), docker_args);
    let mut chaos_second = chaos(&second).await;
    let closed = next_event(&mut events).await;
    assert_eq!(closed.injection_id, leftover.id);
    assert_eq!(closed.phase, "reverted");
    assert_eq!(
        get(&mut chaos_second, &leftover.id).await.state(),
        InjectionState::Reverted
    );
    nats.wait_serving("web", 2).await;
    let fresh = scope.container_of("web-3").await;
    assert!(on_network(&scope.state(&fresh).await.1));
}
