//! Corrupting a declared file on purpose, and undoing it.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::domain::corruption::{self, FileCorruption};

/// Errors of corrupting a file.
#[derive(Debug, thiserror::Error)]
pub enum CorruptionError {
    #[error("declared file {path} is empty: there are no bytes to overwrite")]
    Empty { path: String },
    #[error("failed to corrupt declared file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result of undoing a corruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undone {
    /// The original bytes are back.
    Restored,
    /// The overwritten range no longer contains the injected bytes (the file was replaced or
    /// written since), so it was left as it is.
    ChangedSince,
}

/// Overwrites up to [`corruption::CORRUPT_LEN`] bytes in the middle of `path` with their
/// inverse, in place, and returns what it needs to undo that.
///
/// # Errors
///
/// Fails for an empty file and on any I/O error; the file is unchanged unless the write
/// itself failed halfway.
pub fn corrupt(path: &Path) -> Result<FileCorruption, CorruptionError> {
    let io = |source| CorruptionError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let (offset, count) = corruption::range(len).ok_or_else(|| CorruptionError::Empty {
        path: path.display().to_string(),
    })?;
    let mut original = vec![0; count];
    file.read_exact_at(&mut original, offset).map_err(io)?;
    let written = corruption::replacement(&original);
    file.write_all_at(&written, offset).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(FileCorruption {
        path: path.to_owned(),
        offset,
        original,
        written,
    })
}

/// Writes the original bytes back, when the range still contains the injected ones.
///
/// # Errors
///
/// Returns the I/O error of reading or writing the file.
pub fn undo(corruption: &FileCorruption) -> std::io::Result<Undone> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&corruption.path)?;
    let mut current = vec![0; corruption.written.len()];
    let still_corrupt = file.read_exact_at(&mut current, corruption.offset).is_ok()
        && current == corruption.written;
    if !still_corrupt {
        return Ok(Undone::ChangedSince);
    }
    file.write_all_at(&corruption.original, corruption.offset)?;
    file.sync_data()?;
    Ok(Undone::Restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("data.txt");
        std::fs::write(&path, content).expect("writing the file");
        (dir, path)
    }

    #[test]
    fn corruption_changes_bytes_and_undo_restores_them() {
        let content = b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec();
        let (_dir, path) = file_with(&content);
        let corruption = corrupt(&path).expect("corrupting the file");
        let corrupted = std::fs::read(&path).expect("reading the file");
        assert_eq!(corrupted.len(), content.len());
        assert_ne!(corrupted, content);
        assert_eq!(undo(&corruption).expect("undoing"), Undone::Restored);
        assert_eq!(std::fs::read(&path).expect("reading the file"), content);
    }

    #[test]
    fn undo_leaves_a_rewritten_file_alone() {
        let (_dir, path) = file_with(b"0123456789abcdefghijklmnopqrstuvwxyz");
        let corruption = corrupt(&path).expect("corrupting the file");
        std::fs::write(&path, b"replaced by the operator").expect("rewriting the file");
        assert_eq!(undo(&corruption).expect("undoing"), Undone::ChangedSince);
        assert_eq!(
            std::fs::read(&path).expect("reading the file"),
            b"replaced by the operator"
        );
    }

    #[test]
    fn empty_file_cannot_be_corrupted() {
        let (_dir, path) = file_with(b"");
        let error = corrupt(&path).expect_err("nothing to overwrite");
        assert!(error.to_string().contains("is empty"), "{error}");
    }

    #[test]
    fn missing_file_names_its_path() {
        let error = corrupt(Path::new("/nonexistent/aro/data.txt")).expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/aro/data.txt"),
            "{error}"
        );
    }
}
