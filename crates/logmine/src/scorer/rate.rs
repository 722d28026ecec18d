//! An exponentially weighted event rate for events that arrive at irregular times.

use std::time::Duration;

/// Events per second, weighted by `exp(-age / window)`: each event adds `1 / window`, and the
/// sum decays between events. A steady rate `r` converges to `r`; `value * window` estimates the
/// events of about the last `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExpRate {
    value: f64,
    updated: Duration,
}

impl ExpRate {
    pub(crate) fn new(now: Duration) -> Self {
        Self {
            value: 0.0,
            updated: now,
        }
    }

    /// Records one event at `now`, which must not be earlier than the previous event.
    pub(crate) fn record(&mut self, now: Duration, window: Duration) {
        self.value = self.at(now, window) + 1.0 / window.as_secs_f64();
        self.updated = now;
    }

    /// Returns the rate at `now`, in events per second.
    pub(crate) fn at(&self, now: Duration, window: Duration) -> f64 {
        let age = now.saturating_sub(self.updated).as_secs_f64();
        self.value * (-age / window.as_secs_f64()).exp()
    }

    pub(crate) fn updated(&self) -> Duration {
        self.updated
    }
}

/// Returns the share of the exponential weight that an observation span of `observed` covers.
/// Dividing a rate by it corrects the bias of a rate that started at zero when watching began.
pub(crate) fn coverage(observed: Duration, window: Duration) -> f64 {
    1.0 - (-observed.as_secs_f64() / window.as_secs_f64()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn steady_rate_converges() {
        let mut rate = ExpRate::new(Duration::ZERO);
        for tenth in 1..=2_000u64 {
            rate.record(Duration::from_millis(tenth * 100), WINDOW);
        }
        let value = rate.at(Duration::from_secs(200), WINDOW);
        assert!(
            (value - 10.0).abs() < 0.5,
            "rate {value} should be near 10 per second"
        );
    }

    #[test]
    fn rate_decays_without_events() {
        let mut rate = ExpRate::new(Duration::ZERO);
        rate.record(Duration::ZERO, WINDOW);
        let fresh = rate.at(Duration::ZERO, WINDOW);
        let later = rate.at(WINDOW, WINDOW);
        assert!((later / fresh - (-1.0f64).exp()).abs() < 1e-9);
    }

    #[test]
    fn coverage_grows_to_one() {
        assert_eq!(coverage(Duration::ZERO, WINDOW), 0.0);
        assert!(coverage(WINDOW * 10, WINDOW) > 0.9999);
    }
}
