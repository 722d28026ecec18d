//! Probed instances: a frozen HTTP server becomes a HANG, a failing one UNHEALTHY.

use std::time::{Duration, Instant};

use aro_proto::v1::FaultKind;
use nix::sys::signal::Signal;

use crate::harness::{
    Deployer, Detector, http_probed, metric_value, python_http_server, time_to_detect,
    wait_listening, wait_seen,
};
use crate::nats_server::{NatsServer, free_port};

const PROBE_INTERVAL: Duration = Duration::from_millis(200);

#[tokio::test]
async fn stopped_http_server_raises_hang() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let port = free_port();
    let server = python_http_server(port);
    wait_listening(port).await;
    let url = format!("http://127.0.0.1:{port}/");
    deployer
        .register(&http_probed("files", "files-1", url, PROBE_INTERVAL))
        .await;
    wait_seen(&detector, "files-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(deployer.next_fault(Duration::ZERO).await.is_none());

    server.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let (fault, received) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("a hang fault for the stopped server");
    server.signal(Signal::SIGCONT);

    eprintln!(
        "hang detection by HTTP probe every {PROBE_INTERVAL:?}: {:?} after the last passed probe, {:?} after SIGSTOP",
        time_to_detect(&fault),
        received - stopped
    );
    assert_eq!(fault.kind(), FaultKind::Hang);
    assert_eq!(fault.id, "flt-files-1-g1-hang");
    assert_eq!(fault.evidence[0].sense, "probe");
    assert!(
        time_to_detect(&fault) <= Duration::from_secs(2),
        "{:?}",
        time_to_detect(&fault)
    );
    assert!(deployer.next_fault(Duration::from_secs(1)).await.is_none());

    let metrics = detector.metrics().await;
    let passed = metric_value(
        &metrics,
        "aro_detector_probes_total{probe=\"http\",result=\"passed\"}",
    );
    assert!(passed.is_some_and(|count| count >= 10.0), "{metrics}");
    let unanswered = metric_value(
        &metrics,
        "aro_detector_probes_total{probe=\"http\",result=\"unanswered\"}",
    );
    assert!(unanswered.is_some_and(|count| count >= 1.0), "{metrics}");
}

#[tokio::test]
async fn failing_http_check_raises_unhealthy() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let port = free_port();
    let _server = python_http_server(port);
    wait_listening(port).await;
    // The server returns 404 for a file that does not exist.
    let url = format!("http://127.0.0.1:{port}/missing");
    deployer
        .register(&http_probed("files", "files-1", url, PROBE_INTERVAL))
        .await;

    let (fault, _) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("an unhealthy fault");
    assert_eq!(fault.kind(), FaultKind::Unhealthy);
    assert_eq!(fault.id, "flt-files-1-g1-unhealthy");
    assert_eq!(fault.evidence[0].details["consecutive_failures"], "3");
    assert!(
        fault.evidence[0].summary.contains("404"),
        "{}",
        fault.evidence[0].summary
    );
    assert!(deployer.next_fault(Duration::from_secs(1)).await.is_none());
    drop(detector);
}
