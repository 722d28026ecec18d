//! Data checksums and resident memory that a heartbeat reports besides liveness, checked
//! before any of it is stored.

use std::collections::{BTreeMap, HashMap};

use super::digest::{Digest, DigestError, quote};

/// Data sets one heartbeat may report, so a heartbeat cannot make the detector store an
/// unbounded map.
pub(crate) const MAX_DATA_SETS: usize = 64;

/// Maximum length of a data set name in bytes.
pub(crate) const MAX_DATA_SET_NAME_BYTES: usize = 128;

/// Errors in a heartbeat's report.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("invalid data_checksums: {count} data sets, at most {MAX_DATA_SETS} are allowed")]
    TooManyDataSets { count: usize },
    #[error("invalid data_checksums key {name:?}: {reason}")]
    InvalidDataSetName { name: String, reason: &'static str },
    #[error("invalid data_checksums[{name:?}] = {value:?}: expected sha256:<64 hex digits>")]
    InvalidChecksum { name: String, value: String },
}

/// Data checksums and resident memory of one heartbeat, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatReport {
    /// Checksum of each data set the instance serves, by data set name.
    pub data_checksums: BTreeMap<String, Digest>,
    /// Resident memory in bytes; `None` when the heartbeat did not report it (0 on the wire).
    pub rss_bytes: Option<u64>,
}

impl HeartbeatReport {
    /// Checks the heartbeat's `data_checksums` and `rss_bytes` fields.
    ///
    /// # Errors
    ///
    /// Returns the first invalid entry: more than [`MAX_DATA_SETS`] data sets, an empty, too
    /// long or control-character data set name, or a checksum that is not
    /// `sha256:<64 hex digits>`.
    pub fn parse(
        data_checksums: &HashMap<String, String>,
        rss_bytes: u64,
    ) -> Result<Self, ReportError> {
        if data_checksums.len() > MAX_DATA_SETS {
            return Err(ReportError::TooManyDataSets {
                count: data_checksums.len(),
            });
        }
        let mut parsed = BTreeMap::new();
        for (name, value) in data_checksums {
            check_name(name)?;
            let digest = Digest::parse(value).map_err(|DigestError::Invalid { value }| {
                ReportError::InvalidChecksum {
                    name: name.clone(),
                    value,
                }
            })?;
            parsed.insert(name.clone(), digest);
        }
        Ok(Self {
            data_checksums: parsed,
            rss_bytes: (rss_bytes > 0).then_some(rss_bytes),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.data_checksums.is_empty() && self.rss_bytes.is_none()
    }
}

fn check_name(name: &str) -> Result<(), ReportError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.len() > MAX_DATA_SET_NAME_BYTES {
        "the name is longer than 128 bytes"
    } else if name.chars().any(char::is_control) {
        "the name contains a control character"
    } else {
        return Ok(());
    };
    Err(ReportError::InvalidDataSetName {
        name: quote(name),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn checksums(entries: &[(&str, &str)]) -> HashMap<String, String> {
        entries
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn valid_report_is_parsed() {
        let report =
            HeartbeatReport::parse(&checksums(&[("orders", VALID)]), 4096).expect("a valid report");
        assert_eq!(report.data_checksums["orders"].as_str(), VALID);
        assert_eq!(report.rss_bytes, Some(4096));
    }

    #[test]
    fn zero_rss_means_unreported() {
        let report = HeartbeatReport::parse(&HashMap::new(), 0).expect("an empty report");
        assert_eq!(report.rss_bytes, None);
        assert!(report.is_empty());
    }

    #[test]
    fn bad_checksum_names_data_set_and_value() {
        let error = HeartbeatReport::parse(&checksums(&[("orders", "md5:abc")]), 0)
            .expect_err("md5 is rejected");
        assert_eq!(
            error.to_string(),
            "invalid data_checksums[\"orders\"] = \"md5:abc\": expected sha256:<64 hex digits>"
        );
    }

    #[test]
    fn empty_data_set_name_is_rejected() {
        let error = HeartbeatReport::parse(&checksums(&[("", VALID)]), 0).expect_err("empty name");
        assert_eq!(
            error.to_string(),
            "invalid data_checksums key \"\": the name is empty"
        );
    }

    #[test]
    fn control_characters_in_name_are_rejected() {
        let error =
            HeartbeatReport::parse(&checksums(&[("a\nb", VALID)]), 0).expect_err("newline in name");
        assert!(matches!(error, ReportError::InvalidDataSetName { .. }));
    }

    #[test]
    fn too_many_data_sets_are_rejected() {
        let many: HashMap<String, String> = (0..=MAX_DATA_SETS)
            .map(|n| (format!("set-{n}"), VALID.to_owned()))
            .collect();
        let error = HeartbeatReport::parse(&many, 0).expect_err("65 data sets");
        assert_eq!(error, ReportError::TooManyDataSets { count: 65 });
    }
}
