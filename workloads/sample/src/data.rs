//! The data set the workload serves, and its checksum, which every heartbeat reports. Replicas
//! that load the same data report the same checksum, so the checksum of a replica whose data
//! went bad differs from the others'.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Name of the data set in heartbeats.
pub(crate) const DATA_SET: &str = "primary";

/// Records in the generated data set.
const GENERATED_RECORDS: u64 = 4096;

/// The data set, loaded once at start.
#[derive(Debug)]
pub(crate) struct DataSet {
    bytes: Vec<u8>,
    checksum: String,
    /// Checksum of the data with one byte flipped, reported while the data counts as
    /// corrupt.
    corrupt_checksum: String,
    corrupt: AtomicBool,
}

impl DataSet {
    /// Reads the data set from `path`, or generates it when `path` is `None`.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be read.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let bytes = match path {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("failed to read the data file {}", path.display()))?,
            None => generate(),
        };
        Ok(Self::new(bytes))
    }

    fn new(bytes: Vec<u8>) -> Self {
        let checksum = sha256(&bytes);
        let corrupt_checksum = sha256(&corrupted(&bytes));
        Self {
            bytes,
            checksum,
            corrupt_checksum,
            corrupt: AtomicBool::new(false),
        }
    }

    /// Checksum of the data as served now, `sha256:<hex>`.
    pub(crate) fn checksum(&self) -> &str {
        if self.is_corrupt() {
            &self.corrupt_checksum
        } else {
            &self.checksum
        }
    }

    /// Returns the data as served now.
    pub(crate) fn content(&self) -> Vec<u8> {
        if self.is_corrupt() {
            corrupted(&self.bytes)
        } else {
            self.bytes.clone()
        }
    }

    pub(crate) fn is_corrupt(&self) -> bool {
        self.corrupt.load(Ordering::Relaxed)
    }

    /// Makes the data corrupt (`true`) or intact again (`false`).
    pub(crate) fn set_corrupt(&self, corrupt: bool) {
        self.corrupt.store(corrupt, Ordering::Relaxed);
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Returns `bytes` with the lowest bit of the middle byte flipped: a single bit error, which
/// a checksum catches and a glance does not. An empty data set gets one byte.
fn corrupted(bytes: &[u8]) -> Vec<u8> {
    let mut copy = bytes.to_vec();
    match copy.get_mut(bytes.len() / 2) {
        Some(byte) => *byte ^= 1,
        None => copy.push(1),
    }
    copy
}

/// Generates the same data set on every call: one line per record with a pseudo-random value
/// from a fixed seed (the SplitMix64 sequence).
fn generate() -> Vec<u8> {
    let mut state: u64 = 0x0123_4567_89AB_CDEF;
    let mut text = String::new();
    for record in 0..GENERATED_RECORDS {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = state;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^= value >> 31;
        text.push_str(&format!("record-{record:04} {value:016x}\n"));
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_data_is_the_same_every_time() {
        let first = DataSet::load(None).expect("generating");
        let second = DataSet::load(None).expect("generating");
        assert_eq!(first.checksum(), second.checksum());
        assert!(first.checksum().starts_with("sha256:"));
        assert_eq!(first.content().len(), 4096 * 29);
    }

    #[test]
    fn corruption_changes_checksum_and_content_until_undone() {
        let data = DataSet::new(b"records".to_vec());
        let intact = data.checksum().to_owned();
        data.set_corrupt(true);
        assert_ne!(data.checksum(), intact);
        assert_ne!(data.content(), b"records");
        data.set_corrupt(false);
        assert_eq!(data.checksum(), intact);
        assert_eq!(data.content(), b"records");
    }

    #[test]
    fn empty_data_can_be_corrupted() {
        let data = DataSet::new(Vec::new());
        let intact = data.checksum().to_owned();
        data.set_corrupt(true);
        assert_ne!(data.checksum(), intact);
    }
}
