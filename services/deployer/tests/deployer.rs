//! Component tests of the deployer: a real `nats-server`, the real `aro-deployer` binary and
//! real processes (Python's HTTP server and shell loops).

mod chaos_kinds;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aro_bus::async_nats::{self, Subscriber};
use aro_bus::{Bus, Registry, subjects};
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::deployer_client::DeployerClient;
use aro_proto::v1::{
    Action, ChaosEvent, ChaosKind, Command, CrashLoopParams, FaultParams, HaltAllRequest,
    InjectFaultRequest, Instance, InstanceRef, InstanceState, ListFaultsRequest,
    ListWorkloadsRequest, Outcome, OutcomeStatus, Signal, TargetSelector, fault_params,
    health_check, signal,
};
use futures::StreamExt;
use nix::sys::signal::Signal as UnixSignal;
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

use support::deployer::{Deployer, Options};
use support::nats_server::NatsServer;
use support::poll::{WAIT, eventually, is_alive, process_state, wait_stopped};

/// Two replicas of Python's HTTP file server: an off-the-shelf program with an HTTP check.
const WEB: &str = r#"
[[workload]]
name = "web"
command = "python3"
args = ["-m", "http.server", "{port}", "--bind", "127.0.0.1"]
replicas = 2
start_timeout = "10s"

[workload.health]
http = "http://127.0.0.1:{port}/"
interval = "100ms"
timeout = "1s"
"#;

/// One shell loop that prints a line every 100 ms, checked by a command.
const TICKER: &str = r#"
[[workload]]
name = "ticker"
command = "sh"
args = ["-c", "while true; do echo \"tick {instance} $$\"; sleep 0.1; done"]
replicas = 1

[workload.health]
exec = ["true"]
"#;

/// A deployer with its NATS server. Fields drop in order: the deployer stops while NATS
/// still runs.
struct Harness {
    deployer: Deployer,
    bus: Bus,
    registry: Registry,
    _nats: NatsServer,
}

impl Harness {
    async fn start(fleet: &str, options: &Options) -> Self {
        let nats = NatsServer::start();
        let deployer = Deployer::start(&nats.url(), fleet, options);
        let bus = Bus::connect_and_prepare(&nats.url(), "deployer-test")
            .await
            .expect("connecting to the test NATS server");
        let registry = Registry::open(&bus).await.expect("opening the registry");
        Self {
            deployer,
            bus,
            registry,
            _nats: nats,
        }
    }

    fn client(&self) -> &async_nats::Client {
        self.bus.client()
    }

    /// Registry entries of `workload`, by instance id.
    async fn instances(&self, workload: &str) -> Vec<Instance> {
        by_id(&self.registry)
            .await
            .into_values()
            .filter(|instance| reference(instance).workload == workload)
            .collect()
    }

    async fn instance(&self, workload: &str, instance: &str) -> Option<Instance> {
        self.registry
            .get(workload, instance)
            .await
            .expect("reading the registry")
    }

    /// Waits until `workload` has `count` serving instances and returns them.
    async fn wait_serving(&self, workload: &str, count: usize) -> Vec<Instance> {
        eventually(
            &format!("{count} serving instances of {workload}"),
            || async {
                let serving: Vec<Instance> = self
                    .instances(workload)
                    .await
                    .into_iter()
                    .filter(|instance| instance.state() == InstanceState::Serving)
                    .collect();
                (serving.len() == count).then_some(serving)
            },
        )
        .await
    }

    async fn chaos(&self) -> ChaosClient<Channel> {
        ChaosClient::new(self.channel().await)
    }

    async fn channel(&self) -> Channel {
        let url = self.deployer.grpc_url();
        eventually("the deployer's gRPC server", || async {
            Channel::from_shared(url.clone())
                .expect("a valid URL")
                .connect()
                .await
                .ok()
        })
        .await
    }

    async fn publish_command(&self, command: &Command) {
        let workload = &reference_of(command).workload;
        self.bus
            .publish(subjects::command(workload), &command.id, command)
            .await
            .expect("publishing the command");
    }

    /// Subscribes to `subject` and returns once the server has registered the subscription.
    async fn subscribe(&self, subject: String) -> Subscriber {
        let subscriber = self.client().subscribe(subject).await.expect("subscribing");
        // `flush` only writes the subscription to the socket. The server handles one
        // connection's messages in order, so the reply to a request sent after it means the
        // subscription is active.
        self.bus
            .jetstream()
            .query_account()
            .await
            .expect("querying the JetStream account");
        subscriber
    }
}

/// Lists every registry entry by instance id. A listing that overlaps a write can return a key
/// twice, and the later copy is kept.
async fn by_id(registry: &Registry) -> BTreeMap<String, Instance> {
    registry
        .list()
        .await
        .expect("listing the registry")
        .into_iter()
        .map(|instance| (reference(&instance).instance.clone(), instance))
        .collect()
}

fn reference(instance: &Instance) -> &InstanceRef {
    instance
        .r#ref
        .as_ref()
        .expect("registry entries carry a reference")
}

fn reference_of(command: &Command) -> &InstanceRef {
    command
        .target
        .as_ref()
        .expect("test commands have a target")
}

/// Next message on `subscriber`, decoded.
async fn next<M: Message + Default>(subscriber: &mut Subscriber) -> M {
    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .expect("timed out waiting for a message")
        .expect("the subscription is open");
    M::decode(message.payload).expect("a decodable message")
}

/// Next signal of `kind` on `subscriber`, skipping others.
async fn next_signal(subscriber: &mut Subscriber, exited: bool) -> Signal {
    loop {
        let signal: Signal = next(subscriber).await;
        let is_exit = matches!(signal.kind, Some(signal::Kind::Exited(_)));
        if is_exit == exited {
            return signal;
        }
    }
}

fn exited(signal: &Signal) -> &aro_proto::v1::Exited {
    match &signal.kind {
        Some(signal::Kind::Exited(exited)) => exited,
        other => panic!("expected an exited signal, got {other:?}"),
    }
}

fn command(id: &str, action: Action, instance: &str, generation: u64) -> Command {
    Command {
        id: id.to_owned(),
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

/// A request for a fault in `instance`, or in one serving instance when it is empty. The
/// last-replica guard is off, because these tests check what each kind does to one instance;
/// `chaos_api.rs` tests the guard.
fn inject(kind: ChaosKind, workload: &str, instance: &str) -> InjectFaultRequest {
    InjectFaultRequest {
        kind: kind as i32,
        selector: Some(TargetSelector {
            workload: workload.to_owned(),
            instances: [instance]
                .into_iter()
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect(),
            ..TargetSelector::default()
        }),
        allow_last_replica: true,
        ..InjectFaultRequest::default()
    }
}

/// Number of injections the Chaos API lists as active.
async fn active_injections(chaos: &mut ChaosClient<Channel>) -> usize {
    chaos
        .list_faults(ListFaultsRequest {
            active_only: true,
            ..ListFaultsRequest::default()
        })
        .await
        .expect("listing faults")
        .into_inner()
        .injections
        .len()
}

/// Halts every injection and returns how many were active.
async fn halt_all(chaos: &mut ChaosClient<Channel>) -> u32 {
    chaos
        .halt_all(HaltAllRequest {})
        .await
        .expect("halting")
        .into_inner()
        .halted
}

#[tokio::test]
async fn registry_fills_with_serving_instances() {
    let harness = Harness::start(&format!("{WEB}{TICKER}"), &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    harness.wait_serving("ticker", 1).await;

    let ids: Vec<&str> = web.iter().map(|i| reference(i).instance.as_str()).collect();
    assert_eq!(ids, ["web-1", "web-2"]);
    let slots: Vec<u32> = web.iter().map(|i| i.slot).collect();
    assert_eq!(slots, [0, 1]);
    for instance in &web {
        assert_eq!(reference(instance).generation, 1);
        assert!(
            is_alive(instance.pid),
            "pid {} should be running",
            instance.pid
        );
        assert!(instance.artifact_digest.starts_with("sha256:"));
        assert_eq!(instance.artifact_digest.len(), "sha256:".len() + 64);
        assert_eq!(instance.replicas, 2);
        assert!(!instance.pushes_heartbeats);
        let check = instance.health_check.as_ref().and_then(|c| c.check.clone());
        let Some(health_check::Check::HttpUrl(url)) = check else {
            panic!("web instances have an HTTP check, got {check:?}");
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.contains("{port}"), "{url}");
    }

    let workloads = DeployerClient::new(harness.channel().await)
        .list_workloads(ListWorkloadsRequest {})
        .await
        .expect("listing workloads")
        .into_inner();
    assert_eq!(workloads.runtime, "process");
    let names: Vec<&str> = workloads
        .workloads
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(names, ["ticker", "web"]);
    assert_eq!(workloads.workloads[1].instances.len(), 2);
}

#[tokio::test]
async fn instance_output_is_published_line_by_line() {
    let harness = Harness::start(TICKER, &Options::default()).await;
    let mut logs = harness
        .subscribe("aro.logs.ticker.ticker-1".to_owned())
        .await;
    harness.wait_serving("ticker", 1).await;
    let line = tokio::time::timeout(WAIT, logs.next())
        .await
        .expect("timed out waiting for a log line")
        .expect("the subscription is open");
    let text = String::from_utf8_lossy(&line.payload).into_owned();
    assert!(text.starts_with("tick ticker-1 "), "{text:?}");
    assert!(!text.ends_with('\n'), "{text:?}");
}

#[tokio::test]
async fn chaos_kill_publishes_unexpected_exit() {
    let harness = Harness::start(WEB, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    let pid = web[0].pid;
    let mut signals = harness.subscribe(subjects::signal("web", "web-1")).await;
    let mut chaos_events = harness.subscribe(subjects::chaos("web")).await;

    let injection = harness
        .chaos()
        .await
        .inject_fault(inject(ChaosKind::Kill, "web", "web-1"))
        .await
        .expect("injecting a kill")
        .into_inner()
        .injection
        .expect("the response carries the injection");
    assert_eq!(injection.kind, ChaosKind::Kill as i32);

    let signal = next_signal(&mut signals, true).await;
    assert_eq!(signal.id, "sig-web-1-g1-exited");
    let exit = exited(&signal);
    assert!(!exit.expected);
    assert_eq!(exit.signal, Some(9));
    assert_eq!(exit.code, None);

    let event: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(event.id, format!("chaos-{}-injected", injection.id));
    assert_eq!(event.phase, "injected");
    assert_eq!(event.injected_at, injection.injected_at);
    assert!(!is_alive(pid));

    eventually("web-1 stopped in the registry", || async {
        let entry = harness.instance("web", "web-1").await?;
        (entry.state() == InstanceState::Stopped).then_some(())
    })
    .await;
}

#[tokio::test]
async fn restart_command_recovers_with_next_generation() {
    let harness = Harness::start(WEB, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    let old_pid = web[0].pid;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;
    let mut signals = harness.subscribe(subjects::signal("web", "web-1")).await;

    let restart = command("cmd-inc-web-1-g1-a1", Action::Restart, "web-1", 1);
    harness.publish_command(&restart).await;

    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(outcome.id, "out-cmd-inc-web-1-g1-a1");
    assert_eq!(outcome.command_id, restart.id);
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    let replacement = outcome.replacement.clone().expect("a replacement is named");
    assert_eq!(replacement.instance, "web-1");
    assert_eq!(replacement.generation, 2);
    assert!(outcome.started_at.is_some());
    assert!(outcome.replaced_at.is_some());
    assert!(outcome.verified_at.is_some());
    assert!(outcome.isolated_at.is_none());

    let stopped = next_signal(&mut signals, true).await;
    assert_eq!(stopped.id, "sig-web-1-g1-exited");
    assert!(exited(&stopped).expected);
    let started = next_signal(&mut signals, false).await;
    assert_eq!(started.id, "sig-web-1-g2-started");

    let entry = harness
        .instance("web", "web-1")
        .await
        .expect("web-1 is registered");
    assert_eq!(reference(&entry).generation, 2);
    assert_eq!(entry.state(), InstanceState::Serving);
    assert_ne!(entry.pid, old_pid);
    assert!(!is_alive(old_pid));
    assert!(is_alive(entry.pid));
    let more = tokio::time::timeout(Duration::from_millis(500), outcomes.next()).await;
    assert!(more.is_err(), "exactly one outcome is published");
}

#[tokio::test]
async fn replace_command_isolates_and_starts_fresh_instance() {
    let options = Options {
        isolation_retention: "3s",
        ..Options::default()
    };
    let harness = Harness::start(WEB, &options).await;
    let web = harness.wait_serving("web", 2).await;
    let isolated_pid = web[0].pid;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;

    harness
        .publish_command(&command("cmd-inc-web-1-g1-a1", Action::Replace, "web-1", 1))
        .await;
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    let replacement = outcome.replacement.clone().expect("a replacement is named");
    assert_eq!(replacement.instance, "web-3");
    assert_eq!(replacement.generation, 1);
    assert!(outcome.isolated_at.is_some());
    assert!(outcome.replaced_at.is_some());
    assert!(outcome.verified_at.is_some());

    let isolated = harness
        .instance("web", "web-1")
        .await
        .expect("web-1 is kept");
    assert_eq!(isolated.state(), InstanceState::Isolated);
    wait_stopped(isolated_pid, true).await;
    let fresh = harness
        .instance("web", "web-3")
        .await
        .expect("web-3 is registered");
    assert_eq!(fresh.state(), InstanceState::Serving);
    assert_eq!(fresh.slot, isolated.slot);

    eventually("web-1 removed after its retention", || async {
        harness
            .instance("web", "web-1")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    eventually("web-1's process gone", || async {
        (!is_alive(isolated_pid)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn republished_command_id_does_not_act_twice() {
    let harness = Harness::start(WEB, &Options::default()).await;
    harness.wait_serving("web", 2).await;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;
    let restart = command("cmd-inc-web-1-g1-a1", Action::Restart, "web-1", 1);
    harness.publish_command(&restart).await;
    let first: Outcome = next(&mut outcomes).await;
    assert_eq!(
        first.status(),
        OutcomeStatus::Recovered,
        "{}",
        first.message
    );

    // Published again without a message id, so JetStream stores and delivers the copy.
    harness
        .bus
        .jetstream()
        .publish(subjects::command("web"), restart.encode_to_vec().into())
        .await
        .expect("publishing the copy")
        .await
        .expect("JetStream stored the copy");

    let stream = harness
        .bus
        .jetstream()
        .get_stream(subjects::COMMANDS_STREAM)
        .await
        .expect("the commands stream exists");
    eventually("the copy acknowledged", || {
        let stream = stream.clone();
        async move {
            let info = stream.consumer_info("deployer").await.ok()?;
            (info.delivered.stream_sequence == 2
                && info.num_ack_pending == 0
                && info.num_pending == 0)
                .then_some(())
        }
    })
    .await;

    let entry = harness
        .instance("web", "web-1")
        .await
        .expect("web-1 is registered");
    assert_eq!(reference(&entry).generation, 2);
    let second = tokio::time::timeout(Duration::from_millis(500), outcomes.next()).await;
    assert!(second.is_err(), "no second outcome is published");
}

#[tokio::test]
async fn stale_and_unsupported_commands_do_nothing() {
    let harness = Harness::start(WEB, &Options::default()).await;
    harness.wait_serving("web", 2).await;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;

    let cases = [
        (
            command("cmd-a", Action::Restart, "web-1", 7),
            OutcomeStatus::Superseded,
            "generation 1",
        ),
        (
            command("cmd-b", Action::Rollback, "web-1", 1),
            OutcomeStatus::Rejected,
            "ROLLBACK",
        ),
        (
            command("cmd-c", Action::Escalate, "web-1", 1),
            OutcomeStatus::Noop,
            "ESCALATE",
        ),
        (
            command("cmd-d", Action::Restart, "web-9", 1),
            OutcomeStatus::Superseded,
            "web-9",
        ),
    ];
    for (command, status, mention) in cases {
        harness.publish_command(&command).await;
        let outcome: Outcome = next(&mut outcomes).await;
        assert_eq!(outcome.command_id, command.id);
        assert_eq!(outcome.status(), status, "{}", outcome.message);
        assert!(
            outcome.message.contains(mention),
            "{:?} should mention {mention}",
            outcome.message
        );
    }
    let web = harness.wait_serving("web", 2).await;
    for instance in &web {
        assert_eq!(reference(instance).generation, 1);
    }
}

#[tokio::test]
async fn changed_checksum_file_fails_verification() {
    let fleet = WEB.replace(
        "replicas = 2",
        "replicas = 2\nchecksum_files = [\"data.txt\"]",
    );
    let options = Options {
        files: vec![("data.txt", "pristine")],
        ..Options::default()
    };
    let harness = Harness::start(&fleet, &options).await;
    let web = harness.wait_serving("web", 2).await;
    let declared = &web[0].declared_files;
    assert_eq!(declared.len(), 1);
    assert!(declared[0].path.ends_with("data.txt"), "{declared:?}");
    // sha256 of "pristine".
    assert_eq!(
        declared[0].digest,
        "sha256:9f2235c7754a56a9f0bc89dc2eb821ba0e52189db6dba93ee03d22337ae9739c"
    );

    std::fs::write(harness.deployer.file("data.txt"), "tampered").expect("changing the file");
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;
    harness
        .publish_command(&command("cmd-inc-web-1-g1-a1", Action::Restart, "web-1", 1))
        .await;
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Failed,
        "{}",
        outcome.message
    );
    assert!(outcome.message.contains("data.txt"), "{}", outcome.message);
    assert!(outcome.verified_at.is_none());
}

#[tokio::test]
async fn crash_loop_kills_restarts_in_place() {
    let harness = Harness::start(WEB, &Options::default()).await;
    harness.wait_serving("web", 2).await;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;
    let mut signals = harness.subscribe(subjects::signal("web", "web-1")).await;
    let mut chaos = harness.chaos().await;
    let request = InjectFaultRequest {
        params: Some(FaultParams {
            kind: Some(fault_params::Kind::CrashLoop(CrashLoopParams {
                restarts: 1,
            })),
        }),
        ..inject(ChaosKind::CrashLoop, "web", "web-1")
    };
    chaos
        .inject_fault(request)
        .await
        .expect("injecting a crash loop");
    let first_exit = next_signal(&mut signals, true).await;
    assert_eq!(first_exit.id, "sig-web-1-g1-exited");

    harness
        .publish_command(&command("cmd-inc-web-1-g1-a1", Action::Restart, "web-1", 1))
        .await;
    let failed: Outcome = next(&mut outcomes).await;
    assert_eq!(failed.status(), OutcomeStatus::Failed, "{}", failed.message);
    assert!(failed.message.contains("exited"), "{}", failed.message);
    let second_exit = next_signal(&mut signals, true).await;
    assert_eq!(second_exit.id, "sig-web-1-g2-exited");
    assert!(!exited(&second_exit).expected);

    harness
        .publish_command(&command("cmd-inc-web-1-g1-a2", Action::Restart, "web-1", 2))
        .await;
    let recovered: Outcome = next(&mut outcomes).await;
    assert_eq!(
        recovered.status(),
        OutcomeStatus::Recovered,
        "{}",
        recovered.message
    );
    let faults = chaos
        .list_faults(ListFaultsRequest {
            active_only: true,
            ..ListFaultsRequest::default()
        })
        .await
        .expect("listing faults")
        .into_inner();
    assert!(faults.injections.is_empty(), "{:?}", faults.injections);
}

#[tokio::test]
async fn hang_is_listed_and_halted() {
    let harness = Harness::start(WEB, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    let pid = web[1].pid;
    let mut chaos = harness.chaos().await;
    let mut chaos_events = harness.subscribe(subjects::chaos("web")).await;

    let request = InjectFaultRequest {
        idempotency_key: "hang-once".to_owned(),
        ..inject(ChaosKind::Hang, "web", "web-2")
    };
    let first = chaos
        .inject_fault(request.clone())
        .await
        .expect("injecting a hang");
    let again = chaos
        .inject_fault(request)
        .await
        .expect("repeating the request");
    assert_eq!(first.get_ref().injection, again.get_ref().injection);
    wait_stopped(pid, true).await;

    assert_eq!(active_injections(&mut chaos).await, 1);
    assert_eq!(halt_all(&mut chaos).await, 1);
    assert!(is_alive(pid));
    wait_stopped(pid, false).await;

    let injected: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(injected.phase, "injected", "{injected:?}");
    let halted_event: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(halted_event.phase, "halted", "{halted_event:?}");
    assert_eq!(active_injections(&mut chaos).await, 0);
}

#[tokio::test]
async fn hang_with_duration_is_resumed() {
    let harness = Harness::start(WEB, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    let pid = web[0].pid;
    let mut chaos_events = harness.subscribe(subjects::chaos("web")).await;
    let request = InjectFaultRequest {
        duration: Some(prost_types::Duration {
            seconds: 0,
            nanos: 300_000_000,
        }),
        ..inject(ChaosKind::Hang, "web", "web-1")
    };
    harness
        .chaos()
        .await
        .inject_fault(request)
        .await
        .expect("injecting a hang");
    let injected: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(injected.phase, "injected");
    let expired: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(expired.phase, "expired");
    wait_stopped(pid, false).await;
}

#[tokio::test]
async fn chaos_disabled_returns_failed_precondition() {
    let options = Options {
        enable_chaos: false,
        ..Options::default()
    };
    let harness = Harness::start(WEB, &options).await;
    let web = harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;

    let error = chaos
        .inject_fault(inject(ChaosKind::Kill, "web", "web-1"))
        .await
        .expect_err("chaos is disabled");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("--enable-chaos"),
        "{}",
        error.message()
    );
    let list = chaos.list_faults(ListFaultsRequest::default()).await;
    assert_eq!(
        list.map_err(|e| e.code()).err(),
        Some(Code::FailedPrecondition)
    );
    let halt = chaos.halt_all(HaltAllRequest {}).await;
    assert_eq!(
        halt.map_err(|e| e.code()).err(),
        Some(Code::FailedPrecondition)
    );
    assert!(is_alive(web[0].pid));
}

#[tokio::test]
async fn bad_chaos_requests_are_rejected() {
    let harness = Harness::start(WEB, &Options::default()).await;
    harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;

    let cases = [
        (inject(ChaosKind::Kill, "nope", ""), Code::NotFound, "nope"),
        (
            inject(ChaosKind::Kill, "web", "web-9"),
            Code::NotFound,
            "web-9",
        ),
        (
            inject(ChaosKind::Kill, "", ""),
            Code::InvalidArgument,
            "workload",
        ),
        (
            inject(ChaosKind::Unspecified, "web", ""),
            Code::InvalidArgument,
            "kind",
        ),
        (
            inject(ChaosKind::CorruptFile, "web", "web-1"),
            Code::FailedPrecondition,
            "checksum_files",
        ),
        (
            inject(ChaosKind::LogStorm, "web", "web-1"),
            Code::FailedPrecondition,
            "workload \"web\" does not serve the chaos hooks that LOG_STORM needs",
        ),
        (
            inject(ChaosKind::StopHeartbeats, "web", "web-1"),
            Code::FailedPrecondition,
            "STOP_HEARTBEATS",
        ),
        (
            inject(ChaosKind::GrowMemory, "web", "web-1"),
            Code::FailedPrecondition,
            "GROW_MEMORY",
        ),
        (
            inject(ChaosKind::CorruptData, "web", "web-1"),
            Code::FailedPrecondition,
            "HTTP 501",
        ),
    ];
    for (request, code, mention) in cases {
        let error = chaos
            .inject_fault(request.clone())
            .await
            .expect_err("the request is invalid");
        assert_eq!(error.code(), code, "{request:?}");
        assert!(
            error.message().contains(mention),
            "{:?} should mention {mention}",
            error.message()
        );
    }

    let picked = chaos
        .inject_fault(inject(ChaosKind::Kill, "web", ""))
        .await
        .expect("an empty instance picks a serving one")
        .into_inner()
        .injection
        .and_then(|injection| injection.targets.into_iter().next())
        .and_then(|target| target.instance)
        .expect("the injection names its target");
    assert!(
        ["web-1", "web-2"].contains(&picked.instance.as_str()),
        "{picked:?}"
    );
}

#[tokio::test]
async fn sigterm_leaves_no_child_processes() {
    let mut harness = Harness::start(&format!("{WEB}{TICKER}"), &Options::default()).await;
    let mut pids: Vec<u32> = harness
        .wait_serving("web", 2)
        .await
        .iter()
        .map(|i| i.pid)
        .collect();
    pids.extend(
        harness
            .wait_serving("ticker", 1)
            .await
            .iter()
            .map(|i| i.pid),
    );
    let mut signals = harness.subscribe("aro.signals.>".to_owned()).await;

    harness.deployer.signal(UnixSignal::SIGTERM);
    let status = harness.deployer.wait_exit(WAIT);
    assert!(status.success(), "the deployer exited with {status}");

    for pid in &pids {
        assert_eq!(
            process_state(*pid),
            None,
            "process {pid} outlived the deployer"
        );
    }
    let mut exits = Vec::new();
    while exits.len() < pids.len() {
        let signal = next_signal(&mut signals, true).await;
        assert!(exited(&signal).expected, "{} should be expected", signal.id);
        exits.push(signal.id);
    }
    exits.sort();
    assert_eq!(
        exits,
        [
            "sig-ticker-1-g1-exited",
            "sig-web-1-g1-exited",
            "sig-web-2-g1-exited"
        ]
    );
    assert!(harness.instances("web").await.is_empty());
    assert!(harness.instances("ticker").await.is_empty());
}

#[tokio::test]
async fn sigkill_of_deployer_takes_children_along() {
    let mut harness = Harness::start(WEB, &Options::default()).await;
    let pids: Vec<u32> = harness
        .wait_serving("web", 2)
        .await
        .iter()
        .map(|i| i.pid)
        .collect();
    harness.deployer.signal(UnixSignal::SIGKILL);
    harness.deployer.wait_exit(WAIT);
    for pid in pids {
        eventually(&format!("process {pid} gone"), || async {
            (!is_alive(pid)).then_some(())
        })
        .await;
    }
}

/// Stops a deployer of two web instances with `stop`, starts another on the same NATS server
/// and returns the ids of the instances it serves.
async fn ids_after_restart(stop: UnixSignal) -> Vec<String> {
    let nats = NatsServer::start();
    let bus = Bus::connect_and_prepare(&nats.url(), "deployer-test")
        .await
        .expect("connecting to the test NATS server");
    let registry = Registry::open(&bus).await.expect("opening the registry");
    let mut first = Deployer::start(&nats.url(), WEB, &Options::default());
    eventually("web-1 and web-2 registered", || async {
        (by_id(&registry).await.len() == 2).then_some(())
    })
    .await;
    first.signal(stop);
    let status = first.wait_exit(WAIT);
    if stop == UnixSignal::SIGTERM {
        assert!(status.success(), "the deployer exited with {status}");
        assert!(
            by_id(&registry).await.is_empty(),
            "a clean stop empties the registry"
        );
    }

    let _second = Deployer::start(&nats.url(), WEB, &Options::default());
    eventually("two fresh instances serving", || async {
        let entries = by_id(&registry).await;
        let serving: Vec<String> = entries
            .values()
            .filter(|i| i.state() == InstanceState::Serving)
            .map(|i| reference(i).instance.clone())
            .collect();
        (serving.len() == 2 && entries.len() == 2).then_some(serving)
    })
    .await
}

#[tokio::test]
async fn restarted_deployer_removes_leftovers_and_continues_ids() {
    assert_eq!(
        ids_after_restart(UnixSignal::SIGKILL).await,
        ["web-3", "web-4"]
    );
}

/// The exits of web-1 and web-2 are stored under their signal ids, so fresh instances that
/// took those ids again would have their own exits dropped as duplicates.
#[tokio::test]
async fn cleanly_stopped_deployer_is_followed_by_new_ids() {
    assert_eq!(
        ids_after_restart(UnixSignal::SIGTERM).await,
        ["web-3", "web-4"]
    );
}

#[tokio::test]
async fn observe_of_healthy_instance_recovers() {
    let harness = Harness::start(WEB, &Options::default()).await;
    harness.wait_serving("web", 2).await;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;

    let observe = command("cmd-inc-web-1-g1-a1", Action::Observe, "web-1", 1);
    harness.publish_command(&observe).await;

    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("observation"),
        "{}",
        outcome.message
    );
    assert!(outcome.verified_at.is_some());
    assert!(outcome.replaced_at.is_none());
    let entry = harness
        .instance("web", "web-1")
        .await
        .expect("web-1 is registered");
    assert_eq!(
        reference(&entry).generation,
        1,
        "observing restarts nothing"
    );
}

#[tokio::test]
async fn observe_of_hung_instance_fails() {
    let harness = Harness::start(WEB, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;
    chaos
        .inject_fault(inject(ChaosKind::Hang, "web", "web-1"))
        .await
        .expect("injecting a hang");
    wait_stopped(web[0].pid, true).await;
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;

    let observe = command("cmd-inc-web-1-g1-a1", Action::Observe, "web-1", 1);
    harness.publish_command(&observe).await;

    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Failed,
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("still fails"),
        "{}",
        outcome.message
    );
}
