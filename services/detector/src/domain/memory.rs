//! Resident memory of an instance against its limit: over a share of the limit, or growing
//! along a linear trend that reaches the limit soon.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples kept per instance at most, whatever the window.
const MAX_SAMPLES: usize = 256;

/// A sample closer than this to the previous one replaces it, so a sender that reports very
/// often does not crowd the window with near-duplicates.
const MIN_SAMPLE_GAP: Duration = Duration::from_millis(100);

/// Settings of the memory sense.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemorySettings {
    /// Share of the limit, above 0 and at most 1, at or above which resident memory counts as
    /// exhausted.
    pub fraction: f64,
    /// A linear trend that reaches the limit within this time counts as exhaustion.
    pub horizon: Duration,
    /// Samples older than this before the newest one are left out of the trend.
    pub window: Duration,
    /// Samples a trend needs before it counts.
    pub min_samples: usize,
    /// Time the samples of a trend must span before it counts.
    pub min_span: Duration,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            fraction: 0.9,
            horizon: Duration::from_secs(30),
            window: Duration::from_secs(30),
            min_samples: 5,
            min_span: Duration::from_secs(5),
        }
    }
}

/// Source of a memory sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemorySource {
    /// `VmRSS` in `/proc/<pid>/status` of an instance on this node.
    Process,
    /// `rss_bytes` that the instance reported in a heartbeat.
    Heartbeat,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "proc",
            Self::Heartbeat => "heartbeat",
        }
    }
}

/// Memory that runs out, as one sample or a trend shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Exhaustion {
    /// The newest sample is at or above the configured share of the limit.
    OverFraction { used: u64, limit: u64 },
    /// The fitted line grows by `growth` bytes per second and reaches the limit in
    /// `reaches_in`.
    Trend {
        used: u64,
        limit: u64,
        growth: f64,
        reaches_in: Duration,
    },
}

/// Recent resident memory samples of one generation of an instance.
#[derive(Debug, Default)]
pub(crate) struct MemoryTrend {
    samples: VecDeque<(Instant, u64)>,
}

impl MemoryTrend {
    /// Adds a sample taken at `at` and drops the samples that left the window.
    pub(crate) fn record(&mut self, at: Instant, bytes: u64, window: Duration) {
        let close = self
            .samples
            .back()
            .is_some_and(|(last, _)| at.saturating_duration_since(*last) < MIN_SAMPLE_GAP);
        if close {
            self.samples.pop_back();
        }
        self.samples.push_back((at, bytes));
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|(first, _)| at.saturating_duration_since(*first) > window)
        {
            self.samples.pop_front();
        }
    }

    /// Returns the newest sample's bytes.
    pub(crate) fn latest(&self) -> Option<u64> {
        self.samples.back().map(|(_, bytes)| *bytes)
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Judges the samples against `limit`; a limit of 0 means none and never runs out.
    pub(crate) fn assess(&self, limit: u64, settings: &MemorySettings) -> Option<Exhaustion> {
        let used = self.latest()?;
        if limit == 0 {
            return None;
        }
        if used as f64 >= settings.fraction * limit as f64 {
            return Some(Exhaustion::OverFraction { used, limit });
        }
        let (first, _) = *self.samples.front()?;
        let (last, _) = *self.samples.back()?;
        if self.samples.len() < settings.min_samples
            || last.saturating_duration_since(first) < settings.min_span
        {
            return None;
        }
        let (growth, fitted_now) = self.fit(first, last);
        if growth <= 0.0 {
            return None;
        }
        let remaining = (limit as f64 - fitted_now).max(0.0);
        let reaches_in = Duration::from_secs_f64(remaining / growth);
        (reaches_in <= settings.horizon).then_some(Exhaustion::Trend {
            used,
            limit,
            growth,
            reaches_in,
        })
    }

    /// Least-squares line through the samples: returns its slope in bytes per second and its
    /// value at the newest sample.
    fn fit(&self, first: Instant, last: Instant) -> (f64, f64) {
        let points: Vec<(f64, f64)> = self
            .samples
            .iter()
            .map(|(at, bytes)| (at.duration_since(first).as_secs_f64(), *bytes as f64))
            .collect();
        let count = points.len() as f64;
        let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / count;
        let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / count;
        let covariance: f64 = points
            .iter()
            .map(|(x, y)| (x - mean_x) * (y - mean_y))
            .sum();
        let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
        if variance == 0.0 {
            return (0.0, mean_y);
        }
        let slope = covariance / variance;
        let last_x = last.duration_since(first).as_secs_f64();
        (slope, mean_y + slope * (last_x - mean_x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const LIMIT: u64 = 1000 * MIB;

    fn trend_of(samples: &[(u64, u64)]) -> MemoryTrend {
        let start = Instant::now();
        let mut trend = MemoryTrend::default();
        for &(millis, bytes) in samples {
            trend.record(
                start + Duration::from_millis(millis),
                bytes,
                MemorySettings::default().window,
            );
        }
        trend
    }

    #[test]
    fn usage_over_fraction_is_exhaustion() {
        let trend = trend_of(&[(0, 950 * MIB)]);
        assert_eq!(
            trend.assess(LIMIT, &MemorySettings::default()),
            Some(Exhaustion::OverFraction {
                used: 950 * MIB,
                limit: LIMIT
            })
        );
    }

    #[test]
    fn flat_usage_below_fraction_is_fine() {
        let samples: Vec<(u64, u64)> = (0..20).map(|s| (s * 1000, 850 * MIB)).collect();
        assert_eq!(
            trend_of(&samples).assess(LIMIT, &MemorySettings::default()),
            None
        );
    }

    #[test]
    fn growth_that_reaches_limit_within_horizon_is_exhaustion() {
        // 10 MiB/s from 300 MiB: 600 MiB remain after 10 s, reached 60 s later.
        let samples: Vec<(u64, u64)> = (0..=10).map(|s| (s * 1000, (300 + 10 * s) * MIB)).collect();
        let trend = trend_of(&samples);
        assert_eq!(trend.assess(LIMIT, &MemorySettings::default()), None);

        // 35 MiB/s from 300 MiB: 350 MiB remain after 10 s, reached 10 s later.
        let samples: Vec<(u64, u64)> = (0..=10).map(|s| (s * 1000, (300 + 35 * s) * MIB)).collect();
        let Some(Exhaustion::Trend {
            growth, reaches_in, ..
        }) = trend_of(&samples).assess(LIMIT, &MemorySettings::default())
        else {
            panic!("a trend that reaches the limit in 10 s is exhaustion");
        };
        assert!((growth - 35.0 * MIB as f64).abs() < 1.0, "growth {growth}");
        assert!(
            (reaches_in.as_secs_f64() - 10.0).abs() < 0.01,
            "reaches the limit in {reaches_in:?}"
        );
    }

    #[test]
    fn trend_needs_enough_samples_over_enough_time() {
        let settings = MemorySettings::default();
        let few: Vec<(u64, u64)> = (0..4).map(|s| (s * 2000, (100 + 200 * s) * MIB)).collect();
        assert_eq!(trend_of(&few).assess(LIMIT, &settings), None);
        let short: Vec<(u64, u64)> = (0..10).map(|s| (s * 300, (100 + 60 * s) * MIB)).collect();
        assert_eq!(trend_of(&short).assess(LIMIT, &settings), None);
    }

    #[test]
    fn shrinking_usage_is_fine() {
        let samples: Vec<(u64, u64)> = (0..10).map(|s| (s * 1000, (800 - 50 * s) * MIB)).collect();
        assert_eq!(
            trend_of(&samples).assess(LIMIT, &MemorySettings::default()),
            None
        );
    }

    #[test]
    fn no_limit_means_no_exhaustion() {
        let trend = trend_of(&[(0, u64::MAX)]);
        assert_eq!(trend.assess(0, &MemorySettings::default()), None);
    }

    #[test]
    fn old_samples_leave_window() {
        let samples: Vec<(u64, u64)> = (0..=60).map(|s| (s * 1000, MIB)).collect();
        assert_eq!(trend_of(&samples).len(), 31);
    }

    #[test]
    fn close_samples_replace_each_other() {
        let trend = trend_of(&[(0, MIB), (1000, 2 * MIB), (1050, 3 * MIB)]);
        assert_eq!(trend.len(), 2);
        assert_eq!(trend.latest(), Some(3 * MIB));
    }

    #[test]
    fn samples_are_capped() {
        let samples: Vec<(u64, u64)> = (0..1000).map(|n| (n * 100, MIB)).collect();
        let settings = MemorySettings {
            window: Duration::from_secs(3600),
            ..MemorySettings::default()
        };
        let start = Instant::now();
        let mut trend = MemoryTrend::default();
        for (millis, bytes) in samples {
            trend.record(
                start + Duration::from_millis(millis),
                bytes,
                settings.window,
            );
        }
        assert_eq!(trend.len(), MAX_SAMPLES);
    }
}
