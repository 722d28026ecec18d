//! Settings of the anomaly scorer, with their defaults and validation.

use std::time::Duration;

use crate::config::{ConfigError, MinerConfig, at_least_one, invalid};
use crate::scorer::lexicon::DEFAULT_ERROR_STEMS;

/// Settings of a [`Scorer`](crate::Scorer).
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerConfig {
    /// Settings of the scorer's template miner.
    pub miner: MinerConfig,
    /// Word stems that make a template error-like, matched case-insensitively against the start
    /// of each word of the template. Default [`DEFAULT_ERROR_STEMS`].
    pub error_stems: Vec<String>,
    /// Time constant of the recent rate of a template on an instance. Default 10 s.
    pub burst_window: Duration,
    /// Time constant of the baseline rate, longer than `burst_window`. Default 10 min.
    pub baseline_window: Duration,
    /// How many times its baseline the recent rate must reach to count as a burst, at least 1.
    /// Default 8.
    pub burst_factor: f64,
    /// Lines a burst must hold within about one `burst_window`, at least 1. Default 20.
    pub burst_min_lines: f64,
    /// Floor of the baseline rate in lines per second, so that a template never seen before
    /// must arrive at `burst_factor` times this rate. Default 0.05 (three lines a minute).
    pub min_baseline_rate: f64,
    /// How long an instance must have been watched before bursts on it count, and how long the
    /// scorer must have run before a template seen on one instance only counts. Default 60 s.
    pub warmup: Duration,
    /// After an anomaly on an instance, further anomalies on it are only counted for this long.
    /// Default 60 s.
    pub cooldown: Duration,
    /// Lines of a template on one instance before it counts as seen on that instance only, at
    /// least 1. Default 10.
    pub solo_min_lines: u64,
    /// Healthy other instances needed before a template seen on one instance only counts, at
    /// least 1. An instance is healthy while it sends lines and is outside a cool-down.
    /// Default 2.
    pub solo_min_peers: usize,
    /// An instance silent for this long is no longer a healthy peer, and its state is the first
    /// dropped when `max_instances` is reached. Default 5 min.
    pub instance_idle: Duration,
    /// Maximum instances tracked, at least 1; a new instance beyond it replaces the one silent
    /// for longest. Default 1024.
    pub max_instances: usize,
    /// Maximum (instance, template) rates tracked, at least 1; when full, rates idle for
    /// `instance_idle` are dropped, and new pairs go untracked until there is room.
    /// Default 65 536.
    pub max_rates: usize,
    /// Sample lines kept per instance and attached to an anomaly, at least 1. Default 5.
    pub max_samples: usize,
    /// Maximum bytes of one sample line, at least 1; longer lines are cut at a character
    /// boundary. Default 512.
    pub max_sample_bytes: usize,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            miner: MinerConfig::default(),
            error_stems: DEFAULT_ERROR_STEMS
                .iter()
                .map(|stem| (*stem).to_owned())
                .collect(),
            burst_window: Duration::from_secs(10),
            baseline_window: Duration::from_secs(600),
            burst_factor: 8.0,
            burst_min_lines: 20.0,
            min_baseline_rate: 0.05,
            warmup: Duration::from_secs(60),
            cooldown: Duration::from_secs(60),
            solo_min_lines: 10,
            solo_min_peers: 2,
            instance_idle: Duration::from_secs(300),
            max_instances: 1024,
            max_rates: 65_536,
            max_samples: 5,
            max_sample_bytes: 512,
        }
    }
}

impl ScorerConfig {
    /// Checks every field against its allowed range.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Invalid`] naming the first field out of range and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.miner.validate()?;
        self.validate_burst()?;
        self.validate_evidence()
    }

    fn validate_burst(&self) -> Result<(), ConfigError> {
        if self.burst_window.is_zero() {
            let value = format!("{:?}", self.burst_window);
            return Err(invalid("burst_window", value, "more than zero"));
        }
        if self.baseline_window <= self.burst_window {
            let value = format!("{:?}", self.baseline_window);
            return Err(invalid(
                "baseline_window",
                value,
                "longer than burst_window",
            ));
        }
        const AT_LEAST_ONE: &str = "a finite number of at least 1";
        finite_at_least("burst_factor", self.burst_factor, 1.0, AT_LEAST_ONE)?;
        finite_at_least("burst_min_lines", self.burst_min_lines, 1.0, AT_LEAST_ONE)?;
        let expected = "a finite number of at least 0";
        finite_at_least("min_baseline_rate", self.min_baseline_rate, 0.0, expected)
    }

    fn validate_evidence(&self) -> Result<(), ConfigError> {
        if self.error_stems.iter().any(String::is_empty) {
            let value = format!("{:?}", self.error_stems);
            return Err(invalid("error_stems", value, "no empty stem"));
        }
        if self.solo_min_lines == 0 {
            return Err(invalid("solo_min_lines", self.solo_min_lines, "at least 1"));
        }
        at_least_one("solo_min_peers", self.solo_min_peers)?;
        at_least_one("max_instances", self.max_instances)?;
        at_least_one("max_rates", self.max_rates)?;
        at_least_one("max_samples", self.max_samples)?;
        at_least_one("max_sample_bytes", self.max_sample_bytes)
    }
}

fn finite_at_least(
    field: &'static str,
    value: f64,
    min: f64,
    expected: &'static str,
) -> Result<(), ConfigError> {
    if value >= min && value.is_finite() {
        return Ok(());
    }
    Err(invalid(field, value, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scorer_config_is_valid() {
        assert!(ScorerConfig::default().validate().is_ok());
    }

    #[test]
    fn validate_rejects_short_baseline() {
        let config = ScorerConfig {
            baseline_window: Duration::from_secs(5),
            ..ScorerConfig::default()
        };
        let message = config
            .validate()
            .expect_err("5 s is shorter than 10 s")
            .to_string();
        assert_eq!(
            message,
            "invalid config: baseline_window = 5s: expected longer than burst_window"
        );
    }

    #[test]
    fn validate_rejects_bad_numbers() {
        for config in [
            ScorerConfig {
                burst_factor: 0.5,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                burst_factor: f64::NAN,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                burst_min_lines: 0.0,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                min_baseline_rate: -1.0,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                burst_window: Duration::ZERO,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                max_samples: 0,
                ..ScorerConfig::default()
            },
            ScorerConfig {
                error_stems: vec![String::new()],
                ..ScorerConfig::default()
            },
        ] {
            assert!(config.validate().is_err(), "{config:?} should be rejected");
        }
    }

    #[test]
    fn validate_checks_miner_settings() {
        let mut config = ScorerConfig::default();
        config.miner.max_templates = 0;
        assert!(config.validate().is_err());
    }
}
