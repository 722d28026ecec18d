//! The whole loop on real processes: faults injected through the Chaos API, detected, decided,
//! executed and verified, checked on the audit trail.

use std::time::Duration;

use aro_e2e::{
    INCIDENT_TIMEOUT, alive, assert_no_duplicates, assert_single_recovery, config,
    inject_and_follow, instance_pids, serial, start,
};
use aro_proto::v1;
use aro_stack::Service;

/// Waits out the detector's start-up grace (1 s from when an instance first serves), during
/// which silence does not count, so hang detection times are those of a steady instance.
async fn settle_start_up_grace() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_is_recovered_once() {
    let _serial = serial().await;
    let mut engine = start(config("kill")).await;
    let (_, timeline) = inject_and_follow(&mut engine, v1::ChaosKind::Kill, "web").await;

    assert_single_recovery(&timeline);
    let fault = timeline.fault.as_ref().expect("a fault was detected");
    assert_eq!(fault.kind(), v1::FaultKind::Crash);
    let detect = timeline.detect_ms().expect("detection time");
    assert!(detect < 100.0, "crash detected after {detect} ms");
    let workloads = engine
        .wait_until_serving(Duration::from_secs(10))
        .await
        .expect("fleet serves again");
    let web = workloads
        .iter()
        .find(|w| w.name == "web")
        .expect("web workload");
    let serving = web
        .instances
        .iter()
        .filter(|i| i.state() == v1::InstanceState::Serving)
        .count();
    assert_eq!(serving, 2);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_of_heartbeat_workload_is_recovered_once() {
    let _serial = serial().await;
    let mut engine = start(config("hang-beat")).await;
    settle_start_up_grace().await;
    let (_, timeline) = inject_and_follow(&mut engine, v1::ChaosKind::Hang, "beat").await;

    assert_single_recovery(&timeline);
    let fault = timeline.fault.as_ref().expect("a fault was detected");
    assert_eq!(fault.kind(), v1::FaultKind::Hang);
    let detect = timeline.detect_ms().expect("detection time");
    assert!(detect < 1500.0, "hang detected after {detect} ms");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_of_probed_workload_is_recovered_once() {
    let _serial = serial().await;
    let mut engine = start(config("hang-web")).await;
    settle_start_up_grace().await;
    let (_, timeline) = inject_and_follow(&mut engine, v1::ChaosKind::Hang, "web").await;

    assert_single_recovery(&timeline);
    assert_eq!(
        timeline.fault.as_ref().expect("fault").kind(),
        v1::FaultKind::Hang
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_climbs_the_ladder_to_recovery() {
    let _serial = serial().await;
    // The rules decide here, so the first action is a restart in place whatever the trained
    // policy prefers, and the crash loop has to climb the ladder.
    let mut crash_loop = config("crash-loop");
    let rules_only = ["--min-confidence", "1.01"].map(str::to_owned).to_vec();
    crash_loop.extra_args.insert(Service::Brain, rules_only);
    let mut engine = start(crash_loop).await;
    let (injection, timeline) =
        inject_and_follow(&mut engine, v1::ChaosKind::CrashLoop, "beat").await;

    assert_no_duplicates(&timeline);
    let last = timeline.outcomes.last().expect("an outcome");
    assert_eq!(
        last.status(),
        v1::OutcomeStatus::Recovered,
        "{:#?}",
        timeline.outcomes
    );
    assert!(
        timeline.commands.len() >= 2,
        "a crash loop needs more than one action: {:#?}",
        timeline.commands
    );
    let first_instance = &injection
        .targets
        .first()
        .and_then(|t| t.instance.as_ref())
        .expect("target")
        .instance;
    let replacement = last.replacement.as_ref().expect("a replacement serves");
    assert_ne!(
        &replacement.instance, first_instance,
        "a fresh instance replaced the crash-looping one"
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_mid_incident_loses_nothing() {
    let _serial = serial().await;
    let mut engine = start(config("nats-restart")).await;
    // A hang takes about a second to detect: NATS restarts while the incident is open.
    let injection = engine
        .inject(v1::ChaosKind::Hang, "beat", "")
        .await
        .expect("inject hang");
    engine
        .stack
        .nats
        .restart()
        .await
        .expect("nats-server restarts");
    engine
        .refollow()
        .await
        .expect("audit trail readable after the restart");
    let timeline = engine
        .follow_until_finished(&injection.id, INCIDENT_TIMEOUT, |_| {})
        .await
        .expect("recovery");
    engine.settle(Duration::from_secs(1)).await;
    let timeline = engine.tracker.timeline(&timeline.chaos);
    assert_single_recovery(&timeline);

    // The loop still works after the restart.
    let injection = engine
        .inject(v1::ChaosKind::Kill, "web", "")
        .await
        .expect("inject kill");
    let timeline = engine
        .follow_until_finished(&injection.id, INCIDENT_TIMEOUT, |_| {})
        .await
        .expect("recovery");
    assert_single_recovery(&timeline);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brain_restart_acts_once_per_fault() {
    let _serial = serial().await;
    let mut engine = start(config("brain-restart")).await;
    engine.stack.kill_service(Service::Brain).await;
    let first = engine
        .inject(v1::ChaosKind::Kill, "web", "")
        .await
        .expect("inject kill");
    let second = engine
        .inject(v1::ChaosKind::Kill, "beat", "")
        .await
        .expect("inject kill");
    // Both faults are published while no brain runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        engine.settle(Duration::from_millis(100)).await;
        let timelines = engine.tracker.timelines();
        if timelines.len() == 2 && timelines.iter().all(|t| t.fault.is_some()) {
            break;
        }
    }
    for timeline in engine.tracker.timelines() {
        assert!(
            timeline.fault.is_some(),
            "{} detected while the brain is down",
            timeline.chaos.id
        );
        assert!(timeline.commands.is_empty(), "no brain, no command");
    }

    engine
        .stack
        .start_service(Service::Brain)
        .await
        .expect("brain restarts");
    for injection in [first, second] {
        let timeline = engine
            .follow_until_finished(&injection.id, INCIDENT_TIMEOUT, |_| {})
            .await
            .expect("recovery");
        engine.settle(Duration::from_secs(1)).await;
        let timeline = engine.tracker.timeline(&timeline.chaos);
        assert_single_recovery(&timeline);
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_no_process_behind() {
    let _serial = serial().await;
    let mut engine = start(config("stop")).await;
    let workloads = engine
        .wait_until_serving(Duration::from_secs(10))
        .await
        .expect("fleet serves");
    let mut pids = instance_pids(&workloads);
    assert_eq!(
        pids.len(),
        4,
        "two replicas of two workloads: {workloads:#?}"
    );
    for service in Service::ALL {
        pids.push(engine.stack.pid(service).expect("service runs"));
    }
    engine.stop().await;
    let survivors: Vec<u32> = pids.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(
        survivors.is_empty(),
        "still running after stop: {survivors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_storm_yields_one_log_anomaly() {
    let _serial = serial().await;
    let mut engine = start(config("log-storm")).await;
    let (injection, timeline) =
        inject_and_follow(&mut engine, v1::ChaosKind::LogStorm, "beat").await;

    let target = &injection
        .targets
        .first()
        .and_then(|t| t.instance.as_ref())
        .expect("a target")
        .instance;
    let anomalies: Vec<&v1::FaultEvent> = timeline
        .faults
        .iter()
        .filter(|fault| fault.kind() == v1::FaultKind::LogAnomaly)
        .collect();
    assert_eq!(anomalies.len(), 1, "{:#?}", timeline.faults);
    let anomaly = anomalies[0];
    assert_eq!(&anomaly.target.as_ref().expect("a target").instance, target);
    let evidence = anomaly
        .evidence
        .iter()
        .find(|e| e.sense == "log")
        .expect("log evidence");
    assert!(!evidence.summary.is_empty());
    assert_no_duplicates(&timeline);
    engine.stop().await;
}
