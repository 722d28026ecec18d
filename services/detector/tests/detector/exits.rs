//! Runtime exit signals become CRASH and CRASH_LOOP faults, or nothing when expected.

use std::time::Duration;

use aro_proto::v1::{FaultKind, InstanceState};

use crate::harness::{Deployer, Detector, heartbeating, metric_value};
use crate::nats_server::NatsServer;

/// Longest time from publishing an exit signal to receiving its fault.
const CRASH_DEADLINE: Duration = Duration::from_millis(100);

#[tokio::test]
async fn unexpected_exit_raises_one_crash_within_100ms() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;

    let mut latencies = Vec::new();
    for n in 1..=20 {
        let entry = heartbeating("web", &format!("web-{n}"), 1, InstanceState::Serving);
        deployer.register(&entry).await;
    }
    // The registry watch delivers entries asynchronously; wait until all are watched.
    let mut client = detector.client().await;
    for _ in 0..100 {
        let listed = client
            .list_watched(aro_proto::v1::ListWatchedRequest::default())
            .await
            .expect("listing watched instances")
            .into_inner();
        if listed.instances.len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for n in 1..=20 {
        let reference = heartbeating("web", &format!("web-{n}"), 1, InstanceState::Serving)
            .r#ref
            .expect("the entry has a reference");
        let published = deployer.publish_exit(&reference, false).await;
        let (fault, received) = deployer
            .next_fault(Duration::from_secs(2))
            .await
            .expect("a fault for the unexpected exit");
        let latency = received - published;
        assert!(latency <= CRASH_DEADLINE, "fault after {latency:?}");
        assert_eq!(fault.kind(), FaultKind::Crash);
        assert_eq!(fault.id, format!("flt-web-{n}-g1-crash"));
        assert_eq!(fault.incident_id, format!("inc-web-{n}-g1"));
        assert_eq!(fault.recent_exits, 1);
        assert_eq!(fault.desired_replicas, 2);
        assert_eq!(fault.evidence[0].sense, "exit");
        assert_eq!(fault.evidence[0].details["signal_name"], "SIGKILL");
        latencies.push(latency);
    }
    assert!(
        deployer
            .next_fault(Duration::from_millis(500))
            .await
            .is_none(),
        "each exit raises exactly one fault"
    );

    latencies.sort();
    eprintln!(
        "crash detection, signal publish to fault receipt over {} exits: median {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    let metrics = detector.metrics().await;
    let crashes = metric_value(
        &metrics,
        "aro_detector_faults_total{workload=\"web\",kind=\"crash\"}",
    );
    assert_eq!(crashes, Some(20.0), "{metrics}");
    let detect_count = metric_value(
        &metrics,
        "aro_detector_time_to_detect_seconds_count{kind=\"crash\"}",
    );
    assert_eq!(detect_count, Some(20.0), "{metrics}");
}

#[tokio::test]
async fn expected_exit_raises_nothing() {
    let nats = NatsServer::start();
    let _detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let entry = heartbeating("web", "web-1", 1, InstanceState::Serving);
    deployer.register(&entry).await;

    let reference = entry.r#ref.expect("the entry has a reference");
    deployer.publish_exit(&reference, true).await;
    let fault = deployer.next_fault(Duration::from_secs(2)).await;
    assert!(fault.is_none(), "unexpected fault {fault:?}");
}

#[tokio::test]
async fn second_exit_is_crash_loop() {
    let nats = NatsServer::start();
    let _detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    deployer
        .register(&heartbeating("web", "web-1", 1, InstanceState::Serving))
        .await;

    let first = heartbeating("web", "web-1", 1, InstanceState::Serving);
    deployer
        .publish_exit(first.r#ref.as_ref().expect("reference"), false)
        .await;
    let (crash, _) = deployer
        .next_fault(Duration::from_secs(2))
        .await
        .expect("a fault for the first exit");
    assert_eq!(crash.kind(), FaultKind::Crash);

    // The deployer restarts the instance in place: same id, next generation.
    deployer
        .register(&heartbeating("web", "web-1", 2, InstanceState::Starting))
        .await;
    let second = heartbeating("web", "web-1", 2, InstanceState::Serving);
    deployer.register(&second).await;
    let published = deployer
        .publish_exit(second.r#ref.as_ref().expect("reference"), false)
        .await;
    let (looping, received) = deployer
        .next_fault(Duration::from_secs(2))
        .await
        .expect("a fault for the second exit");
    assert!(
        received - published <= CRASH_DEADLINE,
        "fault after {:?}",
        received - published
    );
    assert_eq!(looping.kind(), FaultKind::CrashLoop);
    assert_eq!(looping.id, "flt-web-1-g2-crash_loop");
    assert_eq!(looping.incident_id, crash.incident_id);
    assert_eq!(looping.recent_exits, 2);
    assert!(
        deployer
            .next_fault(Duration::from_millis(500))
            .await
            .is_none()
    );
}
