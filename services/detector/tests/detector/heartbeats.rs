//! The Heartbeat RPC: validation, unknown instances, and reconnection of the sample workload.

use std::time::Duration;

use aro_proto::v1::{HeartbeatRequest, InstanceState};

use crate::harness::{
    Deployer, Detector, heartbeating, metric_value, sample_workload, wait_listening, wait_seen,
};
use crate::nats_server::{NatsServer, free_port};

fn heartbeat(workload: &str, instance: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        workload: workload.to_owned(),
        instance: instance.to_owned(),
        sent_at: Some(aro_proto::time::now()),
        sequence: 1,
        ..HeartbeatRequest::default()
    }
}

#[tokio::test]
async fn unknown_instance_is_answered_and_counted() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut client = detector.client().await;

    for _ in 0..3 {
        let response = client
            .heartbeat(heartbeat("web", "web-404"))
            .await
            .expect("a heartbeat for an unknown instance succeeds");
        assert!(!response.into_inner().known);
    }
    let metrics = detector.metrics().await;
    assert_eq!(
        metric_value(&metrics, "aro_detector_unknown_heartbeats_total"),
        Some(3.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn watched_instance_is_answered_known() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let deployer = Deployer::connect(&nats).await;
    deployer
        .register(&heartbeating("web", "web-1", 1, InstanceState::Starting))
        .await;
    let mut client = detector.client().await;
    let mut known = false;
    for _ in 0..100 {
        known = client
            .heartbeat(heartbeat("web", "web-1"))
            .await
            .expect("a heartbeat succeeds")
            .into_inner()
            .known;
        if known {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(known, "the registered instance is known");
    let metrics = detector.metrics().await;
    let counted = metric_value(&metrics, "aro_detector_heartbeats_total{workload=\"web\"}");
    assert!(counted.is_some_and(|count| count >= 1.0), "{metrics}");
}

#[tokio::test]
async fn empty_names_are_invalid_arguments() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut client = detector.client().await;

    let status = client
        .heartbeat(heartbeat("", "web-1"))
        .await
        .expect_err("an empty workload is rejected");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "workload is empty");

    let status = client
        .heartbeat(heartbeat("web", ""))
        .await
        .expect_err("an empty instance is rejected");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "instance is empty");
}

#[tokio::test]
async fn workload_reconnects_after_detector_restart() {
    let nats = NatsServer::start();
    let grpc_port = free_port();
    let detector = Detector::start_on(&nats, grpc_port).await;
    let deployer = Deployer::connect(&nats).await;
    deployer
        .register(&heartbeating("web", "web-1", 1, InstanceState::Serving))
        .await;
    let port = free_port();
    let _workload = sample_workload(port, detector.grpc_addr, "web", "web-1");
    wait_listening(port).await;
    wait_seen(&detector, "web-1").await;

    drop(detector);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Detector::start_on(&nats, grpc_port).await;
    wait_seen(&restarted, "web-1").await;
}
