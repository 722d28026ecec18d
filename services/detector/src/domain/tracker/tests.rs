use std::time::{Duration, Instant, SystemTime};

use aro_proto::v1::{Exited, FaultKind, HealthCheck, Signal, Started, health_check, signal};

use super::*;
use crate::domain::ProbeOutcome;

const BEAT: Duration = Duration::from_millis(250);
const TICK: Duration = Duration::from_millis(25);

fn start() -> Moment {
    Moment {
        monotonic: Instant::now(),
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    }
}

fn entry(instance: &str, generation: u64, state: InstanceState) -> Instance {
    Instance {
        r#ref: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: instance.to_owned(),
            generation,
            node: "local".to_owned(),
        }),
        state: state.into(),
        pushes_heartbeats: true,
        heartbeat_interval: Some(aro_proto::time::duration(BEAT)),
        replicas: 3,
        ..Instance::default()
    }
}

fn probed(instance: &str, generation: u64, state: InstanceState) -> Instance {
    Instance {
        pushes_heartbeats: false,
        heartbeat_interval: None,
        health_check: Some(HealthCheck {
            check: Some(health_check::Check::HttpUrl(
                "http://127.0.0.1:8080/healthz".to_owned(),
            )),
            interval: Some(aro_proto::time::duration(Duration::from_millis(200))),
            timeout: Some(aro_proto::time::duration(Duration::from_millis(200))),
        }),
        ..entry(instance, generation, state)
    }
}

fn exit_signal(instance: &str, generation: u64, expected: bool, at: SystemTime) -> Signal {
    Signal {
        id: format!("sig-{instance}-g{generation}-exited"),
        instance: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: instance.to_owned(),
            generation,
            node: "local".to_owned(),
        }),
        at: Some(Timestamp::from(at)),
        kind: Some(signal::Kind::Exited(Exited {
            signal: Some(9),
            expected,
            ..Exited::default()
        })),
    }
}

fn tracker() -> Tracker {
    Tracker::new(DetectorConfig::default())
}

/// Sends heartbeats every `BEAT` for `count` beats, ticking in between, and returns the
/// moment of the last heartbeat. Panics when a tick raises a fault.
fn beat(tracker: &mut Tracker, instance: &str, from: Moment, count: u32) -> Moment {
    let mut last = from;
    for n in 0..count {
        last = from.after(BEAT * n);
        assert!(tracker.heartbeat("web", instance, u64::from(n) + 1, last));
        let faults = tracker.tick(last);
        assert!(faults.is_empty(), "unexpected faults {faults:?}");
    }
    last
}

/// Ticks every `TICK` from `from` for at most `limit` and returns the first faults raised
/// with the moment they were raised.
fn tick_until_fault(
    tracker: &mut Tracker,
    from: Moment,
    limit: Duration,
) -> Option<(Moment, Vec<FaultEvent>)> {
    let mut now = from;
    while now.monotonic <= from.monotonic + limit {
        let faults = tracker.tick(now);
        if !faults.is_empty() {
            return Some((now, faults));
        }
        now = now.after(TICK);
    }
    None
}

/// Returns a tracker that tracks `instance` since the returned moment.
fn tracking(instance: Instance) -> (Tracker, Moment) {
    let mut tracker = tracker();
    let now = start();
    put(&mut tracker, instance, now);
    (tracker, now)
}

fn answered(error: &str) -> ProbeOutcome {
    ProbeOutcome::Failed {
        answered: true,
        error: error.to_owned(),
    }
}

fn unanswered(error: &str) -> ProbeOutcome {
    ProbeOutcome::Failed {
        answered: false,
        error: error.to_owned(),
    }
}

fn put(tracker: &mut Tracker, instance: Instance, now: Moment) {
    tracker.put(instance, now).expect("valid entry");
}

/// Reports an exit of `instance` observed at `at` and returns the verdict.
fn exit(
    tracker: &mut Tracker,
    instance: &str,
    generation: u64,
    expected: bool,
    at: Moment,
) -> SignalVerdict {
    let signal = exit_signal(instance, generation, expected, at.wall);
    tracker.signal(&signal, at).expect("valid signal")
}

/// Reports an unexpected exit observed at `at` and returns the fault it raised.
fn crash(tracker: &mut Tracker, instance: &str, generation: u64, at: Moment) -> FaultEvent {
    fault_of(exit(tracker, instance, generation, false, at))
}

fn fault_of(verdict: SignalVerdict) -> FaultEvent {
    match verdict {
        SignalVerdict::Fault(fault) => fault,
        SignalVerdict::Ignored(reason) => panic!("expected a fault, signal ignored: {reason}"),
    }
}

#[test]
fn serving_entry_is_watched_with_its_probe() {
    let mut tracker = tracker();
    put(
        &mut tracker,
        probed("web-1", 1, InstanceState::Serving),
        start(),
    );
    let events = tracker.take_events();
    assert_eq!(events.len(), 1);
    let WatchEvent::Watched {
        key,
        generation,
        probe,
    } = &events[0]
    else {
        panic!("expected a watch, got {events:?}");
    };
    assert_eq!(key, &InstanceKey::new("web", "web-1"));
    assert_eq!(*generation, 1);
    assert_eq!(probe.as_ref().map(ProbeSpec::kind), Some("http"));
}

#[test]
fn isolated_entry_is_unwatched_at_once() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    tracker.take_events();
    put(
        &mut tracker,
        entry("web-1", 1, InstanceState::Isolated),
        now,
    );
    assert_eq!(
        tracker.take_events(),
        vec![WatchEvent::Unwatched {
            key: InstanceKey::new("web", "web-1")
        }]
    );
    assert!(!tracker.heartbeat("web", "web-1", 1, now));
    assert_eq!(tracker.suspicions().count(), 0);
}

#[test]
fn deleted_entry_is_forgotten() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    tracker.take_events();
    tracker.remove("web", "web-1");
    assert_eq!(tracker.take_events().len(), 1);
    assert!(!tracker.heartbeat("web", "web-1", 1, now));
    assert!(tracker.watched("").is_empty());
}

#[test]
fn new_generation_starts_clean() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let last = beat(&mut tracker, "web-1", now, 8);
    tracker.take_events();
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Starting),
        last,
    );
    let events = tracker.take_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], WatchEvent::Unwatched { .. }));
    assert!(matches!(
        events[1],
        WatchEvent::Watched { generation: 2, .. }
    ));
    let watched = tracker.watched("web");
    assert_eq!(watched.len(), 1);
    assert_eq!(watched[0].last_seen, None);
}

#[test]
fn older_generation_entry_is_ignored() {
    let (mut tracker, now) = tracking(entry("web-1", 2, InstanceState::Serving));
    tracker.take_events();
    put(&mut tracker, entry("web-1", 1, InstanceState::Stopped), now);
    assert!(tracker.take_events().is_empty());
    assert!(tracker.heartbeat("web", "web-1", 1, now));
}

#[test]
fn entry_without_reference_is_rejected() {
    let mut tracker = tracker();
    let error = tracker
        .put(Instance::default(), start())
        .expect_err("no reference");
    assert_eq!(
        error,
        TrackerError::MissingReference {
            what: "registry entry"
        }
    );
}

#[test]
fn entry_with_invalid_name_is_rejected() {
    let mut tracker = tracker();
    let mut bad = entry("web-1", 1, InstanceState::Serving);
    if let Some(reference) = bad.r#ref.as_mut() {
        reference.workload = "Web.A".to_owned();
    }
    let error = tracker.put(bad, start()).expect_err("invalid workload");
    assert!(error.to_string().contains("workload"), "{error}");
    assert!(error.to_string().contains("Web.A"), "{error}");
}

#[test]
fn reconcile_forgets_unlisted_instances() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    put(&mut tracker, entry("web-2", 1, InstanceState::Serving), now);
    let errors = tracker.reconcile(vec![entry("web-2", 1, InstanceState::Serving)], now);
    assert!(errors.is_empty());
    assert!(!tracker.heartbeat("web", "web-1", 1, now));
    assert!(tracker.heartbeat("web", "web-2", 1, now));
}

#[test]
fn heartbeat_for_unknown_instance_is_unknown() {
    let mut tracker = tracker();
    assert!(!tracker.heartbeat("web", "web-9", 1, start()));
}

#[test]
fn unexpected_exit_raises_crash() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    put(&mut tracker, entry("web-2", 1, InstanceState::Serving), now);
    tracker.tick(now);
    let exited_at = now.wall - Duration::from_millis(2);
    let fault = fault_of(
        tracker
            .signal(&exit_signal("web-1", 1, false, exited_at), now)
            .expect("valid signal"),
    );
    assert_eq!(fault.id, "flt-web-1-g1-crash");
    assert_eq!(fault.incident_id, "inc-web-1-g1");
    assert_eq!(fault.kind(), FaultKind::Crash);
    assert_eq!(fault.observed_at, Some(Timestamp::from(exited_at)));
    assert_eq!(fault.detected_at, Some(Timestamp::from(now.wall)));
    assert_eq!(fault.recent_exits, 1);
    assert_eq!(fault.healthy_replicas, 1);
    assert_eq!(fault.desired_replicas, 3);
    assert_eq!(fault.evidence[0].sense, "exit");
    assert_eq!(fault.evidence[0].details["signal_name"], "SIGKILL");
    assert_eq!(
        fault.target.as_ref().map(|t| t.node.as_str()),
        Some("local")
    );
}

#[test]
fn exit_of_unknown_instance_raises_crash() {
    let mut tracker = tracker();
    let now = start();
    let fault = crash(&mut tracker, "web-7", 1, now);
    assert_eq!(fault.id, "flt-web-7-g1-crash");
    assert_eq!(fault.desired_replicas, 0);
}

#[test]
fn expected_exit_raises_nothing() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let verdict = exit(&mut tracker, "web-1", 1, true, now);
    assert_eq!(verdict, SignalVerdict::Ignored(Ignored::Expected));
}

#[test]
fn start_signal_raises_nothing() {
    let mut tracker = tracker();
    let now = start();
    let mut signal = exit_signal("web-1", 1, false, now.wall);
    signal.kind = Some(signal::Kind::Started(Started { pid: 42 }));
    let verdict = tracker.signal(&signal, now).expect("valid signal");
    assert_eq!(verdict, SignalVerdict::Ignored(Ignored::Started));
}

#[test]
fn signal_without_kind_is_rejected() {
    let mut tracker = tracker();
    let now = start();
    let mut signal = exit_signal("web-1", 1, false, now.wall);
    signal.kind = None;
    let error = tracker.signal(&signal, now).expect_err("no kind");
    assert!(error.to_string().contains("sig-web-1-g1-exited"), "{error}");
}

#[test]
fn second_exit_is_crash_loop() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let first = crash(&mut tracker, "web-1", 1, now);
    let later = now.after(Duration::from_secs(5));
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Starting),
        later,
    );
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Serving),
        later,
    );
    let again = later.after(Duration::from_secs(2));
    let second = crash(&mut tracker, "web-1", 2, again);
    assert_eq!(second.kind(), FaultKind::CrashLoop);
    assert_eq!(second.id, "flt-web-1-g2-crash_loop");
    assert_eq!(second.incident_id, first.incident_id);
    assert_eq!(second.recent_exits, 2);
}

#[test]
fn exit_after_window_is_crash() {
    let mut tracker = tracker();
    let now = start();
    crash(&mut tracker, "web-1", 1, now);
    let later = now.after(Duration::from_secs(61));
    let second = crash(&mut tracker, "web-1", 2, later);
    assert_eq!(second.kind(), FaultKind::Crash);
    assert_eq!(second.recent_exits, 1);
}

#[test]
fn redelivered_exit_yields_same_fault() {
    let mut tracker = tracker();
    let now = start();
    let signal = exit_signal("web-1", 1, false, now.wall);
    let first = fault_of(tracker.signal(&signal, now).expect("valid signal"));
    let again = fault_of(
        tracker
            .signal(&signal, now.after(Duration::from_secs(1)))
            .expect("valid signal"),
    );
    assert_eq!(again, first);
}

#[test]
fn isolated_instance_exit_raises_nothing() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Isolated));
    let verdict = exit(&mut tracker, "web-1", 1, false, now);
    assert_eq!(verdict, SignalVerdict::Ignored(Ignored::Isolated));
}

#[test]
fn superseded_generation_exit_raises_nothing() {
    let (mut tracker, now) = tracking(entry("web-1", 3, InstanceState::Starting));
    let verdict = exit(&mut tracker, "web-1", 2, false, now);
    assert_eq!(
        verdict,
        SignalVerdict::Ignored(Ignored::Superseded { current: 3 })
    );
}

#[test]
fn silence_raises_one_hang_within_bounds() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let last = beat(&mut tracker, "web-1", now, 40);
    let (at, faults) =
        tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    let silence = at.monotonic - last.monotonic;
    assert!(
        silence >= Duration::from_millis(600),
        "declared after {silence:?}"
    );
    assert!(
        silence <= Duration::from_millis(1500),
        "declared after {silence:?}"
    );
    assert_eq!(faults.len(), 1);
    let fault = &faults[0];
    assert_eq!(fault.kind(), FaultKind::Hang);
    assert_eq!(fault.id, "flt-web-1-g1-hang");
    assert_eq!(fault.observed_at, Some(Timestamp::from(last.wall)));
    assert!(fault.suspicion >= 8.0, "suspicion {}", fault.suspicion);
    assert_eq!(fault.evidence[0].sense, "heartbeat");
    assert_eq!(
        tick_until_fault(&mut tracker, at.after(TICK), Duration::from_secs(10)),
        None
    );
}

#[test]
fn starting_instance_is_never_hung() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Starting));
    let last = beat(&mut tracker, "web-1", now, 10);
    assert_eq!(
        tick_until_fault(&mut tracker, last, Duration::from_secs(10)),
        None
    );
}

#[test]
fn hang_waits_for_startup_grace() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let (at, faults) =
        tick_until_fault(&mut tracker, now, Duration::from_secs(5)).expect("a hang is declared");
    let grace = tracker.config().startup_grace;
    assert!(at.monotonic - now.monotonic > grace + Duration::from_millis(600));
    assert_eq!(faults[0].observed_at, Some(Timestamp::from(now.wall)));
}

#[test]
fn exited_generation_is_not_declared_hung() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let last = beat(&mut tracker, "web-1", now, 10);
    exit(&mut tracker, "web-1", 1, true, last);
    assert_eq!(
        tick_until_fault(&mut tracker, last, Duration::from_secs(10)),
        None
    );
    put(
        &mut tracker,
        entry("web-1", 1, InstanceState::Serving),
        last,
    );
    assert!(!tracker.heartbeat("web", "web-1", 99, last));
}

#[test]
fn exit_after_hang_joins_its_incident() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let last = beat(&mut tracker, "web-1", now, 10);
    let (at, _) =
        tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    let verdict = exit(&mut tracker, "web-1", 1, false, at);
    let SignalVerdict::Fault(fault) = verdict else {
        panic!("an unexpected exit after a hang is a crash: {verdict:?}");
    };
    assert_eq!(fault.id, "flt-web-1-g1-crash");
    assert_eq!(fault.incident_id, "inc-web-1-g1");
}

#[test]
fn unmonitored_instance_never_hangs() {
    let (mut tracker, now) = tracking(Instance {
        pushes_heartbeats: false,
        ..entry("web-1", 1, InstanceState::Serving)
    });
    assert_eq!(
        tick_until_fault(&mut tracker, now, Duration::from_secs(10)),
        None
    );
}

#[test]
fn answered_probe_failures_raise_unhealthy() {
    let (mut tracker, now) = tracking(probed("web-1", 1, InstanceState::Serving));
    let key = InstanceKey::new("web", "web-1");
    let refused = answered("HTTP 503");
    assert_eq!(
        tracker.probe_result(&key, 1, &ProbeOutcome::Passed, now),
        None
    );
    assert_eq!(
        tracker.probe_result(&key, 1, &refused, now.after(TICK)),
        None
    );
    assert_eq!(
        tracker.probe_result(&key, 1, &refused, now.after(TICK * 2)),
        None
    );
    let fault = tracker
        .probe_result(&key, 1, &refused, now.after(TICK * 3))
        .expect("the third failure raises a fault");
    assert_eq!(fault.kind(), FaultKind::Unhealthy);
    assert_eq!(fault.id, "flt-web-1-g1-unhealthy");
    assert_eq!(
        fault.observed_at,
        Some(Timestamp::from(now.after(TICK).wall))
    );
    assert_eq!(fault.evidence[0].sense, "probe");
    assert_eq!(fault.evidence[0].details["consecutive_failures"], "3");
    assert!(
        fault.evidence[0].summary.contains("HTTP 503"),
        "{}",
        fault.evidence[0].summary
    );
    assert_eq!(
        tracker.probe_result(&key, 1, &refused, now.after(TICK * 4)),
        None
    );
}

#[test]
fn probe_timeouts_raise_no_unhealthy() {
    let (mut tracker, now) = tracking(probed("web-1", 1, InstanceState::Serving));
    let key = InstanceKey::new("web", "web-1");
    let timeout = unanswered("timed out after 200ms");
    for step in 0..10 {
        assert_eq!(
            tracker.probe_result(&key, 1, &timeout, now.after(TICK * step)),
            None
        );
    }
}

#[test]
fn probe_result_of_old_generation_is_dropped() {
    let (mut tracker, now) = tracking(probed("web-1", 2, InstanceState::Serving));
    let key = InstanceKey::new("web", "web-1");
    tracker.probe_result(&key, 1, &ProbeOutcome::Passed, now);
    assert_eq!(tracker.watched("web")[0].last_seen, None);
}

#[test]
fn silent_probed_instance_raises_hang_with_probe_evidence() {
    let (mut tracker, now) = tracking(probed("web-1", 1, InstanceState::Serving));
    let key = InstanceKey::new("web", "web-1");
    let mut last = now;
    for step in 0..20 {
        last = now.after(Duration::from_millis(200) * step);
        tracker.probe_result(&key, 1, &ProbeOutcome::Passed, last);
        assert!(tracker.tick(last).is_empty());
    }
    let timeout = unanswered("timed out after 200ms");
    tracker.probe_result(&key, 1, &timeout, last.after(Duration::from_millis(400)));
    let (_, faults) =
        tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    assert_eq!(faults[0].kind(), FaultKind::Hang);
    assert_eq!(faults[0].evidence[0].sense, "probe");
    assert_eq!(
        faults[0].evidence[0].details["last_probe_error"],
        "timed out after 200ms"
    );
}

#[test]
fn incident_stays_open_across_restart() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let crash_fault = crash(&mut tracker, "web-1", 1, now);
    let restarted = now.after(Duration::from_secs(1));
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Serving),
        restarted,
    );
    let last = beat(&mut tracker, "web-1", restarted, 20);
    let (_, faults) =
        tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    assert_eq!(faults[0].incident_id, crash_fault.incident_id);
    assert_eq!(faults[0].id, "flt-web-1-g2-hang");
}

#[test]
fn incident_closes_after_healthy_serving() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    crash(&mut tracker, "web-1", 1, now);
    let restarted = now.after(Duration::from_secs(1));
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Serving),
        restarted,
    );
    let last = beat(&mut tracker, "web-1", restarted, 48);
    assert_eq!(tracker.watched("web")[0].open_incident_id, "");
    let (_, faults) =
        tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    assert_eq!(faults[0].incident_id, "inc-web-1-g2");
}

#[test]
fn incident_open_until_healthy_long_enough() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    crash(&mut tracker, "web-1", 1, now);
    let restarted = now.after(Duration::from_secs(1));
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Serving),
        restarted,
    );
    beat(&mut tracker, "web-1", restarted, 36);
    assert_eq!(tracker.watched("web")[0].open_incident_id, "inc-web-1-g1");
}

#[test]
fn isolation_closes_incident() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let last = beat(&mut tracker, "web-1", now, 10);
    tick_until_fault(&mut tracker, last, Duration::from_secs(3)).expect("a hang is declared");
    assert_eq!(tracker.watched("web")[0].open_incident_id, "inc-web-1-g1");
    put(
        &mut tracker,
        entry("web-1", 1, InstanceState::Isolated),
        last,
    );
    put(
        &mut tracker,
        entry("web-1", 2, InstanceState::Serving),
        last,
    );
    assert_eq!(tracker.watched("web")[0].open_incident_id, "");
}

#[test]
fn healthy_replicas_exclude_suspected_and_stopped() {
    let mut tracker = tracker();
    let now = start();
    for instance in ["web-1", "web-2", "web-3"] {
        put(
            &mut tracker,
            entry(instance, 1, InstanceState::Serving),
            now,
        );
    }
    put(&mut tracker, entry("web-4", 1, InstanceState::Stopped), now);
    let mut last = now;
    for n in 0..20 {
        last = now.after(BEAT * n);
        tracker.heartbeat("web", "web-1", u64::from(n) + 1, last);
        tracker.heartbeat("web", "web-2", u64::from(n) + 1, last);
        if n < 10 {
            tracker.heartbeat("web", "web-3", u64::from(n) + 1, last);
        }
        let faults = tracker.tick(last);
        if let Some(hang) = faults.first() {
            assert_eq!(
                hang.target.as_ref().map(|t| t.instance.as_str()),
                Some("web-3")
            );
        }
    }
    let fault = crash(&mut tracker, "web-1", 1, last);
    assert_eq!(fault.healthy_replicas, 1);
}

#[test]
fn watched_lists_by_workload() {
    let (mut tracker, now) = tracking(entry("web-1", 1, InstanceState::Serving));
    let mut other = entry("api-1", 1, InstanceState::Serving);
    if let Some(reference) = other.r#ref.as_mut() {
        reference.workload = "api".to_owned();
    }
    put(&mut tracker, other, now);
    put(&mut tracker, entry("web-2", 1, InstanceState::Stopped), now);
    assert_eq!(tracker.watched("").len(), 2);
    assert_eq!(tracker.watched("web").len(), 1);
    assert_eq!(tracker.watched_count(), 2);
}

mod senses;
