//! File corruption for fault injection: which bytes of a declared file to overwrite, with
//! what, and what to write back to undo it.

use std::path::{Path, PathBuf};

/// Bytes one corruption overwrites at most.
pub const CORRUPT_LEN: usize = 16;

/// Part of a file that an injection overwrote, with the bytes it held before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCorruption {
    pub path: PathBuf,
    /// Position of the first overwritten byte.
    pub offset: u64,
    /// Bytes at `offset` before the injection.
    pub original: Vec<u8>,
    /// Bytes the injection wrote at `offset`.
    pub written: Vec<u8>,
}

/// Returns the range to overwrite in a file of `len` bytes, as (offset, length): up to
/// [`CORRUPT_LEN`] bytes from the middle, so a header that a reader checks first stays
/// intact and the damage shows only in the content. `None` for an empty file.
pub fn range(len: u64) -> Option<(u64, usize)> {
    if len == 0 {
        return None;
    }
    let count = usize::try_from(len).map_or(CORRUPT_LEN, |len| len.min(CORRUPT_LEN));
    let offset = (len / 2).min(len - count as u64);
    Some((offset, count))
}

/// Returns the bytes that replace `original`: each one inverted, so every byte differs.
pub fn replacement(original: &[u8]) -> Vec<u8> {
    original.iter().map(|byte| !byte).collect()
}

/// Returns the corruption that overwriting a file of `content` at `path` makes: the bytes of
/// [`range`] and their [`replacement`]. `None` for an empty file.
pub fn planned(path: &Path, content: &[u8]) -> Option<FileCorruption> {
    let (offset, count) = range(content.len() as u64)?;
    let start = usize::try_from(offset).ok()?;
    let original = content.get(start..start + count)?.to_vec();
    Some(FileCorruption {
        path: path.to_owned(),
        offset,
        written: replacement(&original),
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_sits_in_the_middle() {
        assert_eq!(range(1000), Some((500, CORRUPT_LEN)));
    }

    #[test]
    fn range_fits_a_short_file() {
        assert_eq!(range(20), Some((4, CORRUPT_LEN)));
        assert_eq!(range(5), Some((0, 5)));
        assert_eq!(range(1), Some((0, 1)));
    }

    #[test]
    fn empty_file_has_no_range() {
        assert_eq!(range(0), None);
    }

    #[test]
    fn planned_corruption_inverts_the_middle() {
        let corruption = planned(Path::new("data.txt"), b"0123456789").expect("a range");
        assert_eq!(corruption.offset, 0);
        assert_eq!(corruption.original, b"0123456789");
        assert_eq!(corruption.written, replacement(b"0123456789"));
        assert_eq!(planned(Path::new("empty.txt"), b""), None);
    }

    #[test]
    fn replacement_changes_every_byte() {
        let original = b"pristine\x00\xff";
        let replaced = replacement(original);
        assert_eq!(replaced.len(), original.len());
        for (before, after) in original.iter().zip(&replaced) {
            assert_ne!(before, after);
        }
        assert_eq!(replacement(&replaced), original);
    }
}
