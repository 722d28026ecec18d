//! Arrival times as the detector records them, and a fixed-timeout detector computed over them.
//!
//! The detector's `ListWatched` reports, for each watched instance, the time of its last
//! arrival: its last heartbeat for an instance that pushes heartbeats, its last passed probe
//! otherwise. These are the arrivals that feed its phi accrual suspicion. Polling the list
//! often enough (well under one heartbeat interval) records each of them, so a fixed-timeout
//! detector can be evaluated over exactly the same arrivals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aro_proto::v1::{self, detector_client::DetectorClient};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tracing::warn;

/// Time between two polls of the detector.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Pause between two polls beyond which two arrivals may have fallen into it, so that only the
/// second was recorded: a little less than the 250 ms heartbeat interval, because a late
/// heartbeat brings the next one closer.
pub(super) const BLIND_PAUSE: Duration = Duration::from_millis(200);

/// Arrivals of one generation of one instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Series {
    /// Arrival times in microseconds since the Unix epoch, increasing.
    pub(super) arrivals: Vec<i64>,
    /// When a poll last listed the generation as serving.
    pub(super) last_listed: i64,
}

impl Series {
    fn record(&mut self, arrival: i64, listed: i64) {
        if self.arrivals.last().is_none_or(|last| arrival > *last) {
            self.arrivals.push(arrival);
        }
        self.last_listed = self.last_listed.max(listed);
    }

    /// Returns the silences longer than `timeout` that began from `from` to `to`, as (start,
    /// end): a fixed-timeout detector declares one hang for each. A silence lies between two
    /// arrivals, or follows the last arrival while the generation was still listed.
    pub(super) fn silences_over(&self, timeout: Duration, from: i64, to: i64) -> Vec<(i64, i64)> {
        let timeout = micros(timeout);
        let last = self.arrivals.last().map(|last| (*last, self.last_listed));
        self.arrivals
            .windows(2)
            .map(|pair| (pair[0], pair[1]))
            .chain(last)
            .filter(|(start, end)| (from..to).contains(start) && end - start > timeout)
            .collect()
    }

    /// Milliseconds from `injected_at` until a fixed-timeout detector would declare the hang
    /// that began then: `timeout` after the last arrival before it. `None` without an arrival
    /// before the injection.
    pub(super) fn fixed_detect_ms(&self, injected_at: i64, timeout: Duration) -> Option<f64> {
        let last = self
            .arrivals
            .iter()
            .rev()
            .find(|arrival| **arrival <= injected_at)?;
        Some((last + micros(timeout) - injected_at) as f64 / 1e3)
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Everything recorded so far.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    /// Arrivals per (instance, generation).
    pub(super) series: HashMap<(String, u64), Series>,
    pub(super) polls: u64,
    /// Maximum time between two successful polls.
    pub(super) longest_poll_gap: Duration,
    /// Pauses between two polls longer than [`BLIND_PAUSE`], as (start, end) in microseconds
    /// since the Unix epoch.
    pub(super) blind: Vec<(i64, i64)>,
}

impl Recorded {
    /// Counts the silences longer than `timeout` that began from `from` to `to`, across all
    /// generations, as (all, overlapping a blind pause of the recorder). A silence that
    /// overlaps one may be shorter than recorded.
    pub(super) fn silences(&self, timeout: Duration, from: i64, to: i64) -> (usize, usize) {
        let silences: Vec<(i64, i64)> = self
            .series
            .values()
            .flat_map(|series| series.silences_over(timeout, from, to))
            .collect();
        let uncertain = silences
            .iter()
            .filter(|(start, end)| {
                self.blind
                    .iter()
                    .any(|(blind_start, blind_end)| blind_start < end && start < blind_end)
            })
            .count();
        (silences.len(), uncertain)
    }
}

/// Polls the detector in the background and records the arrivals of serving instances.
#[derive(Debug)]
pub(super) struct Recorder {
    recorded: Arc<Mutex<Recorded>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts polling `detector`.
    pub(super) fn start(detector: DetectorClient<Channel>) -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let task = tokio::spawn(poll(detector, Arc::clone(&recorded)));
        Self { recorded, task }
    }

    /// Runs `read` on what was recorded so far.
    pub(super) fn read<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.recorded.lock().expect("arrival lock poisoned"))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(mut detector: DetectorClient<Channel>, recorded: Arc<Mutex<Recorded>>) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    let mut last_poll: Option<(tokio::time::Instant, i64)> = None;
    let mut failing = false;
    loop {
        ticker.tick().await;
        let response = detector
            .list_watched(v1::ListWatchedRequest::default())
            .await;
        let watched = match response {
            Ok(response) => {
                failing = false;
                response.into_inner().instances
            }
            Err(status) => {
                if !failing {
                    warn!(error = %status, "listing the detector's instances failed");
                    failing = true;
                }
                continue;
            }
        };
        let now = tokio::time::Instant::now();
        let listed = aro_proto::time::micros(Some(&aro_proto::time::now()));
        let mut recorded = recorded.lock().expect("arrival lock poisoned");
        recorded.polls += 1;
        if let Some((previous, previous_listed)) = last_poll {
            let pause = now - previous;
            recorded.longest_poll_gap = recorded.longest_poll_gap.max(pause);
            if pause > BLIND_PAUSE {
                recorded.blind.push((previous_listed, listed));
            }
        }
        last_poll = Some((now, listed));
        for entry in &watched {
            let Some(instance) = entry.instance.as_ref() else {
                continue;
            };
            let (Some(reference), Some(last_seen)) = (instance.r#ref.as_ref(), &entry.last_seen)
            else {
                continue;
            };
            if instance.state() != v1::InstanceState::Serving {
                continue;
            }
            let key = (reference.instance.clone(), reference.generation);
            let arrival = aro_proto::time::micros(Some(last_seen));
            recorded
                .series
                .entry(key)
                .or_default()
                .record(arrival, listed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000;
    const TIMEOUT: Duration = Duration::from_millis(750);

    fn series(arrivals_ms: &[i64], last_listed_ms: i64) -> Series {
        let mut series = Series::default();
        for arrival in arrivals_ms {
            series.record(arrival * MS, last_listed_ms * MS);
        }
        series
    }

    #[test]
    fn repeated_arrival_is_recorded_once() {
        let series = series(&[0, 250, 250, 500], 500);
        assert_eq!(series.arrivals, [0, 250 * MS, 500 * MS]);
    }

    #[test]
    fn long_silence_between_arrivals_counts() {
        let series = series(&[0, 250, 1100, 1350], 1400);
        assert_eq!(
            series.silences_over(TIMEOUT, 0, 2000 * MS),
            [(250 * MS, 1100 * MS)]
        );
    }

    #[test]
    fn silence_of_exactly_the_timeout_does_not_count() {
        let series = series(&[0, 750, 1000], 1000);
        assert!(series.silences_over(TIMEOUT, 0, 2000 * MS).is_empty());
    }

    #[test]
    fn silence_until_the_last_listing_counts() {
        let series = series(&[0, 250], 1200);
        assert_eq!(
            series.silences_over(TIMEOUT, 0, 2000 * MS),
            [(250 * MS, 1200 * MS)]
        );
    }

    #[test]
    fn silence_before_the_window_does_not_count() {
        let series = series(&[0, 1000, 1250], 1250);
        assert!(
            series
                .silences_over(TIMEOUT, 500 * MS, 2000 * MS)
                .is_empty()
        );
    }

    #[test]
    fn silences_during_blind_pauses_are_uncertain() {
        let mut recorded = Recorded::default();
        recorded.series.insert(
            ("beat-1".to_owned(), 1),
            series(&[0, 1000, 1250, 2500], 2500),
        );
        recorded.blind.push((1800 * MS, 2100 * MS));
        assert_eq!(recorded.silences(TIMEOUT, 0, 3000 * MS), (2, 1));
    }

    #[test]
    fn fixed_timeout_starts_at_last_arrival() {
        let series = series(&[0, 250, 500], 500);
        assert_eq!(series.fixed_detect_ms(600 * MS, TIMEOUT), Some(650.0));
        assert_eq!(series.fixed_detect_ms(500 * MS, TIMEOUT), Some(750.0));
        assert_eq!(series.fixed_detect_ms(-1, TIMEOUT), None);
    }
}
