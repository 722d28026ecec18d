use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::memory::MemoryTrend;
use super::phi::{PhiAccrual, PhiSettings};
use super::{Digest, Moment};

/// Result of one probe of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The check passed, which counts as an arrival like a heartbeat.
    Passed,
    /// The check failed. `answered` is true when the instance answered with a failure (HTTP
    /// non-2xx, connection refused, NOT_SERVING, non-zero exit status). Only answered
    /// failures count toward unhealthy. A probe without an answer, such as a timeout, adds
    /// no arrival, so the silence shows in the suspicion level.
    Failed { answered: bool, error: String },
}

/// Liveness of one generation of one watched instance.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) generation: u64,
    /// False when the instance neither pushes heartbeats nor has a usable health check, so
    /// silence carries no information and no suspicion accrues.
    pub(crate) monitored: bool,
    /// True when the instance pushes heartbeats: only heartbeats then feed the suspicion level,
    /// because two interleaved arrival streams look like jitter and slow detection down.
    pub(crate) heartbeats_only: bool,
    phi: PhiAccrual,
    settings: PhiSettings,
    expected_interval: Duration,
    /// When this detector first saw the generation serving.
    pub(crate) serving_since: Option<Moment>,
    pub(crate) last_arrival: Option<Moment>,
    /// Highest heartbeat sequence number received, or 0 before the first.
    last_sequence: u64,
    pub(crate) heartbeats: u64,
    pub(crate) probes_passed: u64,
    /// Consecutive answered probe failures while serving.
    pub(crate) probe_failures: u32,
    /// When the first of the current consecutive answered failures happened.
    pub(crate) failing_since: Option<SystemTime>,
    pub(crate) last_probe_error: Option<String>,
    /// Suspicion level at the last evaluation.
    pub(crate) suspicion: f64,
    /// Start of the current stretch of healthy serving, used to close the open incident.
    pub(crate) healthy_since: Option<Instant>,
    /// Data checksums of the latest heartbeat that reported any, by data set.
    pub(crate) data_checksums: BTreeMap<String, Digest>,
    /// Since when each data set's checksum has disagreed with a strict majority of the
    /// workload's serving replicas.
    pub(crate) minority_since: BTreeMap<String, Moment>,
    pub(crate) memory: MemoryTrend,
    /// True once a heartbeat reported resident memory. Samples read from `/proc` are ignored
    /// from then on, so the trend follows one source.
    pub(crate) memory_from_heartbeats: bool,
}

impl Watch {
    pub(crate) fn new(generation: u64, settings: PhiSettings, expected_interval: Duration) -> Self {
        Self {
            generation,
            monitored: true,
            heartbeats_only: false,
            phi: PhiAccrual::new(settings, expected_interval),
            settings,
            expected_interval,
            serving_since: None,
            last_arrival: None,
            last_sequence: 0,
            heartbeats: 0,
            probes_passed: 0,
            probe_failures: 0,
            failing_since: None,
            last_probe_error: None,
            suspicion: 0.0,
            healthy_since: None,
            data_checksums: BTreeMap::new(),
            minority_since: BTreeMap::new(),
            memory: MemoryTrend::default(),
            memory_from_heartbeats: false,
        }
    }

    /// Records a pushed heartbeat. Sequence 0 means the sender does not number its
    /// heartbeats. A repeated sequence number is a retried call and adds no arrival. A lower
    /// one means that a new process took over the instance id (a restart in place races its
    /// predecessor's last heartbeats), so the interval history starts over.
    pub(crate) fn heartbeat(&mut self, sequence: u64, now: Moment) {
        if sequence != 0 {
            if sequence == self.last_sequence {
                return;
            }
            if sequence < self.last_sequence {
                self.phi = PhiAccrual::new(self.settings, self.expected_interval);
            }
            self.last_sequence = sequence;
        }
        self.heartbeats += 1;
        self.arrive(now);
    }

    /// Records a probe result.
    pub(crate) fn probe(&mut self, outcome: &ProbeOutcome, now: Moment) {
        match outcome {
            ProbeOutcome::Passed => {
                self.probes_passed += 1;
                self.probe_failures = 0;
                self.failing_since = None;
                self.last_probe_error = None;
                if !self.heartbeats_only {
                    self.arrive(now);
                }
            }
            ProbeOutcome::Failed { answered, error } => {
                self.last_probe_error = Some(error.clone());
                if *answered && self.serving_since.is_some() {
                    self.probe_failures += 1;
                    self.failing_since.get_or_insert(now.wall);
                }
            }
        }
    }

    fn arrive(&mut self, now: Moment) {
        self.phi.heartbeat(now.monotonic);
        self.last_arrival = Some(now);
    }

    /// Computes, stores and returns the suspicion level at `now`. Silence counts from the
    /// last arrival, but for a serving instance never from before the end of its start-up
    /// grace, so no suspicion accrues during the grace. An instance that neither serves nor
    /// sent anything, or that is not monitored, has no suspicion.
    pub(crate) fn evaluate(&mut self, now: Instant, grace: Duration) -> f64 {
        if !self.monitored {
            self.suspicion = 0.0;
            return 0.0;
        }
        let last = self.last_arrival.map(|arrival| arrival.monotonic);
        let silence_start = match self.serving_since {
            Some(serving) => {
                let grace_end = serving.monotonic + grace;
                Some(last.map_or(grace_end, |last| last.max(grace_end)))
            }
            None => last,
        };
        self.suspicion = silence_start.map_or(0.0, |start| {
            self.phi.phi_after(now.saturating_duration_since(start))
        });
        self.suspicion
    }

    pub(crate) fn mean_interval(&self) -> Duration {
        self.phi.mean()
    }

    pub(crate) fn std_dev(&self) -> Duration {
        self.phi.std_dev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(250);
    const GRACE: Duration = Duration::from_secs(1);

    fn start() -> Moment {
        Moment {
            monotonic: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    #[test]
    fn starting_instance_without_arrivals_has_no_suspicion() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        let later = now.after(Duration::from_secs(30)).monotonic;
        assert_eq!(watch.evaluate(later, GRACE), 0.0);
    }

    #[test]
    fn serving_instance_without_arrivals_is_suspected_after_grace() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        watch.serving_since = Some(now);
        assert!(watch.evaluate(now.after(GRACE).monotonic, GRACE) < 0.01);
        assert!(watch.evaluate(now.after(GRACE * 3).monotonic, GRACE) > 8.0);
    }

    #[test]
    fn silence_during_grace_adds_no_suspicion() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        watch.heartbeat(1, now);
        watch.serving_since = Some(now.after(Duration::from_secs(5)));
        let at_grace_end = now.after(Duration::from_secs(5) + GRACE).monotonic;
        assert!(watch.evaluate(at_grace_end, GRACE) < 0.01);
    }

    #[test]
    fn repeated_sequence_adds_no_arrival() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        watch.heartbeat(7, now);
        watch.heartbeat(7, now.after(INTERVAL));
        assert_eq!(watch.heartbeats, 1);
        assert_eq!(watch.last_arrival, Some(now));
    }

    #[test]
    fn lower_sequence_restarts_history() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        for (step, sequence) in (1..=20).enumerate() {
            watch.heartbeat(sequence, now.after(INTERVAL * step as u32));
        }
        watch.heartbeat(1, now.after(Duration::from_secs(20)));
        assert_eq!(watch.mean_interval(), INTERVAL);
        assert_eq!(watch.heartbeats, 21);
    }

    #[test]
    fn answered_failures_count_only_while_serving() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        let refused = ProbeOutcome::Failed {
            answered: true,
            error: "connection refused".to_owned(),
        };
        watch.probe(&refused, now);
        assert_eq!(watch.probe_failures, 0);
        watch.serving_since = Some(now);
        watch.probe(&refused, now);
        watch.probe(&refused, now);
        assert_eq!(watch.probe_failures, 2);
    }

    #[test]
    fn unanswered_failure_neither_counts_nor_resets() {
        let now = start();
        let mut watch = Watch::new(1, PhiSettings::default(), INTERVAL);
        watch.serving_since = Some(now);
        let refused = ProbeOutcome::Failed {
            answered: true,
            error: "connection refused".to_owned(),
        };
        let timeout = ProbeOutcome::Failed {
            answered: false,
            error: "timed out".to_owned(),
        };
        watch.probe(&refused, now);
        watch.probe(&timeout, now);
        assert_eq!(watch.probe_failures, 1);
        assert_eq!(watch.last_probe_error.as_deref(), Some("timed out"));
        watch.probe(&ProbeOutcome::Passed, now);
        assert_eq!(watch.probe_failures, 0);
    }
}
