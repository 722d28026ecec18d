//! The tracker behind a lock, with the effects of its watch changes: probe tasks started and
//! cancelled, suspicion gauges set and removed, and raised faults handed to the publisher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use aro_bus::RegistryChange;
use aro_proto::v1::{FaultEvent, Instance, Signal, WatchedInstance};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span, warn};

use crate::domain::{
    InstanceKey, Moment, ProbeOutcome, SignalVerdict, Tracker, TrackerError, WatchEvent,
};
use crate::metrics::{InstanceLabels, Metrics, ProbeLabels, WorkloadLabels};

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
    probes: Mutex<HashMap<InstanceKey, CancellationToken>>,
    probe_tasks: TaskTracker,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    faults: mpsc::UnboundedSender<FaultEvent>,
}

impl Watcher {
    /// Creates a watcher that sends faults raised by ticks and probes to `faults`, and
    /// stops its probes when `shutdown` is cancelled.
    pub(crate) fn new(
        tracker: Tracker,
        metrics: Arc<Metrics>,
        faults: mpsc::UnboundedSender<FaultEvent>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            tracker: Mutex::new(tracker),
            probes: Mutex::new(HashMap::new()),
            probe_tasks: TaskTracker::new(),
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
                    self.stop_probe(&key);
                    if let Some(spec) = probe {
                        let cancel = self.shutdown.child_token();
                        self.probes().insert(key.clone(), cancel.clone());
                        let span =
                            info_span!("probe", instance = %key, generation, probe = spec.kind());
                        self.probe_tasks.spawn(
                            crate::probe::run(Arc::clone(self), key, generation, spec, cancel)
                                .instrument(span),
                        );
                    }
                }
                WatchEvent::Unwatched { key } => {
                    self.stop_probe(&key);
                    self.metrics.suspicion.remove(&InstanceLabels::from(&key));
                }
            }
        }
        self.metrics
            .watched
            .set(i64::try_from(watched).unwrap_or(i64::MAX));
        result
    }

    fn probes(&self) -> MutexGuard<'_, HashMap<InstanceKey, CancellationToken>> {
        self.probes
            .lock()
            .expect("no thread panics while holding the probe lock")
    }

    fn stop_probe(&self, key: &InstanceKey) {
        if let Some(cancel) = self.probes().remove(key) {
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

    /// Records a heartbeat and returns whether the instance is watched.
    pub(crate) fn heartbeat(&self, workload: &str, instance: &str, sequence: u64) -> bool {
        let known = self
            .tracker()
            .heartbeat(workload, instance, sequence, now());
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

    /// Waits until every probe task has ended after the shutdown.
    pub(crate) async fn probes_stopped(&self) {
        self.probe_tasks.close();
        self.probe_tasks.wait().await;
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
            assert!(watcher.heartbeat("web", "web-1", sequence));
            tokio::time::sleep(BEAT).await;
        }
        assert!(faults.try_recv().is_err(), "no fault while heartbeats flow");
        assert!(watcher.heartbeat("web", "web-1", 41));
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
        watcher.heartbeat("web", "web-1", 1);
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
        assert!(watcher.heartbeat("web", "web-1", 1));
        assert!(!watcher.heartbeat("web", "web-9", 1));
        let labels = WorkloadLabels {
            workload: "web".to_owned(),
        };
        assert_eq!(watcher.metrics.heartbeats.get_or_create(&labels).get(), 1);
        assert_eq!(watcher.metrics.unknown_heartbeats.get(), 1);
    }
}
