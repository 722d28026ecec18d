//! Log lines on `aro.logs.<workload>.<instance>` become LOG_ANOMALY faults; bad and excessive
//! input is cut, counted and dropped without stopping the detector.

use std::time::{Duration, Instant};

use aro_proto::v1::{FaultKind, Instance, InstanceState};

use crate::harness::{Deployer, Detector, heartbeating, metric_value, wait_watched};
use crate::nats_server::NatsServer;

/// Returns a serving instance without heartbeats or probes, so that only its log lines can
/// raise a fault.
fn quiet(instance: &str) -> Instance {
    Instance {
        pushes_heartbeats: false,
        heartbeat_interval: None,
        ..heartbeating("web", instance, 1, InstanceState::Serving)
    }
}

async fn serving_quiet_instance(detector: &Detector, deployer: &Deployer) {
    deployer.register(&quiet("web-1")).await;
    wait_watched(detector, "web-1").await;
}

#[tokio::test]
async fn error_storm_raises_one_log_anomaly_with_samples() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    serving_quiet_instance(&detector, &deployer).await;

    for request in 0..200 {
        let line = format!("GET /orders/{request} 200 in 3 ms");
        deployer.publish_log("web", "web-1", line).await;
    }
    deployer.flush().await;
    let read = detector
        .wait_metric(
            "aro_detector_log_lines_read_total",
            200.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(read, 200.0);
    assert!(
        deployer
            .next_fault(Duration::from_millis(300))
            .await
            .is_none()
    );

    let storm_started = Instant::now();
    for attempt in 0..2000 {
        let line = format!("ERROR payment gateway timed out after {attempt} retries");
        deployer.publish_log("web", "web-1", line).await;
    }
    deployer.flush().await;
    let (fault, received) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("a fault for the error storm");
    eprintln!(
        "log storm to fault: {:?}",
        received.duration_since(storm_started)
    );
    assert_eq!(fault.kind(), FaultKind::LogAnomaly);
    assert_eq!(fault.id, "flt-web-1-g1-log_anomaly");
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.sense, "log");
    assert_eq!(evidence.details["reason"], "error_template");
    assert_eq!(
        evidence.details["sample_1"],
        "ERROR payment gateway timed out after 0 retries"
    );
    assert!(
        evidence.details["template_1"].starts_with("ERROR payment gateway timed out"),
        "{}",
        evidence.details["template_1"]
    );
    assert_eq!(evidence.details["suppressed"], "0");
    assert!(
        deployer.next_fault(Duration::from_secs(1)).await.is_none(),
        "one fault per generation"
    );
}

#[tokio::test]
async fn huge_and_invalid_utf8_lines_are_scored() {
    let nats = NatsServer::start_with_max_payload(Some(8 << 20));
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    serving_quiet_instance(&detector, &deployer).await;

    let mut huge = b"GET /export 200 ".to_vec();
    huge.resize(5_000_000, b'a');
    deployer.publish_log("web", "web-1", huge).await;
    deployer
        .publish_log("web", "web-1", &b"GET /caf\xe9 200 \xff\xfe"[..])
        .await;
    deployer
        .publish_log("web", "web-9", "ERROR line of an unknown instance")
        .await;
    deployer.flush().await;
    let read = detector
        .wait_metric(
            "aro_detector_log_lines_read_total",
            3.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(read, 3.0);
    let invalid = detector
        .wait_metric(
            "aro_detector_log_lines_invalid_utf8_total",
            1.0,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(invalid, 1.0);
    let metrics = detector.metrics().await;
    assert_eq!(
        metric_value(&metrics, "aro_detector_log_lines_truncated_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "aro_detector_log_lines_ignored_total{reason=\"unknown\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        deployer
            .next_fault(Duration::from_millis(300))
            .await
            .is_none()
    );

    deployer
        .publish_log("web", "web-1", "panic: index out of range in handler")
        .await;
    let (fault, _) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("the scorer still works");
    assert_eq!(fault.kind(), FaultKind::LogAnomaly);
}

#[tokio::test]
async fn flood_of_lines_is_bounded() {
    const LINES: u64 = 200_000;
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    serving_quiet_instance(&detector, &deployer).await;
    let rss_before = detector.rss_bytes();

    let started = Instant::now();
    for request in 0..LINES {
        let line = format!("GET /orders/{request} 200 in {} ms", request % 97);
        deployer.publish_log("web", "web-1", line).await;
    }
    deployer.flush().await;
    let published = started.elapsed();

    // Wait until the detector stops reading.
    let mut read = 0.0;
    let mut last_change = Instant::now();
    while last_change.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = metric_value(
            &detector.metrics().await,
            "aro_detector_log_lines_read_total",
        )
        .unwrap_or(0.0);
        if now > read {
            read = now;
            last_change = Instant::now();
        }
    }
    let metrics = detector.metrics().await;
    let dropped = metric_value(&metrics, "aro_detector_log_lines_dropped_total").unwrap_or(0.0);
    let client_drops = metric_value(&metrics, "aro_detector_log_client_drops_total").unwrap_or(0.0);
    let rss_after = detector.rss_bytes();
    let read_time = last_change.duration_since(started);
    eprintln!(
        "log flood: {LINES} lines published in {published:?}, {read} read in {read_time:?} \
         ({:.0} lines/s), {dropped} dropped by the queue, {client_drops} client overflow \
         events, detector RSS {} MiB before and {} MiB after",
        read / read_time.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(read > 0.0);
    assert!(read <= LINES as f64);
    assert!(
        rss_after < rss_before + (256 << 20),
        "memory grew from {rss_before} to {rss_after} bytes"
    );

    // The detector still serves and still scores.
    deployer
        .publish_log("web", "web-1", "ERROR flood is over, database lost")
        .await;
    let (fault, _) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("the scorer still works after the flood");
    assert_eq!(fault.kind(), FaultKind::LogAnomaly);
}
