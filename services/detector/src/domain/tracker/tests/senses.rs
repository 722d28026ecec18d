//! Tests of the faults that log anomalies, checksums and memory raise.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aro_logmine::{Scorer, ScorerConfig};
use aro_proto::v1::{FaultKind, Instance, InstanceState};

use super::start;
use crate::domain::tracker::*;
use crate::domain::{
    ChecksumMismatch, ChecksumSubject, Digest, HeartbeatReport, MemorySource, Observed,
};

const MIB: u64 = 1 << 20;

/// Returns a registry entry with a memory limit of 100 MiB.
fn entry(instance: &str, generation: u64, state: InstanceState) -> Instance {
    Instance {
        memory_limit_bytes: 100 * MIB,
        ..super::entry(instance, generation, state)
    }
}

fn key(instance: &str) -> InstanceKey {
    InstanceKey::new("web", instance)
}

/// Returns a tracker that watches serving instances `web-1` to `web-<count>`.
fn serving(count: u32) -> (Tracker, Moment) {
    let mut tracker = Tracker::new(DetectorConfig::default());
    let now = start();
    for n in 1..=count {
        let instance = format!("web-{n}");
        tracker
            .put(entry(&instance, 1, InstanceState::Serving), now)
            .expect("valid entry");
    }
    (tracker, now)
}

fn digest(byte: u8) -> Digest {
    Digest::from_sha256(&[byte; 32])
}

fn data(byte: u8) -> HeartbeatReport {
    HeartbeatReport {
        data_checksums: BTreeMap::from([("orders".to_owned(), digest(byte))]),
        rss_bytes: None,
    }
}

/// Sends one heartbeat report from each instance, in order, and returns the faults raised.
fn report_all(tracker: &mut Tracker, reports: &[(&str, u8)], now: Moment) -> Vec<FaultEvent> {
    reports
        .iter()
        .flat_map(|(instance, byte)| {
            tracker
                .heartbeat_report(&key(instance), &data(*byte), now)
                .faults
        })
        .collect()
}

#[test]
fn replica_outvoted_by_two_is_corrupt() {
    let (mut tracker, now) = serving(3);
    let reports = [("web-1", 1), ("web-2", 2), ("web-3", 1)];
    assert!(
        report_all(&mut tracker, &reports, now).is_empty(),
        "not confirmed yet"
    );

    let later = now.after(Duration::from_secs(3));
    let faults = report_all(&mut tracker, &reports, later);
    assert_eq!(faults.len(), 1, "{faults:?}");
    let fault = &faults[0];
    assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
    assert_eq!(fault.id, "flt-web-2-g1-checksum_mismatch");
    assert_eq!(fault.healthy_replicas, 2);
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.sense, "checksum");
    assert_eq!(evidence.details["data_set"], "orders");
    assert_eq!(evidence.details["expected"], digest(1).as_str());
    assert_eq!(evidence.details["actual"], digest(2).as_str());
    assert_eq!(evidence.details["agreeing_replicas"], "2");
    assert_eq!(evidence.details["reporting_replicas"], "3");
    assert_eq!(fault.observed_at, Some(Timestamp::from(now.wall)));

    let again = report_all(&mut tracker, &reports, later.after(Duration::from_secs(5)));
    assert!(again.is_empty(), "one fault per generation: {again:?}");
}

#[test]
fn two_replicas_that_disagree_raise_nothing() {
    let (mut tracker, now) = serving(2);
    let reports = [("web-1", 1), ("web-2", 2)];
    for second in 0..10 {
        let faults = report_all(
            &mut tracker,
            &reports,
            now.after(Duration::from_secs(second)),
        );
        assert!(faults.is_empty(), "no majority: {faults:?}");
    }
}

#[test]
fn brief_disagreement_is_not_corruption() {
    let (mut tracker, now) = serving(3);
    report_all(
        &mut tracker,
        &[("web-1", 2), ("web-2", 1), ("web-3", 1)],
        now,
    );
    let later = now.after(Duration::from_secs(1));
    report_all(
        &mut tracker,
        &[("web-1", 2), ("web-2", 2), ("web-3", 2)],
        later,
    );
    let much_later = now.after(Duration::from_secs(10));
    let faults = report_all(
        &mut tracker,
        &[("web-1", 2), ("web-2", 2), ("web-3", 2)],
        much_later,
    );
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn starting_replicas_do_not_vote() {
    let (mut tracker, now) = serving(2);
    tracker
        .put(entry("web-3", 1, InstanceState::Starting), now)
        .expect("valid entry");
    let reports = [("web-1", 1), ("web-2", 2), ("web-3", 1)];
    report_all(&mut tracker, &reports, now);
    let faults = report_all(&mut tracker, &reports, now.after(Duration::from_secs(5)));
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn data_set_tally_counts_outcomes() {
    let (mut tracker, now) = serving(3);
    report_all(&mut tracker, &[("web-1", 1), ("web-2", 2)], now);
    let verdict = tracker.heartbeat_report(&key("web-3"), &data(1), now);
    assert_eq!(verdict.data_sets.matched, 1);
    let verdict = tracker.heartbeat_report(&key("web-2"), &data(2), now);
    assert_eq!(verdict.data_sets.mismatched, 1);
}

#[test]
fn changed_declared_file_raises_one_fault_while_starting() {
    let mut tracker = Tracker::new(DetectorConfig::default());
    let now = start();
    tracker
        .put(entry("web-1", 1, InstanceState::Starting), now)
        .expect("valid entry");
    let mismatch = ChecksumMismatch {
        subject: ChecksumSubject::DeclaredFile {
            path: "/srv/web/config.toml".to_owned(),
        },
        expected: digest(1),
        actual: Observed::Digest(digest(2)),
    };
    let fault = tracker
        .checksum_mismatch(&key("web-1"), 1, &mismatch, now)
        .expect("a fault");
    assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
    assert_eq!(fault.evidence[0].details["file"], "/srv/web/config.toml");
    assert!(
        tracker
            .checksum_mismatch(&key("web-1"), 1, &mismatch, now)
            .is_none()
    );
}

#[test]
fn mismatch_of_old_generation_is_dropped() {
    let (mut tracker, now) = serving(1);
    tracker
        .put(entry("web-1", 2, InstanceState::Starting), now)
        .expect("valid entry");
    let mismatch = ChecksumMismatch {
        subject: ChecksumSubject::DeclaredFile {
            path: "/srv/web/config.toml".to_owned(),
        },
        expected: digest(1),
        actual: Observed::Missing,
    };
    assert!(
        tracker
            .checksum_mismatch(&key("web-1"), 1, &mismatch, now)
            .is_none()
    );
}

#[test]
fn memory_over_fraction_raises_one_fault() {
    let (mut tracker, now) = serving(2);
    let verdict = tracker.memory_sample(&key("web-1"), 1, 50 * MIB, MemorySource::Process, now);
    assert_eq!(verdict.fraction, Some(0.5));
    assert!(verdict.fault.is_none());

    let later = now.after(Duration::from_secs(1));
    let verdict = tracker.memory_sample(&key("web-1"), 1, 95 * MIB, MemorySource::Process, later);
    let fault = verdict.fault.expect("95% of the limit is exhaustion");
    assert_eq!(fault.kind(), FaultKind::ResourceExhaustion);
    assert_eq!(fault.id, "flt-web-1-g1-resource_exhaustion");
    assert_eq!(fault.evidence[0].sense, "memory");
    assert_eq!(fault.evidence[0].details["source"], "proc");

    let again = tracker.memory_sample(&key("web-1"), 1, 99 * MIB, MemorySource::Process, later);
    assert!(again.fault.is_none());
}

#[test]
fn memory_without_limit_raises_nothing() {
    let mut tracker = Tracker::new(DetectorConfig::default());
    let now = start();
    let unlimited = Instance {
        memory_limit_bytes: 0,
        ..entry("web-1", 1, InstanceState::Serving)
    };
    tracker.put(unlimited, now).expect("valid entry");
    let verdict = tracker.memory_sample(&key("web-1"), 1, u64::MAX, MemorySource::Process, now);
    assert_eq!(verdict, MemoryVerdict::default());
}

#[test]
fn memory_of_starting_instance_raises_nothing() {
    let mut tracker = Tracker::new(DetectorConfig::default());
    let now = start();
    tracker
        .put(entry("web-1", 1, InstanceState::Starting), now)
        .expect("valid entry");
    let verdict = tracker.memory_sample(&key("web-1"), 1, 99 * MIB, MemorySource::Process, now);
    assert_eq!(verdict.fraction, Some(0.99));
    assert!(verdict.fault.is_none());
}

#[test]
fn heartbeat_memory_replaces_proc_samples() {
    let (mut tracker, now) = serving(1);
    let report = HeartbeatReport {
        data_checksums: BTreeMap::new(),
        rss_bytes: Some(10 * MIB),
    };
    let verdict = tracker.heartbeat_report(&key("web-1"), &report, now);
    assert_eq!(verdict.memory_fraction, Some(0.1));
    let ignored = tracker.memory_sample(&key("web-1"), 1, 99 * MIB, MemorySource::Process, now);
    assert_eq!(ignored, MemoryVerdict::default());
}

#[test]
fn memory_trend_from_heartbeats_raises_fault() {
    let (mut tracker, now) = serving(1);
    let mut faults = Vec::new();
    // 4 MiB/s from 20 MiB: once 5 s of samples show the trend, at 40 MiB, the limit of
    // 100 MiB is 15 s away, within the 30 s horizon.
    for second in 0..=10u64 {
        let report = HeartbeatReport {
            data_checksums: BTreeMap::new(),
            rss_bytes: Some((20 + 4 * second) * MIB),
        };
        let at = now.after(Duration::from_secs(second));
        faults.extend(tracker.heartbeat_report(&key("web-1"), &report, at).faults);
    }
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].evidence[0].details["source"], "heartbeat");
    assert!(
        faults[0].evidence[0]
            .details
            .contains_key("reaches_limit_in_s")
    );
}

fn storm_anomaly() -> aro_logmine::Anomaly {
    let mut scorer = Scorer::new(ScorerConfig::default()).expect("default config is valid");
    scorer
        .observe("web-1", "ERROR upstream refused connection", Duration::ZERO)
        .expect("a new error-like template is an anomaly")
}

#[test]
fn log_anomaly_of_serving_instance_raises_one_fault() {
    let (mut tracker, now) = serving(3);
    let anomaly = storm_anomaly();
    let fault = tracker
        .log_anomaly(&key("web-1"), &anomaly, now.wall, now)
        .expect("a fault");
    assert_eq!(fault.kind(), FaultKind::LogAnomaly);
    assert_eq!(fault.id, "flt-web-1-g1-log_anomaly");
    assert_eq!(fault.incident_id, "inc-web-1-g1");
    assert_eq!(fault.evidence[0].sense, "log");
    assert_eq!(fault.healthy_replicas, 2);
    assert!(
        tracker
            .log_anomaly(&key("web-1"), &anomaly, now.wall, now)
            .is_none()
    );
}

#[test]
fn log_anomaly_of_starting_instance_raises_nothing() {
    let mut tracker = Tracker::new(DetectorConfig::default());
    let now = start();
    tracker
        .put(entry("web-1", 1, InstanceState::Starting), now)
        .expect("valid entry");
    assert!(
        tracker
            .log_anomaly(&key("web-1"), &storm_anomaly(), now.wall, now)
            .is_none()
    );
}

#[test]
fn log_sources_name_why_lines_are_ignored() {
    let (mut tracker, now) = serving(2);
    tracker
        .put(entry("web-2", 1, InstanceState::Isolated), now)
        .expect("valid entry");
    assert_eq!(tracker.log_source(&key("web-1")), LogSource::Watched);
    assert_eq!(tracker.log_source(&key("web-2")), LogSource::Isolated);
    assert_eq!(tracker.log_source(&key("web-9")), LogSource::Unknown);
    tracker
        .put(entry("web-1", 1, InstanceState::Stopped), now)
        .expect("valid entry");
    assert_eq!(tracker.log_source(&key("web-1")), LogSource::Stopped);
}

#[test]
fn later_sense_joins_open_incident() {
    let (mut tracker, now) = serving(1);
    let anomaly = storm_anomaly();
    let first = tracker
        .log_anomaly(&key("web-1"), &anomaly, now.wall, now)
        .expect("a fault");
    tracker
        .put(entry("web-1", 2, InstanceState::Serving), now)
        .expect("valid entry");
    let verdict = tracker.memory_sample(&key("web-1"), 2, 99 * MIB, MemorySource::Process, now);
    let second = verdict.fault.expect("a fault of the next generation");
    assert_eq!(second.id, "flt-web-1-g2-resource_exhaustion");
    assert_eq!(second.incident_id, first.incident_id);
}

#[test]
fn report_of_unwatched_instance_is_ignored() {
    let (mut tracker, now) = serving(1);
    let checksums = HashMap::from([("orders".to_owned(), digest(1).to_string())]);
    let report = HeartbeatReport::parse(&checksums, 5).expect("valid report");
    let verdict = tracker.heartbeat_report(&key("web-9"), &report, now);
    assert_eq!(verdict, ReportVerdict::default());
}
