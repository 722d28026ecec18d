//! Checksums become CHECKSUM_MISMATCH faults: a declared file that changes, an executable or
//! script with another digest than expected, and a replica whose data checksum a majority
//! contradicts.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use aro_proto::v1::{DeclaredFile, FaultKind, HeartbeatRequest, Instance, InstanceState};

use crate::harness::{
    Deployer, Detector, Process, heartbeating, local_process, metric_value, sha256, sleeper,
    wait_watched,
};
use crate::nats_server::{NatsServer, free_port};

/// Maximum time from a change of a declared file to its fault: one poll interval of the
/// test detector (200 ms), the hash and the publish, with room for a loaded machine.
const FILE_DEADLINE: Duration = Duration::from_secs(3);

const FILE_MATCHES: &str =
    "aro_detector_checksum_checks_total{check=\"declared_file\",result=\"match\"}";
const ARTIFACT_MATCHES: &str =
    "aro_detector_checksum_checks_total{check=\"artifact\",result=\"match\"}";

#[tokio::test]
async fn changed_declared_file_raises_one_checksum_mismatch() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let config = dir.path().join("config.toml");
    let original = b"listen = 8080\n";
    std::fs::write(&config, original).expect("writing the declared file");
    let model = dir.path().join("model.bin");
    std::fs::write(&model, vec![3u8; 3 << 20]).expect("writing the second declared file");

    let process = sleeper("web-1");
    let mut entry = local_process("web", "web-1", process.pid());
    entry.declared_files = vec![
        DeclaredFile {
            path: config.display().to_string(),
            digest: sha256(original),
        },
        DeclaredFile {
            path: model.display().to_string(),
            digest: sha256(&vec![3u8; 3 << 20]),
        },
    ];
    deployer.register(&entry).await;
    wait_watched(&detector, "web-1").await;
    let matched = detector
        .wait_metric(FILE_MATCHES, 2.0, Duration::from_secs(5))
        .await;
    assert!(
        matched >= 2.0,
        "both declared files were hashed and matched"
    );
    assert!(
        deployer
            .next_fault(Duration::from_millis(500))
            .await
            .is_none()
    );

    let changed = b"listen = 6666\n";
    std::fs::write(&config, changed).expect("changing the declared file");
    let written = Instant::now();
    let (fault, received) = deployer
        .next_fault(FILE_DEADLINE)
        .await
        .expect("a fault for the changed file");
    eprintln!(
        "declared file change to fault: {:?}",
        received.duration_since(written)
    );
    assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
    assert_eq!(fault.id, "flt-web-1-g1-checksum_mismatch");
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.sense, "checksum");
    assert_eq!(evidence.details["check"], "declared_file");
    assert_eq!(evidence.details["file"], config.display().to_string());
    assert_eq!(evidence.details["expected"], sha256(original));
    assert_eq!(evidence.details["actual"], sha256(changed));

    std::fs::remove_file(&model).expect("removing the second declared file");
    assert!(
        deployer.next_fault(Duration::from_secs(2)).await.is_none(),
        "one fault per generation"
    );
    drop(process);
}

#[tokio::test]
async fn executable_with_other_digest_raises_checksum_mismatch() {
    let nats = NatsServer::start();
    let _detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let process = sleeper("web-1");
    let executable = std::fs::read_link(format!("/proc/{}/exe", process.pid()))
        .expect("reading the executable link");
    let actual = sha256(&std::fs::read(&executable).expect("reading the executable"));
    let expected = sha256(b"the build that was released");
    let mut entry = local_process("web", "web-1", process.pid());
    entry.artifact_digest = actual.clone();
    entry.expected_artifact_digest = expected.clone();
    deployer.register(&entry).await;

    let (fault, _) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("a fault for the wrong executable");
    assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.details["check"], "artifact");
    assert_eq!(evidence.details["file"], executable.display().to_string());
    assert_eq!(evidence.details["expected"], expected);
    assert_eq!(evidence.details["actual"], actual);
}

#[tokio::test]
async fn undeclared_artifact_digest_is_not_compared() {
    let nats = NatsServer::start();
    let detector = Detector::start_with(&nats, free_port(), &["--rehash-interval", "1s"]).await;
    let mut deployer = Deployer::connect(&nats).await;

    // The deployer recorded the digest of a launcher, not of the program that runs.
    let process = sleeper("web-1");
    let mut entry = local_process("web", "web-1", process.pid());
    entry.artifact_digest = sha256(b"a launcher script that execs the program");
    deployer.register(&entry).await;

    let fault = deployer.next_fault(Duration::from_secs(3)).await;
    assert!(fault.is_none(), "unexpected fault {fault:?}");
    drop(detector);
}

#[tokio::test]
async fn expected_executable_and_script_raise_nothing() {
    let nats = NatsServer::start();
    let detector = Detector::start_with(&nats, free_port(), &["--rehash-interval", "1s"]).await;
    let mut deployer = Deployer::connect(&nats).await;

    let binary = sleeper("web-1");
    let executable = std::fs::read_link(format!("/proc/{}/exe", binary.pid()))
        .expect("reading the executable link");
    let mut entry = local_process("web", "web-1", binary.pid());
    entry.expected_artifact_digest = sha256(&std::fs::read(&executable).expect("reading sleep"));
    deployer.register(&entry).await;

    // A script runs as its interpreter, so /proc/<pid>/exe is the shell, not the artifact.
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let shell_script = b"#!/bin/sh\nwhile true; do sleep 1; done\n";
    let looping = dir.path().join("loop.sh");
    std::fs::write(&looping, shell_script).expect("writing the looping script");
    std::fs::set_permissions(&looping, std::fs::Permissions::from_mode(0o755))
        .expect("making the looping script executable");
    let interpreted = Process::spawn("web-2", &mut Command::new(&looping));
    let mut entry = local_process("web", "web-2", interpreted.pid());
    entry.expected_artifact_digest = sha256(shell_script);
    deployer.register(&entry).await;

    let matched = detector
        .wait_metric(ARTIFACT_MATCHES, 4.0, Duration::from_secs(5))
        .await;
    assert!(
        matched >= 4.0,
        "both artifacts matched twice, got {matched}"
    );
    let fault = deployer.next_fault(Duration::from_millis(500)).await;
    assert!(fault.is_none(), "unexpected fault {fault:?}");
    let metrics = detector.metrics().await;
    let hashed = metric_value(&metrics, "aro_detector_hashed_bytes_total");
    assert!(hashed.is_some_and(|bytes| bytes > 0.0), "{metrics}");
}

fn data_heartbeat(instance: &str, sequence: u64, checksum: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        workload: "web".to_owned(),
        instance: instance.to_owned(),
        sent_at: Some(aro_proto::time::now()),
        sequence,
        data_checksums: HashMap::from([("orders".to_owned(), checksum.to_owned())]),
        rss_bytes: 0,
    }
}

/// Sends a heartbeat from each `(instance, checksum)` every 250 ms for `duration`.
async fn send_data_heartbeats(detector: &Detector, replicas: &[(&str, &str)], duration: Duration) {
    let mut client = detector.client().await;
    let deadline = Instant::now() + duration;
    let mut sequence = 0;
    while Instant::now() < deadline {
        sequence += 1;
        for (instance, checksum) in replicas {
            let known = client
                .heartbeat(data_heartbeat(instance, sequence, checksum))
                .await
                .expect("a valid heartbeat")
                .into_inner()
                .known;
            assert!(known, "{instance} is watched");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Registers serving replicas `web-1` to `web-<count>`. They send heartbeats only while the
/// test does, so their entries declare none and the pauses raise no hang.
async fn register_replicas(deployer: &Deployer, detector: &Detector, count: u32) {
    for n in 1..=count {
        let instance = format!("web-{n}");
        let entry = Instance {
            pushes_heartbeats: false,
            heartbeat_interval: None,
            ..heartbeating("web", &instance, 1, InstanceState::Serving)
        };
        deployer.register(&entry).await;
        wait_watched(detector, &instance).await;
    }
}

#[tokio::test]
async fn replica_with_odd_data_checksum_raises_one_fault() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    register_replicas(&deployer, &detector, 3).await;
    let good = sha256(b"orders v7");
    let bad = sha256(b"orders v7 with a flipped bit");
    let replicas = [
        ("web-1", good.as_str()),
        ("web-2", bad.as_str()),
        ("web-3", good.as_str()),
    ];
    // The default confirmation time is 3 s.
    send_data_heartbeats(&detector, &replicas, Duration::from_secs(4)).await;

    let (fault, _) = deployer
        .next_fault(Duration::from_secs(1))
        .await
        .expect("a fault for the odd replica");
    assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
    assert_eq!(fault.id, "flt-web-2-g1-checksum_mismatch");
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.details["data_set"], "orders");
    assert_eq!(evidence.details["expected"], good);
    assert_eq!(evidence.details["actual"], bad);
    assert_eq!(evidence.details["agreeing_replicas"], "2");
    assert_eq!(fault.healthy_replicas, 2);
    send_data_heartbeats(&detector, &replicas, Duration::from_secs(1)).await;
    assert!(
        deployer
            .next_fault(Duration::from_millis(500))
            .await
            .is_none(),
        "one fault for the odd replica and none for the others"
    );
}

#[tokio::test]
async fn two_replicas_that_disagree_raise_nothing() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    register_replicas(&deployer, &detector, 2).await;
    let replicas = [
        ("web-1", sha256(b"orders v7")),
        ("web-2", sha256(b"orders v8")),
    ];
    let replicas: Vec<(&str, &str)> = replicas
        .iter()
        .map(|(instance, checksum)| (*instance, checksum.as_str()))
        .collect();
    send_data_heartbeats(&detector, &replicas, Duration::from_secs(4)).await;
    let fault = deployer.next_fault(Duration::from_millis(500)).await;
    assert!(fault.is_none(), "no majority, no fault: {fault:?}");
    let metrics = detector.metrics().await;
    let undecided = metric_value(
        &metrics,
        "aro_detector_checksum_checks_total{check=\"data_set\",result=\"undecided\"}",
    );
    assert!(undecided.is_some_and(|count| count > 0.0), "{metrics}");
}

#[tokio::test]
async fn malformed_data_checksum_is_invalid_argument() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut client = detector.client().await;

    let status = client
        .heartbeat(data_heartbeat(
            "web-1",
            1,
            "md5:d41d8cd98f00b204e9800998ecf8427e",
        ))
        .await
        .expect_err("an md5 checksum is rejected");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid data_checksums[\"orders\"] = \"md5:d41d8cd98f00b204e9800998ecf8427e\": \
         expected sha256:<64 hex digits>"
    );

    let mut nameless = data_heartbeat("web-1", 1, &sha256(b"orders"));
    nameless.data_checksums = HashMap::from([(String::new(), sha256(b"orders"))]);
    let status = client
        .heartbeat(nameless)
        .await
        .expect_err("an empty data set name is rejected");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid data_checksums key \"\": the name is empty"
    );

    let huge = "x".repeat(1 << 20);
    let status = client
        .heartbeat(data_heartbeat("web-1", 1, &huge))
        .await
        .expect_err("a megabyte checksum is rejected");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().len() < 300, "{}", status.message().len());

    let metrics = detector.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "aro_detector_invalid_heartbeats_total{field=\"data_checksums\"}"
        ),
        Some(3.0),
        "{metrics}"
    );
}
