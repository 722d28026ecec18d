//! Resident memory near the limit becomes a RESOURCE_EXHAUSTION fault, read from `/proc` or
//! from heartbeats.

use std::process::Command;
use std::time::{Duration, Instant};

use aro_proto::v1::{FaultKind, HeartbeatRequest, Instance, InstanceState};

use crate::harness::{
    Deployer, Detector, Process, heartbeating, local_process, metric_value, wait_watched,
};
use crate::nats_server::NatsServer;

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn allocating_process_raises_one_resource_exhaustion() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    // Allocates and fills 1 MiB more every 20 ms until it has 160 MiB.
    let script = "import time\n\
                  blocks = []\n\
                  for _ in range(160):\n    blocks.append(bytearray(b'x' * (1 << 20)))\n    time.sleep(0.02)\n\
                  time.sleep(300)\n";
    let process = Process::spawn("web-1", Command::new("python3").args(["-c", script]));
    let mut entry = local_process("web", "web-1", process.pid());
    entry.memory_limit_bytes = 128 * MIB;
    let started = Instant::now();
    deployer.register(&entry).await;

    let (fault, received) = deployer
        .next_fault(Duration::from_secs(15))
        .await
        .expect("a fault for the growing process");
    eprintln!(
        "memory exhaustion detected {:?} after the process started",
        received.duration_since(started)
    );
    assert_eq!(fault.kind(), FaultKind::ResourceExhaustion);
    assert_eq!(fault.id, "flt-web-1-g1-resource_exhaustion");
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.sense, "memory");
    assert_eq!(evidence.details["source"], "proc");
    assert_eq!(evidence.details["limit_bytes"], (128 * MIB).to_string());
    let rss: u64 = evidence.details["rss_bytes"]
        .parse()
        .expect("rss_bytes is a number");
    assert!(rss > 10 * MIB, "rss {rss}");
    assert!(
        deployer.next_fault(Duration::from_secs(2)).await.is_none(),
        "one fault per generation"
    );
    let metrics = detector.metrics().await;
    let fraction = metric_value(
        &metrics,
        "aro_detector_memory_fraction{workload=\"web\",instance=\"web-1\"}",
    );
    assert!(fraction.is_some_and(|fraction| fraction > 0.5), "{metrics}");
}

#[tokio::test]
async fn process_without_limit_raises_nothing() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let process = Process::spawn(
        "web-1",
        Command::new("python3").args([
            "-c",
            "import time\nb = b'x' * (64 << 20)\ntime.sleep(300)\n",
        ]),
    );
    deployer
        .register(&local_process("web", "web-1", process.pid()))
        .await;
    wait_watched(&detector, "web-1").await;
    let fault = deployer.next_fault(Duration::from_secs(2)).await;
    assert!(fault.is_none(), "no limit, no fault: {fault:?}");
}

#[tokio::test]
async fn reported_memory_over_limit_raises_one_fault() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let entry = Instance {
        memory_limit_bytes: 100 * MIB,
        ..heartbeating("web", "web-1", 1, InstanceState::Serving)
    };
    deployer.register(&entry).await;
    wait_watched(&detector, "web-1").await;

    let mut client = detector.client().await;
    for (sequence, rss) in [(1, 40), (2, 60), (3, 95), (4, 97)] {
        client
            .heartbeat(HeartbeatRequest {
                workload: "web".to_owned(),
                instance: "web-1".to_owned(),
                sent_at: Some(aro_proto::time::now()),
                sequence,
                rss_bytes: rss * MIB,
                ..HeartbeatRequest::default()
            })
            .await
            .expect("a valid heartbeat");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (fault, _) = deployer
        .next_fault(Duration::from_secs(2))
        .await
        .expect("a fault for reported memory over 90% of the limit");
    assert_eq!(fault.kind(), FaultKind::ResourceExhaustion);
    assert_eq!(fault.evidence[0].details["source"], "heartbeat");
    assert_eq!(
        fault.evidence[0].details["rss_bytes"],
        (95 * MIB).to_string()
    );
    assert!(
        deployer
            .next_fault(Duration::from_millis(300))
            .await
            .is_none(),
        "one fault per generation"
    );
}
