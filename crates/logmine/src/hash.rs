//! A fast non-cryptographic hash for short tokens, and a hasher that passes it through.
//!
//! The hash only speeds up comparisons and map look-ups: every hit is confirmed by comparing the
//! token bytes, so a collision can cost time but never merges two different tokens.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplier of the FxHash family (as used by rustc), chosen for its bit spread.
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hashes `bytes` eight at a time, folding in the length so that zero padding cannot collide.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash = 0u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        hash = mix(hash, word);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        hash = mix(hash, u64::from_le_bytes(buf));
    }
    mix(hash, bytes.len() as u64)
}

fn mix(hash: u64, word: u64) -> u64 {
    (hash.rotate_left(5) ^ word).wrapping_mul(SEED)
}

/// Hasher for keys that already are [`hash_bytes`] values: `u64` keys pass through unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, hash_bytes(bytes));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = mix(0, u64::from(n));
    }
}

/// Builds [`PrehashedHasher`]s for `HashMap`s keyed by token hashes, token counts or template ids.
pub(crate) type BuildPrehashed = BuildHasherDefault<PrehashedHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_separates_padding_from_length() {
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ab\0"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
    }

    #[test]
    fn hash_is_stable_for_equal_bytes() {
        assert_eq!(hash_bytes(b"PacketResponder"), hash_bytes(b"PacketResponder"));
        assert_ne!(hash_bytes(b"PacketResponder"), hash_bytes(b"PacketResponded"));
    }
}
