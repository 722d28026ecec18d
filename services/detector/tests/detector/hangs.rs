//! A frozen sample workload becomes a HANG; an isolated or killed one does not.

use std::time::{Duration, Instant};

use aro_proto::v1::{FaultKind, Instance, InstanceState};
use nix::sys::signal::Signal;

use crate::harness::{
    Deployer, Detector, Process, heartbeating, sample_workload, time_to_detect, wait_listening,
    wait_seen, watched_ids,
};
use crate::nats_server::{NatsServer, free_port};

/// Longest time from the last heartbeat to the HANG fault at a 250 ms heartbeat interval.
const HANG_DEADLINE: Duration = Duration::from_millis(1500);

/// Time the heartbeats flow before a test breaks the workload: past the start-up grace, with
/// enough intervals for the phi estimate.
const WARM_UP: Duration = Duration::from_secs(3);

/// Starts the sample workload as serving instance `web-1` and lets its heartbeats flow for
/// `WARM_UP`.
async fn warmed_up_workload(detector: &Detector, deployer: &Deployer) -> (Process, Instance) {
    let port = free_port();
    let workload = sample_workload(port, detector.grpc_addr, "web", "web-1");
    wait_listening(port).await;
    let entry = heartbeating("web", "web-1", 1, InstanceState::Serving);
    deployer.register(&entry).await;
    wait_seen(detector, "web-1").await;
    tokio::time::sleep(WARM_UP).await;
    (workload, entry)
}

#[tokio::test]
async fn stopped_workload_raises_one_hang_within_1500ms() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let (workload, _) = warmed_up_workload(&detector, &deployer).await;
    assert!(
        deployer.next_fault(Duration::ZERO).await.is_none(),
        "no fault while heartbeats flow"
    );

    workload.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let (fault, received) = deployer
        .next_fault(Duration::from_secs(5))
        .await
        .expect("a hang fault for the stopped workload");
    workload.signal(Signal::SIGCONT);

    let after_last_heartbeat = time_to_detect(&fault);
    let after_stop = received - stopped;
    eprintln!(
        "hang detection at a {:?} heartbeat: {after_last_heartbeat:?} after the last heartbeat, \
         {after_stop:?} after SIGSTOP, suspicion {:.1}",
        crate::harness::HEARTBEAT,
        fault.suspicion
    );
    assert_eq!(fault.kind(), FaultKind::Hang);
    assert_eq!(fault.id, "flt-web-1-g1-hang");
    assert_eq!(fault.incident_id, "inc-web-1-g1");
    assert!(
        after_last_heartbeat <= HANG_DEADLINE,
        "declared {after_last_heartbeat:?} after the last heartbeat"
    );
    assert!(
        after_stop <= HANG_DEADLINE,
        "received {after_stop:?} after SIGSTOP"
    );
    assert!(fault.suspicion >= 8.0, "suspicion {}", fault.suspicion);
    assert_eq!(fault.evidence[0].sense, "heartbeat");
    assert!(fault.evidence[0].details.contains_key("last_seen"));
    assert!(
        deployer.next_fault(Duration::from_secs(1)).await.is_none(),
        "one fault per generation"
    );
}

#[tokio::test]
async fn isolated_workload_raises_nothing() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let (workload, _) = warmed_up_workload(&detector, &deployer).await;

    // The deployer's isolation: the registry entry first, then the freeze.
    let isolated = heartbeating("web", "web-1", 1, InstanceState::Isolated);
    deployer.register(&isolated).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    workload.signal(Signal::SIGSTOP);
    assert!(watched_ids(&detector).await.is_empty());
    let fault = deployer.next_fault(Duration::from_secs(3)).await;
    assert!(fault.is_none(), "fault for an isolated instance: {fault:?}");

    deployer
        .publish_exit(isolated.r#ref.as_ref().expect("reference"), false)
        .await;
    let fault = deployer.next_fault(Duration::from_secs(1)).await;
    assert!(
        fault.is_none(),
        "fault for an isolated instance's exit: {fault:?}"
    );
}

#[tokio::test]
async fn killed_workload_raises_crash_without_hang() {
    let nats = NatsServer::start();
    let detector = Detector::start(&nats).await;
    let mut deployer = Deployer::connect(&nats).await;
    let (mut workload, entry) = warmed_up_workload(&detector, &deployer).await;

    workload.signal(Signal::SIGKILL);
    assert!(
        workload.wait_exit(Duration::from_secs(5)).is_some(),
        "SIGKILL ends the workload"
    );
    deployer
        .publish_exit(entry.r#ref.as_ref().expect("reference"), false)
        .await;
    let (fault, _) = deployer
        .next_fault(Duration::from_secs(2))
        .await
        .expect("a crash fault");
    assert_eq!(fault.kind(), FaultKind::Crash);
    let later = deployer.next_fault(Duration::from_millis(2500)).await;
    assert!(
        later.is_none(),
        "a dead process is not also hung: {later:?}"
    );
}
