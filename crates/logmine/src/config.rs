//! Settings of the template miner, with their defaults and validation.

/// Errors of configuration validation, for the miner and the scorer alike.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field has a value outside its allowed range.
    #[error("invalid config: {field} = {value}: expected {expected}")]
    Invalid {
        /// The name of the field.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
}

/// Result alias of configuration validation.
pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The largest accepted `max_line_bytes`: masked lines are indexed with `u32` offsets, and masking
/// can lengthen a line at most threefold (one digit becomes `<*>`).
const MAX_LINE_BYTES_LIMIT: usize = (u32::MAX / 4) as usize;

/// Settings of a [`Miner`](crate::Miner).
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Minimum similarity for a line to join a template, in `0.0..=1.0`. Similarity is the share
    /// of the template's constant tokens that the line repeats at the same positions. Default 0.6.
    pub similarity_threshold: f64,
    /// Number of leading tokens that key the prefix tree below the token-count level, at least 1.
    /// Default 2.
    pub prefix_depth: usize,
    /// Maximum children of one prefix-tree node, at least 1: further distinct tokens at that level
    /// share the node's wildcard child. Default 100.
    pub max_children: usize,
    /// Maximum number of templates kept, at least 1: creating one more evicts the least recently
    /// matched template. Default 10 000.
    pub max_templates: usize,
    /// Maximum line length in bytes, at least 1: a longer line is cut at the last character
    /// boundary at or below it and counted in `MinerStats::truncated_lines`. Default 4096.
    pub max_line_bytes: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            similarity_threshold: 0.6,
            prefix_depth: 2,
            max_children: 100,
            max_templates: 10_000,
            max_line_bytes: 4096,
        }
    }
}

impl MinerConfig {
    /// Checks every field against its allowed range.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::Invalid`] naming the first field out of range and its value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.similarity_threshold) {
            return Err(invalid(
                "similarity_threshold",
                self.similarity_threshold,
                "a number from 0.0 to 1.0",
            ));
        }
        at_least_one("prefix_depth", self.prefix_depth)?;
        at_least_one("max_children", self.max_children)?;
        at_least_one("max_templates", self.max_templates)?;
        at_least_one("max_line_bytes", self.max_line_bytes)?;
        if self.max_line_bytes > MAX_LINE_BYTES_LIMIT {
            return Err(invalid(
                "max_line_bytes",
                self.max_line_bytes,
                "at most 1073741823 bytes",
            ));
        }
        Ok(())
    }
}

pub(crate) fn at_least_one(field: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(invalid(field, value, "at least 1"));
    }
    Ok(())
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl ToString,
    expected: &'static str,
) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(MinerConfig::default().validate().is_ok());
    }

    #[test]
    fn validate_names_field_and_value() {
        let config = MinerConfig {
            similarity_threshold: 1.5,
            ..MinerConfig::default()
        };
        let message = config
            .validate()
            .expect_err("1.5 is out of range")
            .to_string();
        assert_eq!(
            message,
            "invalid config: similarity_threshold = 1.5: expected a number from 0.0 to 1.0"
        );
    }

    #[test]
    fn validate_rejects_zero_sizes() {
        for config in [
            MinerConfig {
                prefix_depth: 0,
                ..MinerConfig::default()
            },
            MinerConfig {
                max_children: 0,
                ..MinerConfig::default()
            },
            MinerConfig {
                max_templates: 0,
                ..MinerConfig::default()
            },
            MinerConfig {
                max_line_bytes: 0,
                ..MinerConfig::default()
            },
        ] {
            assert!(config.validate().is_err(), "{config:?} should be rejected");
        }
    }

    #[test]
    fn validate_rejects_nan_threshold() {
        let config = MinerConfig {
            similarity_threshold: f64::NAN,
            ..MinerConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
