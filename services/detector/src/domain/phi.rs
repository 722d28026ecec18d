//! The phi accrual failure detector (Hayashibara, Défago, Yared and Katayama, 2004) in the
//! variant that Akka and Cassandra use: inter-arrival times are taken as normally distributed,
//! and the normal tail comes from a logistic approximation.
//!
//! With `t` the time since the last arrival, `μ` and `σ` the mean and standard deviation of
//! the recent inter-arrival intervals, `p` the acceptable pause and `σ_min` the floor of the
//! standard deviation:
//!
//! ```text
//! y   = (t - μ - p) / max(σ, σ_min)
//! z   = y · (1.5976 + 0.070566 · y²)        logistic fit of the standard normal CDF
//! P   = 1 / (1 + e^z)                       ≈ probability that the next arrival is later than t
//! phi = -log10(P) = log10(1 + e^z)
//! ```
//!
//! A phi of 8 means that, were the instance alive, an arrival this late would happen about
//! once in 10^8 intervals. The value is computed as `softplus(z) / ln 10`, which stays finite
//! for long silences, where `e^z` overflows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Settings of a phi accrual failure detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiSettings {
    /// Number of inter-arrival intervals kept; the oldest drops out when a new one arrives.
    pub window: usize,
    /// Floor of the standard deviation, so that a perfectly regular sender is not suspected
    /// after a delay of a few milliseconds.
    pub min_std_dev: Duration,
    /// Delay beyond the mean interval that is tolerated before suspicion rises, such as a
    /// scheduling hiccup or a garbage-collection pause.
    pub acceptable_pause: Duration,
}

impl Default for PhiSettings {
    /// 200 intervals, a 100 ms floor and a 200 ms pause: a sender that was regular at 250 ms
    /// reaches phi 8 about 0.97 s after its last arrival.
    fn default() -> Self {
        Self {
            window: 200,
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::from_millis(200),
        }
    }
}

/// Suspicion level of one monitored sender, fed with arrival times.
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    settings: PhiSettings,
    /// Recent inter-arrival intervals in milliseconds.
    intervals: VecDeque<f64>,
    mean_ms: f64,
    std_dev_ms: f64,
    last_arrival: Option<Instant>,
}

impl PhiAccrual {
    /// Creates a detector that expects an arrival every `expected_interval`. Until real
    /// intervals replace them, two samples at the expected interval ± a quarter of it stand
    /// in for the history, so the first silence is judged against the declared rate.
    pub fn new(settings: PhiSettings, expected_interval: Duration) -> Self {
        let expected_ms = expected_interval.as_secs_f64() * 1e3;
        let spread_ms = expected_ms / 4.0;
        let mut detector = Self {
            settings: PhiSettings {
                window: settings.window.max(2),
                ..settings
            },
            intervals: VecDeque::with_capacity(settings.window.max(2)),
            mean_ms: 0.0,
            std_dev_ms: 0.0,
            last_arrival: None,
        };
        detector.push_interval(expected_ms - spread_ms);
        detector.push_interval(expected_ms + spread_ms);
        detector
    }

    /// Records an arrival. An arrival earlier than the previous one is ignored, so the
    /// interval history never contains negative values.
    pub fn heartbeat(&mut self, at: Instant) {
        match self.last_arrival {
            Some(last) if at < last => return,
            Some(last) => self.push_interval((at - last).as_secs_f64() * 1e3),
            None => {}
        }
        self.last_arrival = Some(at);
    }

    /// Time of the last recorded arrival.
    pub fn last_arrival(&self) -> Option<Instant> {
        self.last_arrival
    }

    /// Suspicion at `now`, measured from the last arrival; 0 before the first arrival.
    pub fn phi_at(&self, now: Instant) -> f64 {
        self.last_arrival.map_or(0.0, |last| {
            self.phi_after(now.saturating_duration_since(last))
        })
    }

    /// Suspicion after `silence` without an arrival.
    pub fn phi_after(&self, silence: Duration) -> f64 {
        let mean = self.mean_ms + self.settings.acceptable_pause.as_secs_f64() * 1e3;
        let std_dev = self
            .std_dev_ms
            .max(self.settings.min_std_dev.as_secs_f64() * 1e3)
            .max(f64::EPSILON);
        let y = (silence.as_secs_f64() * 1e3 - mean) / std_dev;
        let z = y * (1.5976 + 0.070566 * y * y);
        softplus(z) / std::f64::consts::LN_10
    }

    /// Mean of the recent inter-arrival intervals.
    pub fn mean(&self) -> Duration {
        Duration::from_secs_f64(self.mean_ms.max(0.0) / 1e3)
    }

    /// Standard deviation of the recent inter-arrival intervals, before the floor applies.
    pub fn std_dev(&self) -> Duration {
        Duration::from_secs_f64(self.std_dev_ms / 1e3)
    }

    fn push_interval(&mut self, interval_ms: f64) {
        if self.intervals.len() == self.settings.window {
            self.intervals.pop_front();
        }
        self.intervals.push_back(interval_ms);
        // The window is small, so recomputing from scratch is cheap and cannot drift the way
        // running sums of squares do.
        let count = self.intervals.len() as f64;
        self.mean_ms = self.intervals.iter().sum::<f64>() / count;
        let variance = self
            .intervals
            .iter()
            .map(|interval| (interval - self.mean_ms).powi(2))
            .sum::<f64>()
            / count;
        self.std_dev_ms = variance.sqrt();
    }
}

/// `ln(1 + e^z)` without overflow for large `z`.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEADY: Duration = Duration::from_millis(250);

    /// Feeds `intervals` as arrivals after a first one at `start` and returns the detector
    /// with the time of the last arrival.
    fn fed(intervals: impl IntoIterator<Item = Duration>) -> (PhiAccrual, Instant) {
        let mut detector = PhiAccrual::new(PhiSettings::default(), STEADY);
        let mut at = Instant::now();
        detector.heartbeat(at);
        for interval in intervals {
            at += interval;
            detector.heartbeat(at);
        }
        (detector, at)
    }

    /// Smallest silence, in 1 ms steps, after which phi reaches `threshold`.
    fn silence_to_reach(detector: &PhiAccrual, threshold: f64) -> Duration {
        (0..60_000)
            .map(Duration::from_millis)
            .find(|silence| detector.phi_after(*silence) >= threshold)
            .expect("phi reaches the threshold within a minute")
    }

    #[test]
    fn phi_is_zero_before_first_arrival() {
        let detector = PhiAccrual::new(PhiSettings::default(), STEADY);
        assert_eq!(detector.phi_at(Instant::now()), 0.0);
    }

    #[test]
    fn phi_grows_with_silence() {
        let (detector, _) = fed(std::iter::repeat_n(STEADY, 50));
        let mut previous = detector.phi_after(Duration::ZERO);
        assert!(previous < 0.01, "phi right after an arrival is {previous}");
        for millis in (50..3000).step_by(50) {
            let phi = detector.phi_after(Duration::from_millis(millis));
            assert!(
                phi > previous,
                "phi at {millis} ms is {phi}, not above {previous}"
            );
            previous = phi;
        }
    }

    #[test]
    fn phi_stays_finite_after_long_silence() {
        let (detector, _) = fed(std::iter::repeat_n(STEADY, 50));
        let phi = detector.phi_after(Duration::from_secs(3600));
        assert!(phi.is_finite(), "phi after an hour is {phi}");
        assert!(phi > 1000.0, "phi after an hour is {phi}");
    }

    #[test]
    fn steady_stream_crosses_threshold_within_bounds() {
        let (detector, last) = fed(std::iter::repeat_n(STEADY, 200));
        let silence = silence_to_reach(&detector, 8.0);
        assert!(
            silence >= Duration::from_millis(600),
            "crossed after {silence:?}"
        );
        assert!(
            silence <= Duration::from_millis(1500),
            "crossed after {silence:?}"
        );
        assert!(detector.phi_at(last + silence) >= 8.0);
        assert!(detector.phi_at(last + silence - Duration::from_millis(1)) < 8.0);
    }

    #[test]
    fn jittery_sender_needs_longer_silence() {
        let (regular, _) = fed(std::iter::repeat_n(STEADY, 200));
        // Mean 250 ms with a standard deviation of about 158 ms, above the 100 ms floor.
        let jitter = [50, 450, 100, 400, 250].map(Duration::from_millis);
        let (jittery, _) = fed(jitter.iter().copied().cycle().take(200));
        let regular_silence = silence_to_reach(&regular, 8.0);
        let jittery_silence = silence_to_reach(&jittery, 8.0);
        assert!(
            jittery_silence > regular_silence + Duration::from_millis(100),
            "jittery {jittery_silence:?}, regular {regular_silence:?}"
        );
    }

    #[test]
    fn std_dev_floor_applies_to_regular_sender() {
        let (detector, _) = fed(std::iter::repeat_n(STEADY, 200));
        assert_eq!(detector.std_dev(), Duration::ZERO);
        let floored = silence_to_reach(&detector, 8.0);
        let settings = PhiSettings {
            min_std_dev: Duration::from_millis(200),
            ..PhiSettings::default()
        };
        let mut wider = PhiAccrual::new(settings, STEADY);
        let mut at = Instant::now();
        for _ in 0..=200 {
            wider.heartbeat(at);
            at += STEADY;
        }
        assert!(silence_to_reach(&wider, 8.0) > floored);
    }

    #[test]
    fn window_forgets_old_intervals() {
        let (detector, _) = fed(std::iter::repeat_n(Duration::from_secs(2), 200)
            .chain(std::iter::repeat_n(STEADY, 200)));
        assert_eq!(detector.mean(), STEADY);
    }

    #[test]
    fn first_silence_uses_expected_interval() {
        let mut slow = PhiAccrual::new(PhiSettings::default(), Duration::from_secs(2));
        let mut fast = PhiAccrual::new(PhiSettings::default(), STEADY);
        let at = Instant::now();
        slow.heartbeat(at);
        fast.heartbeat(at);
        let silence = Duration::from_millis(1500);
        assert!(fast.phi_after(silence) >= 8.0);
        assert!(slow.phi_after(silence) < 1.0);
    }

    #[test]
    fn arrival_out_of_order_is_ignored() {
        let (mut detector, last) = fed(std::iter::repeat_n(STEADY, 10));
        detector.heartbeat(last - Duration::from_millis(100));
        assert_eq!(detector.last_arrival(), Some(last));
    }
}
