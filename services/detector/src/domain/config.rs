use std::time::Duration;

use super::memory::MemorySettings;
use super::phi::PhiSettings;

/// Errors in the detector's settings.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid phi threshold {0}: must be a finite number above 0")]
    Threshold(f64),
    #[error("invalid phi window {0}: must keep at least 2 intervals")]
    Window(usize),
    #[error("invalid unhealthy probe count {0}: must be at least 1")]
    UnhealthyAfter(u32),
    #[error("invalid memory fraction {0}: must be above 0 and at most 1")]
    MemoryFraction(f64),
    #[error("invalid memory horizon {0:?}: must be above zero")]
    MemoryHorizon(Duration),
}

/// Result of checking the detector's settings.
pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Settings that decide when an observation becomes a fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorConfig {
    pub phi: PhiSettings,
    /// Suspicion level at which a serving instance is declared hung.
    pub threshold: f64,
    /// Time after an instance is first seen serving during which no suspicion accrues, while
    /// its first heartbeats and probes arrive.
    pub startup_grace: Duration,
    /// An unexpected exit within this window after an earlier one of the same instance id is
    /// a crash loop.
    pub crash_loop_window: Duration,
    /// Consecutive answered probe failures after which a serving instance is unhealthy.
    pub unhealthy_after: u32,
    /// Healthy serving time after which an instance's open incident is closed, so that a
    /// later fault opens a new one.
    pub incident_close_after: Duration,
    /// Interval assumed for a probe whose health check sets none, and expected between
    /// arrivals of an instance that declares neither a heartbeat nor a probe interval.
    pub default_interval: Duration,
    /// Timeout of a probe whose health check sets none.
    pub default_probe_timeout: Duration,
    /// When resident memory counts as exhausted.
    pub memory: MemorySettings,
    /// Time a serving replica's data checksum must keep disagreeing with a strict majority of
    /// its workload's serving replicas before it is declared corrupt. Replicas that update a
    /// data set one after another disagree for a moment.
    pub data_checksum_confirm: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            phi: PhiSettings::default(),
            threshold: 8.0,
            startup_grace: Duration::from_secs(1),
            crash_loop_window: Duration::from_secs(60),
            unhealthy_after: 3,
            incident_close_after: Duration::from_secs(10),
            default_interval: Duration::from_secs(1),
            default_probe_timeout: Duration::from_secs(1),
            memory: MemorySettings::default(),
            data_checksum_confirm: Duration::from_secs(3),
        }
    }
}

impl DetectorConfig {
    /// Checks that the settings can work.
    ///
    /// # Errors
    ///
    /// Returns the first setting that is out of range.
    pub fn validate(&self) -> Result<()> {
        if !self.threshold.is_finite() || self.threshold <= 0.0 {
            return Err(ConfigError::Threshold(self.threshold));
        }
        if self.phi.window < 2 {
            return Err(ConfigError::Window(self.phi.window));
        }
        if self.unhealthy_after == 0 {
            return Err(ConfigError::UnhealthyAfter(self.unhealthy_after));
        }
        let fraction = self.memory.fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(ConfigError::MemoryFraction(fraction));
        }
        if self.memory.horizon.is_zero() {
            return Err(ConfigError::MemoryHorizon(self.memory.horizon));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
    }

    #[test]
    fn zero_threshold_is_rejected() {
        let config = DetectorConfig {
            threshold: 0.0,
            ..DetectorConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::Threshold(0.0)));
    }

    #[test]
    fn memory_fraction_out_of_range_is_rejected() {
        for fraction in [0.0, 1.5, f64::NAN] {
            let config = DetectorConfig {
                memory: MemorySettings {
                    fraction,
                    ..MemorySettings::default()
                },
                ..DetectorConfig::default()
            };
            assert!(
                matches!(config.validate(), Err(ConfigError::MemoryFraction(_))),
                "fraction {fraction} is accepted"
            );
        }
    }

    #[test]
    fn zero_unhealthy_count_is_rejected() {
        let config = DetectorConfig {
            unhealthy_after: 0,
            ..DetectorConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::UnhealthyAfter(0)));
    }
}
