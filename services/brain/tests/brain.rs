//! The brain binary against a real nats-server and the committed model: the test acts as the
//! detector (publishes faults) and as the deployer (publishes outcomes).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aro_bus::async_nats::Subscriber;
use aro_bus::{Bus, subjects};
use aro_proto::v1;
use aro_stack::{NatsServer, free_port, wait_for_health};
use futures::StreamExt;
use prost::Message;
use tokio::process::{Child, Command};

struct Harness {
    nats: NatsServer,
    brain: Child,
    bus: Bus,
    grpc: std::net::SocketAddr,
    _dir: PathBuf,
}

impl Harness {
    async fn start(name: &str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("aro-brain-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        let nats_binary = aro_stack::find_nats_server().expect("nats-server: run `make setup`");
        let nats = NatsServer::start(&nats_binary, &dir)
            .await
            .expect("nats-server starts");
        let grpc = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let log = std::fs::File::create(dir.join("brain.log")).expect("creating the brain log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_aro-brain"));
        command
            .args(["--nats-url", &nats.url(), "--grpc-addr", &grpc.to_string()])
            .arg("--model")
            .arg(root.join("models/policy.onnx"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(library) = aro_stack::find_onnxruntime() {
            command.arg("--onnxruntime").arg(library);
        }
        let brain = command.spawn().expect("the brain starts");
        assert!(
            wait_for_health(grpc, Duration::from_secs(20)).await,
            "the brain serves; see {}",
            dir.display()
        );
        let bus = Bus::connect(&nats.url(), "brain-test")
            .await
            .expect("connecting to NATS");
        Self {
            nats,
            brain,
            bus,
            grpc,
            _dir: dir,
        }
    }

    async fn subscribe(&self, subject: String) -> Subscriber {
        let subscriber = self
            .bus
            .client()
            .subscribe(subject)
            .await
            .expect("subscribing");
        self.bus
            .client()
            .flush()
            .await
            .expect("flushing the subscription");
        subscriber
    }

    async fn publish_fault(&self, fault: &v1::FaultEvent) {
        let workload = &fault.target.as_ref().expect("faults have targets").workload;
        self.bus
            .publish(subjects::fault(workload), &fault.id, fault)
            .await
            .expect("publishing a fault");
    }

    async fn publish_outcome(&self, outcome: &v1::Outcome) {
        let workload = &outcome
            .target
            .as_ref()
            .expect("outcomes have targets")
            .workload;
        self.bus
            .publish(subjects::outcome(workload), &outcome.id, outcome)
            .await
            .expect("publishing an outcome");
    }

    async fn client(&self) -> v1::brain_client::BrainClient<tonic::transport::Channel> {
        v1::brain_client::BrainClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("connecting to the brain")
    }

    async fn stop(mut self) {
        let _ = self.brain.kill().await;
        self.nats.stop().await;
    }
}

fn fault(instance: &str, kind: v1::FaultKind, healthy: u32) -> v1::FaultEvent {
    let generation = 1;
    let kind_name = kind
        .as_str_name()
        .trim_start_matches("FAULT_KIND_")
        .to_ascii_lowercase();
    v1::FaultEvent {
        id: format!("flt-{instance}-g{generation}-{kind_name}"),
        incident_id: format!("inc-{instance}-g{generation}"),
        target: Some(v1::InstanceRef {
            workload: "web".to_owned(),
            instance: instance.to_owned(),
            generation,
            node: "node-a".to_owned(),
        }),
        kind: kind as i32,
        observed_at: Some(aro_proto::time::now()),
        detected_at: Some(aro_proto::time::now()),
        healthy_replicas: healthy,
        desired_replicas: healthy + 1,
        ..Default::default()
    }
}

async fn next<M: Message + Default>(subscriber: &mut Subscriber) -> M {
    let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
        .await
        .expect("a message within 10 s")
        .expect("the subscription is open");
    M::decode(message.payload).expect("a valid protobuf payload")
}

async fn nothing_within(subscriber: &mut Subscriber, duration: Duration) -> bool {
    tokio::time::timeout(duration, subscriber.next())
        .await
        .is_err()
}

#[tokio::test]
async fn decision_record_round_trips_through_jetstream() {
    let harness = Harness::start("round-trip", &[]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    harness
        .publish_fault(&fault("web-1", v1::FaultKind::Crash, 1))
        .await;

    let command: v1::Command = next(&mut commands).await;
    assert_eq!(command.id, "cmd-inc-web-1-g1-a1");
    assert_eq!(command.incident_id, "inc-web-1-g1");
    assert_eq!(command.fault_id, "flt-web-1-g1-crash");
    let decision = command.decision.expect("the command records its decision");
    assert!(!decision.model_version.is_empty());
    assert_eq!(decision.scores.len(), 7);
    assert_eq!(decision.features.len(), aro_policy::N_FEATURES);
    assert!(
        decision
            .guards
            .iter()
            .any(|verdict| verdict.guard == "last_healthy_replica")
    );
    assert!(
        decision
            .guards
            .iter()
            .any(|verdict| verdict.guard == "global_rate")
    );
    assert_eq!(decision.mode(), v1::Mode::Enforce);
    assert_eq!(decision.action, command.action);
    harness.stop().await;
}

#[tokio::test]
async fn redelivered_fault_yields_one_command() {
    let harness = Harness::start("redelivered", &[]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let crash = fault("web-1", v1::FaultKind::Crash, 1);
    harness.publish_fault(&crash).await;
    let _: v1::Command = next(&mut commands).await;
    // A second detector replica publishes the same fault with another message id.
    let mut copy = crash.clone();
    copy.detected_at = Some(aro_proto::time::now());
    harness
        .bus
        .publish(subjects::fault("web"), "another-msg-id", &copy)
        .await
        .expect("publishing");
    assert!(
        nothing_within(&mut commands, Duration::from_secs(1)).await,
        "one command per incident"
    );
    harness.stop().await;
}

#[tokio::test]
async fn failed_outcome_climbs_ladder_and_recovered_closes() {
    let harness = Harness::start("ladder", &["--min-confidence", "1.01"]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let crash = fault("web-1", v1::FaultKind::Crash, 1);
    harness.publish_fault(&crash).await;
    let first: v1::Command = next(&mut commands).await;
    assert_eq!(
        first.action(),
        v1::Action::Restart,
        "the rules restart a crash"
    );
    assert_eq!(
        first.decision.as_ref().map(|d| d.source()),
        Some(v1::DecisionSource::Rules)
    );

    let failed = v1::Outcome {
        id: format!("out-{}", first.id),
        incident_id: first.incident_id.clone(),
        command_id: first.id.clone(),
        target: first.target.clone(),
        action: first.action,
        status: v1::OutcomeStatus::Failed as i32,
        attempt: 1,
        ..Default::default()
    };
    harness.publish_outcome(&failed).await;
    let second: v1::Command = next(&mut commands).await;
    assert_eq!(second.attempt, 2);
    assert_eq!(second.action(), v1::Action::Replace);
    assert_eq!(
        second.decision.as_ref().map(|d| d.source()),
        Some(v1::DecisionSource::Ladder)
    );

    let recovered = v1::Outcome {
        id: format!("out-{}", second.id),
        command_id: second.id.clone(),
        action: second.action,
        status: v1::OutcomeStatus::Recovered as i32,
        attempt: 2,
        ..failed.clone()
    };
    harness.publish_outcome(&recovered).await;
    // The same outcome again changes nothing.
    harness
        .bus
        .publish(subjects::outcome("web"), "duplicate", &recovered)
        .await
        .expect("publishing");
    assert!(nothing_within(&mut commands, Duration::from_secs(1)).await);
    let incidents = harness
        .client()
        .await
        .list_incidents(v1::ListIncidentsRequest::default())
        .await;
    let incidents = incidents.expect("listing incidents").into_inner().incidents;
    let incident = incidents
        .iter()
        .find(|i| i.id == "inc-web-1-g1")
        .expect("the incident is stored");
    assert_eq!(incident.state, "recovered");
    assert_eq!(incident.attempt, 2);
    harness.stop().await;
}

#[tokio::test]
async fn last_healthy_replica_is_escalated_not_touched() {
    // The rules decide (the gate is above any confidence), and they replace a corrupt instance.
    let harness = Harness::start("last-replica", &["--min-confidence", "1.01"]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    harness
        .publish_fault(&fault("web-1", v1::FaultKind::ChecksumMismatch, 0))
        .await;
    let command: v1::Command = next(&mut commands).await;
    let decision = command.decision.clone().expect("a decision");
    let guard = decision
        .guards
        .iter()
        .find(|verdict| verdict.guard == "last_healthy_replica")
        .expect("the guard gave a verdict");
    assert!(!guard.allowed, "{}", guard.reason);
    assert!(
        guard.reason.contains("last healthy replica"),
        "{}",
        guard.reason
    );
    assert_eq!(command.action(), v1::Action::Escalate);
    harness.stop().await;
}

#[tokio::test]
async fn observe_mode_records_and_acts_on_nothing() {
    let harness = Harness::start("observe", &["--workload-mode", "web=observe"]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let mut decisions = harness.subscribe(subjects::decision("web")).await;
    harness
        .publish_fault(&fault("web-1", v1::FaultKind::Crash, 1))
        .await;

    let recorded: v1::Command = next(&mut decisions).await;
    assert_eq!(
        recorded.decision.as_ref().map(|d| d.mode()),
        Some(v1::Mode::Observe)
    );
    assert!(
        nothing_within(&mut commands, Duration::from_secs(1)).await,
        "observe mode acts on nothing"
    );
    harness.stop().await;
}

#[tokio::test]
async fn propose_mode_waits_for_approval() {
    let harness = Harness::start("propose", &["--mode", "propose"]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let mut decisions = harness.subscribe(subjects::decision("web")).await;
    harness
        .publish_fault(&fault("web-1", v1::FaultKind::Crash, 1))
        .await;
    harness
        .publish_fault(&fault("web-2", v1::FaultKind::Crash, 1))
        .await;

    let first: v1::Command = next(&mut decisions).await;
    let _second: v1::Command = next(&mut decisions).await;
    assert!(
        nothing_within(&mut commands, Duration::from_secs(1)).await,
        "nothing runs before approval"
    );

    let mut client = harness.client().await;
    let approve = v1::ApproveRequest {
        incident_id: "inc-web-1-g1".to_owned(),
        approver: "test".to_owned(),
    };
    let approved = client
        .approve(approve.clone())
        .await
        .expect("approving")
        .into_inner()
        .command
        .expect("a command");
    let issued: v1::Command = next(&mut commands).await;
    assert_eq!(issued.id, approved.id);
    assert_eq!(
        issued.id,
        if first.incident_id == "inc-web-1-g1" {
            first.id.clone()
        } else {
            issued.id.clone()
        }
    );
    let again = client.approve(approve).await.expect_err("approving twice");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);

    let reject = v1::RejectRequest {
        incident_id: "inc-web-2-g1".to_owned(),
        approver: "test".to_owned(),
        reason: "maintenance".to_owned(),
    };
    let rejected = client
        .reject(reject)
        .await
        .expect("rejecting")
        .into_inner()
        .incident
        .expect("the incident");
    assert_eq!(rejected.state, "rejected");
    assert!(
        rejected.reason.contains("maintenance"),
        "{}",
        rejected.reason
    );
    assert!(
        nothing_within(&mut commands, Duration::from_secs(1)).await,
        "a rejected command never runs"
    );

    let missing = v1::ApproveRequest {
        incident_id: "inc-nope".to_owned(),
        approver: String::new(),
    };
    assert_eq!(
        client
            .approve(missing)
            .await
            .expect_err("no such incident")
            .code(),
        tonic::Code::NotFound
    );
    harness.stop().await;
}

#[tokio::test]
async fn invalid_fault_is_rejected() {
    let harness = Harness::start("invalid", &[]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let mut bad = fault("web-1", v1::FaultKind::Crash, 1);
    bad.target.as_mut().expect("set above").workload = "Web".to_owned();
    harness
        .bus
        .publish(subjects::fault("web"), &bad.id, &bad)
        .await
        .expect("publishing");
    assert!(
        nothing_within(&mut commands, Duration::from_secs(1)).await,
        "no command for an invalid fault"
    );
    // The brain carries on with valid faults.
    harness
        .publish_fault(&fault("web-2", v1::FaultKind::Crash, 1))
        .await;
    let command: v1::Command = next(&mut commands).await;
    assert_eq!(command.incident_id, "inc-web-2-g1");
    harness.stop().await;
}

#[tokio::test]
async fn storm_pages_once_instead_of_acting_on_each() {
    let harness = Harness::start(
        "storm",
        &["--storm-threshold", "3", "--storm-window", "10s"],
    )
    .await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    for n in 1..=6 {
        harness
            .publish_fault(&fault(&format!("web-{n}"), v1::FaultKind::Crash, 5))
            .await;
    }
    let mut received = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(2), commands.next()).await
    {
        received.push(v1::Command::decode(message.payload).expect("a command"));
    }
    let ids: Vec<&str> = received
        .iter()
        .map(|command| command.incident_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["inc-web-1-g1", "inc-web-2-g1", "storm-web-1"],
        "{received:#?}"
    );
    assert_eq!(received[2].action(), v1::Action::Escalate);
    let reason = &received[2].decision.as_ref().expect("a decision").reason;
    assert!(reason.contains("storm"), "{reason}");

    let incidents = harness
        .client()
        .await
        .list_incidents(v1::ListIncidentsRequest::default())
        .await;
    let incidents = incidents.expect("listing incidents").into_inner().incidents;
    for n in 3..=6 {
        let id = format!("inc-web-{n}-g1");
        let incident = incidents
            .iter()
            .find(|incident| incident.id == id)
            .expect("every fault has an incident");
        assert_eq!(incident.state, "storm", "{id}");
        assert_eq!(incident.attempt, 0, "{id} took no action");
    }
    harness.stop().await;
}

#[tokio::test]
async fn unknown_fault_kind_goes_to_a_person() {
    let harness = Harness::start("unknown-kind", &[]).await;
    let mut commands = harness.subscribe(subjects::command("web")).await;
    let mut newer = fault("web-1", v1::FaultKind::Crash, 1);
    newer.kind = 99;
    harness.publish_fault(&newer).await;
    let command: v1::Command = next(&mut commands).await;
    assert_eq!(command.action(), v1::Action::Escalate);
    let decision = command.decision.expect("a decision");
    assert_eq!(decision.source(), v1::DecisionSource::Rules);
    assert!(
        decision.reason.contains("unknown fault kind 99"),
        "{}",
        decision.reason
    );
    harness.stop().await;
}
