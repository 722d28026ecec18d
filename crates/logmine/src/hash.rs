//! A fast non-cryptographic hash for short tokens, and a `Hasher` for the crate's maps.
//!
//! The hash only speeds up comparisons and map look-ups: every hit is confirmed by comparing the
//! token bytes, so a collision can cost time but never merges two different tokens. Keys come
//! from the crate's own lines and counters, so the maps need no protection against chosen keys.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplier of the FxHash family (as used by rustc), chosen for its bit spread.
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hashes `bytes` eight at a time. The length is folded in, so that inputs differing only in
/// trailing zero bytes hash apart.
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

/// The FxHash-style `Hasher` of the crate's maps. It mixes integers with one multiplication and
/// byte strings with [`hash_bytes`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, hash_bytes(bytes));
    }

    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }
}

/// Builds [`FastHasher`]s.
pub(crate) type BuildFastHasher = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn hash_separates_padding_from_length() {
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ab\0"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
    }

    #[test]
    fn hash_is_stable_for_equal_bytes() {
        assert_eq!(
            hash_bytes(b"PacketResponder"),
            hash_bytes(b"PacketResponder")
        );
        assert_ne!(
            hash_bytes(b"PacketResponder"),
            hash_bytes(b"PacketResponded")
        );
    }

    #[test]
    fn hasher_spreads_sequential_ids_into_high_bits() {
        let build = BuildFastHasher::default();
        let top_bits: std::collections::HashSet<u64> =
            (0..64u64).map(|id| build.hash_one(id) >> 57).collect();
        assert!(
            top_bits.len() > 16,
            "only {} distinct top bits",
            top_bits.len()
        );
    }
}
