//! The tracker behind a lock, with the effects of its watch changes: probe and integrity tasks
//! started and cancelled, suspicion and memory gauges set and removed, and raised faults
//! handed to the publisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use aro_bus::RegistryChange;
use aro_logmine::Anomaly;
use aro_proto::v1::{FaultEvent, Instance, Signal, WatchedInstance};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::domain::{
    ChecksumMismatch, HeartbeatReport, InstanceKey, LogSource, MemorySource, Moment, ProbeOutcome,
    ReportVerdict, SignalVerdict, Tracker, TrackerError, WatchEvent,
};
use crate::integrity::Integrity;
use crate::metrics::{ChecksumLabels, InstanceLabels, Metrics, ProbeLabels, WorkloadLabels};

/// Returns the current moment. The monotonic part comes from Tokio's clock, so tests with
/// paused time control it.
pub(crate) fn now() -> Moment {
    Moment {
        monotonic: tokio::time::Instant::now().into_std(),
        wall: SystemTime::now(),
    }
}

/// Shared access to the tracker for the adapters.
#[derive(Debug)]
pub(crate) struct Watcher {
    tracker: Mutex<Tracker>,
    /// Cancels the probe and integrity tasks of each watched generation.
    watch_tasks: Mutex<HashMap<InstanceKey, CancellationToken>>,
    task_tracker: TaskTracker,
    integrity: Option<Integrity>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    faults: mpsc::UnboundedSender<FaultEvent>,
}

impl Watcher {
    /// Creates a watcher that sends the faults it raises to `faults`, and stops its probes
    /// when `shutdown` is cancelled. With `integrity`, every watched generation on this node
    /// also gets its artifact, declared files and memory checked.
    pub(crate) fn new(
        tracker: Tracker,
        metrics: Arc<Metrics>,
        faults: mpsc::UnboundedSender<FaultEvent>,
        integrity: Option<Integrity>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            tracker: Mutex::new(tracker),
            watch_tasks: Mutex::new(HashMap::new()),
            task_tracker: TaskTracker::new(),
            integrity,
            shutdown,
            metrics,
            faults,
        })
    }

    fn tracker(&self) -> MutexGuard<'_, Tracker> {
        self.tracker
            .lock()
            .expect("no thread panics while holding the tracker lock")
    }

    /// Runs `operation` on the tracker, then applies the watch changes it made.
    fn update<R>(self: &Arc<Self>, operation: impl FnOnce(&mut Tracker) -> R) -> R {
        let (result, events, watched) = {
            let mut tracker = self.tracker();
            let result = operation(&mut tracker);
            (result, tracker.take_events(), tracker.watched_count())
        };
        for event in events {
            match event {
                WatchEvent::Watched {
                    key,
                    generation,
                    probe,
                } => {
                    self.stop_tasks(&key);
                    let cancel = self.shutdown.child_token();
                    self.tasks().insert(key.clone(), cancel.clone());
                    if let Some(spec) = probe {
                        let span =
                            info_span!("probe", instance = %key, generation, probe = spec.kind());
                        self.task_tracker.spawn(
                            crate::probe::run(
                                Arc::clone(self),
                                key.clone(),
                                generation,
                                spec,
                                cancel.clone(),
                            )
                            .instrument(span),
                        );
                    }
                    if let Some(integrity) = &self.integrity {
                        let span = info_span!("integrity", instance = %key, generation);
                        self.task_tracker.spawn(
                            integrity
                                .clone()
                                .run(Arc::clone(self), key, generation, cancel)
                                .instrument(span),
                        );
                    }
                }
                WatchEvent::Unwatched { key } => {
                    self.stop_tasks(&key);
                    let labels = InstanceLabels::from(&key);
                    self.metrics.suspicion.remove(&labels);
                    self.metrics.memory_fraction.remove(&labels);
                }
            }
        }
        self.metrics
            .watched
            .set(i64::try_from(watched).unwrap_or(i64::MAX));
        result
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<InstanceKey, CancellationToken>> {
        self.watch_tasks
            .lock()
            .expect("no thread panics while holding the watch task lock")
    }

    fn stop_tasks(&self, key: &InstanceKey) {
        if let Some(cancel) = self.tasks().remove(key) {
            cancel.cancel();
        }
    }

    /// Applies one registry change.
    pub(crate) fn apply_registry(self: &Arc<Self>, change: RegistryChange) {
        let now = now();
        let result = self.update(|tracker| match change {
            RegistryChange::Put(instance) => tracker.put(instance, now),
            RegistryChange::Delete { workload, instance } => {
                tracker.remove(&workload, &instance);
                Ok(())
            }
        });
        if let Err(error) = result {
            warn!(%error, "registry entry skipped");
        }
    }

    /// Applies a full registry listing.
    pub(crate) fn reconcile(self: &Arc<Self>, snapshot: Vec<Instance>) {
        let now = now();
        for error in self.update(|tracker| tracker.reconcile(snapshot, now)) {
            warn!(%error, "registry entry skipped");
        }
    }

    /// Records a heartbeat with its report and returns whether the instance is watched.
    pub(crate) fn heartbeat(
        &self,
        workload: &str,
        instance: &str,
        sequence: u64,
        report: &HeartbeatReport,
    ) -> bool {
        let now = now();
        let (known, verdict) = {
            let mut tracker = self.tracker();
            let known = tracker.heartbeat(workload, instance, sequence, now);
            let verdict = if known && !report.is_empty() {
                let key = InstanceKey::new(workload, instance);
                Some((key.clone(), tracker.heartbeat_report(&key, report, now)))
            } else {
                None
            };
            (known, verdict)
        };
        if let Some((key, verdict)) = verdict {
            self.apply_report(&key, verdict);
        }
        if known {
            self.metrics
                .heartbeats
                .get_or_create(&WorkloadLabels {
                    workload: workload.to_owned(),
                })
                .inc();
        } else {
            self.metrics.unknown_heartbeats.inc();
        }
        known
    }

    /// Classifies a runtime signal.
    pub(crate) fn signal(self: &Arc<Self>, signal: &Signal) -> Result<SignalVerdict, TrackerError> {
        let now = now();
        self.update(|tracker| tracker.signal(signal, now))
    }

    /// Records a probe result and hands a resulting fault to the publisher.
    pub(crate) fn probe_result(
        &self,
        key: &InstanceKey,
        generation: u64,
        probe: &'static str,
        outcome: ProbeOutcome,
    ) {
        let result = match &outcome {
            ProbeOutcome::Passed => "passed",
            ProbeOutcome::Failed { answered: true, .. } => "failed",
            ProbeOutcome::Failed {
                answered: false, ..
            } => "unanswered",
        };
        self.metrics
            .probes
            .get_or_create(&ProbeLabels { probe, result })
            .inc();
        if let ProbeOutcome::Failed { error, .. } = &outcome {
            debug!(instance = %key, generation, %error, "probe failed");
        }
        let fault = self
            .tracker()
            .probe_result(key, generation, &outcome, now());
        if let Some(fault) = fault {
            self.submit(fault);
        }
    }

    /// Evaluates every watched instance, exports the suspicion levels and hands raised faults
    /// to the publisher.
    pub(crate) fn tick(&self) {
        let (faults, suspicions) = {
            let mut tracker = self.tracker();
            let faults = tracker.tick(now());
            let suspicions: Vec<(InstanceLabels, f64)> = tracker
                .suspicions()
                .map(|(key, phi)| (InstanceLabels::from(key), phi))
                .collect();
            (faults, suspicions)
        };
        for (labels, phi) in suspicions {
            self.metrics.suspicion.get_or_create(&labels).set(phi);
        }
        for fault in faults {
            self.submit(fault);
        }
    }

    /// Exports what a heartbeat's report led to and hands its faults to the publisher.
    fn apply_report(&self, key: &InstanceKey, verdict: ReportVerdict) {
        if let Some(fraction) = verdict.memory_fraction {
            self.set_memory_fraction(key, fraction);
        }
        for (result, count) in [
            ("match", verdict.data_sets.matched),
            ("mismatch", verdict.data_sets.mismatched),
            ("undecided", verdict.data_sets.undecided),
        ] {
            if count > 0 {
                self.count_checksum("data_set", result, u64::from(count));
            }
        }
        for fault in verdict.faults {
            self.submit(fault);
        }
    }

    pub(crate) fn count_checksum(&self, check: &'static str, result: &'static str, count: u64) {
        self.metrics
            .checksum_checks
            .get_or_create(&ChecksumLabels { check, result })
            .inc_by(count);
    }

    fn set_memory_fraction(&self, key: &InstanceKey, fraction: f64) {
        self.metrics
            .memory_fraction
            .get_or_create(&InstanceLabels::from(key))
            .set(fraction);
    }

    /// Returns a copy of the registry entry of the watched `generation` of `key` and whether
    /// it already raised a fault, or `None` once that generation is no longer watched.
    pub(crate) fn watched_entry(
        &self,
        key: &InstanceKey,
        generation: u64,
    ) -> Option<(Instance, bool)> {
        self.tracker().watched_entry(key, generation)
    }

    /// Records a checksum mismatch of an artifact or declared file and hands the fault it
    /// raises to the publisher.
    pub(crate) fn checksum_mismatch(
        &self,
        key: &InstanceKey,
        generation: u64,
        mismatch: &ChecksumMismatch,
    ) {
        let fault = self
            .tracker()
            .checksum_mismatch(key, generation, mismatch, now());
        if let Some(fault) = fault {
            self.submit(fault);
        }
    }

    /// Records a resident memory sample read from `/proc`, exports it as a share of the
    /// limit, and hands a resulting fault to the publisher.
    pub(crate) fn memory_sample(&self, key: &InstanceKey, generation: u64, bytes: u64) {
        let verdict =
            self.tracker()
                .memory_sample(key, generation, bytes, MemorySource::Process, now());
        if let Some(fraction) = verdict.fraction {
            self.set_memory_fraction(key, fraction);
        }
        if let Some(fault) = verdict.fault {
            self.submit(fault);
        }
    }

    /// Tells for each key whether its log lines are scored, under one lock.
    pub(crate) fn log_sources<'a>(
        &self,
        keys: impl Iterator<Item = &'a InstanceKey>,
    ) -> Vec<LogSource> {
        let tracker = self.tracker();
        keys.map(|key| tracker.log_source(key)).collect()
    }

    /// Records a log anomaly of `key`, whose raising line arrived at `observed_at`, and hands
    /// the fault it raises to the publisher.
    pub(crate) fn log_anomaly(
        &self,
        key: &InstanceKey,
        anomaly: &Anomaly,
        observed_at: SystemTime,
    ) {
        let fault = self.tracker().log_anomaly(key, anomaly, observed_at, now());
        if let Some(fault) = fault {
            self.submit(fault);
        }
    }

    /// Workloads with at least one watched instance.
    pub(crate) fn watched_workloads(&self) -> std::collections::BTreeSet<String> {
        self.tracker().watched_workloads()
    }

    fn submit(&self, fault: FaultEvent) {
        if let Err(unsent) = self.faults.send(fault) {
            // Only after the publisher stopped, during shutdown. Another replica, or this one
            // after a restart, observes the same silence and raises the same fault id again.
            warn!(fault = %unsent.0.id, "fault raised after the publisher stopped, not published");
        }
    }

    /// Lists the watched instances of `workload`, or of all workloads when it is empty.
    pub(crate) fn watched(&self, workload: &str) -> Vec<WatchedInstance> {
        self.tracker().watched(workload)
    }

    /// Waits until every probe and integrity task has ended after the shutdown.
    pub(crate) async fn tasks_stopped(&self) {
        self.task_tracker.close();
        self.task_tracker.wait().await;
    }
}

/// Evaluates the suspicion levels every `period` until `shutdown` is cancelled.
pub(crate) async fn run_ticker(
    watcher: Arc<Watcher>,
    period: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => watcher.tick(),
        }
    }
}

#[cfg(test)]
mod tests {
    use aro_proto::v1::{FaultKind, InstanceRef, InstanceState};

    use super::*;
    use crate::domain::DetectorConfig;

    const BEAT: Duration = Duration::from_millis(250);

    fn serving(instance: &str) -> Instance {
        Instance {
            r#ref: Some(InstanceRef {
                workload: "web".to_owned(),
                instance: instance.to_owned(),
                generation: 1,
                node: String::new(),
            }),
            state: InstanceState::Serving.into(),
            pushes_heartbeats: true,
            heartbeat_interval: Some(aro_proto::time::duration(BEAT)),
            replicas: 1,
            ..Instance::default()
        }
    }

    fn watcher() -> (Arc<Watcher>, mpsc::UnboundedReceiver<FaultEvent>) {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (sender, receiver) = mpsc::unbounded_channel();
        let watcher = Watcher::new(
            Tracker::new(DetectorConfig::default()),
            metrics,
            sender,
            None,
            CancellationToken::new(),
        );
        (watcher, receiver)
    }

    #[tokio::test(start_paused = true)]
    async fn ticker_declares_hang_after_heartbeats_stop() {
        let (watcher, mut faults) = watcher();
        watcher.reconcile(vec![serving("web-1")]);
        let shutdown = CancellationToken::new();
        tokio::spawn(run_ticker(
            Arc::clone(&watcher),
            Duration::from_millis(25),
            shutdown.clone(),
        ));

        for sequence in 1..=40 {
            assert!(watcher.heartbeat("web", "web-1", sequence, &HeartbeatReport::default()));
            tokio::time::sleep(BEAT).await;
        }
        assert!(faults.try_recv().is_err(), "no fault while heartbeats flow");
        assert!(watcher.heartbeat("web", "web-1", 41, &HeartbeatReport::default()));
        let last = tokio::time::Instant::now();

        let fault = faults.recv().await.expect("a hang is declared");
        let silence = last.elapsed();
        assert_eq!(fault.kind(), FaultKind::Hang);
        assert!(
            silence >= Duration::from_millis(600),
            "declared after {silence:?}"
        );
        assert!(
            silence <= Duration::from_millis(1500),
            "declared after {silence:?}"
        );
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn unwatched_instance_loses_its_gauge() {
        let (watcher, _faults) = watcher();
        watcher.reconcile(vec![serving("web-1")]);
        watcher.heartbeat("web", "web-1", 1, &HeartbeatReport::default());
        watcher.tick();
        let labels = InstanceLabels {
            workload: "web".to_owned(),
            instance: "web-1".to_owned(),
        };
        assert!(watcher.metrics.suspicion.get(&labels).is_some());
        watcher.apply_registry(RegistryChange::Delete {
            workload: "web".to_owned(),
            instance: "web-1".to_owned(),
        });
        assert!(watcher.metrics.suspicion.get(&labels).is_none());
        assert_eq!(watcher.metrics.watched.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_are_counted_by_kind() {
        let (watcher, _faults) = watcher();
        watcher.reconcile(vec![serving("web-1")]);
        assert!(watcher.heartbeat("web", "web-1", 1, &HeartbeatReport::default()));
        assert!(!watcher.heartbeat("web", "web-9", 1, &HeartbeatReport::default()));
        let labels = WorkloadLabels {
            workload: "web".to_owned(),
        };
        assert_eq!(watcher.metrics.heartbeats.get_or_create(&labels).get(), 1);
        assert_eq!(watcher.metrics.unknown_heartbeats.get(), 1);
    }
}
