//! Corrupting a declared file on purpose, and undoing it: a file of this host directly, or
//! any instance's file through its runtime (a file inside the container for a container).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::backend::{self, InstanceKey, Runtime};
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
    #[error("failed to corrupt declared file {path}: {source}")]
    Runtime {
        path: String,
        #[source]
        source: Box<backend::Error>,
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

/// Does what [`corrupt`] does to the file `path` of instance `key`, through its runtime:
/// a file of this host for a local process, a file inside the container for a container.
///
/// # Errors
///
/// Fails for an empty file and when the runtime cannot read or write it; the file is
/// unchanged unless the write itself failed halfway.
pub async fn corrupt_through<R: Runtime>(
    runtime: &R,
    key: &InstanceKey,
    path: &Path,
) -> Result<FileCorruption, CorruptionError> {
    let failed = |source| CorruptionError::Runtime {
        path: path.display().to_string(),
        source: Box::new(source),
    };
    let content = runtime.read_file(key, path).await.map_err(failed)?;
    let (offset, count) =
        corruption::range(content.len() as u64).ok_or_else(|| CorruptionError::Empty {
            path: path.display().to_string(),
        })?;
    let start = usize::try_from(offset).expect("the offset lies within the file read");
    let original = content[start..start + count].to_vec();
    let written = corruption::replacement(&original);
    runtime
        .write_file_at(key, path, offset, &written)
        .await
        .map_err(failed)?;
    Ok(FileCorruption {
        path: path.to_owned(),
        offset,
        original,
        written,
    })
}

/// Does what [`undo`] does, through the runtime of instance `key`.
///
/// # Errors
///
/// Returns the runtime's error of reading or writing the file.
pub async fn undo_through<R: Runtime>(
    runtime: &R,
    key: &InstanceKey,
    corruption: &FileCorruption,
) -> backend::Result<Undone> {
    let content = runtime.read_file(key, &corruption.path).await?;
    let still_corrupt = usize::try_from(corruption.offset)
        .ok()
        .and_then(|start| content.get(start..start + corruption.written.len()))
        .is_some_and(|current| current == corruption.written);
    if !still_corrupt {
        return Ok(Undone::ChangedSince);
    }
    runtime
        .write_file_at(
            key,
            &corruption.path,
            corruption.offset,
            &corruption.original,
        )
        .await?;
    Ok(Undone::Restored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::process::ProcessRuntime;
    use crate::executable::DigestCache;
    use crate::logs::LogSink;
    use crate::metrics::Metrics;

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

    fn runtime() -> ProcessRuntime {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = std::sync::Arc::new(Metrics::register(&mut registry));
        let (sink, _queue) = LogSink::new(metrics);
        ProcessRuntime::new(sink, DigestCache::default())
    }

    fn key() -> InstanceKey {
        InstanceKey {
            workload: "web".to_owned(),
            instance: "web-1".to_owned(),
            generation: 1,
        }
    }

    #[tokio::test]
    async fn corruption_through_the_runtime_is_undone() {
        let runtime = runtime();
        let content = b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec();
        let (_dir, path) = file_with(&content);
        let corruption = corrupt_through(&runtime, &key(), &path)
            .await
            .expect("corrupting the file");
        let corrupted = std::fs::read(&path).expect("reading the file");
        assert_eq!(corrupted.len(), content.len());
        assert_ne!(corrupted, content);
        let undone = undo_through(&runtime, &key(), &corruption)
            .await
            .expect("undoing");
        assert_eq!(undone, Undone::Restored);
        assert_eq!(std::fs::read(&path).expect("reading the file"), content);
    }

    #[tokio::test]
    async fn undo_through_the_runtime_leaves_a_rewritten_file_alone() {
        let runtime = runtime();
        let (_dir, path) = file_with(b"0123456789abcdefghijklmnopqrstuvwxyz");
        let corruption = corrupt_through(&runtime, &key(), &path)
            .await
            .expect("corrupting the file");
        std::fs::write(&path, b"replaced by the operator").expect("rewriting the file");
        let undone = undo_through(&runtime, &key(), &corruption)
            .await
            .expect("undoing");
        assert_eq!(undone, Undone::ChangedSince);
        assert_eq!(
            std::fs::read(&path).expect("reading the file"),
            b"replaced by the operator"
        );
    }

    #[tokio::test]
    async fn empty_file_cannot_be_corrupted_through_the_runtime() {
        let (_dir, path) = file_with(b"");
        let error = corrupt_through(&runtime(), &key(), &path)
            .await
            .expect_err("nothing to overwrite");
        assert!(error.to_string().contains("is empty"), "{error}");
    }

    #[tokio::test]
    async fn missing_file_names_its_path_through_the_runtime() {
        let error = corrupt_through(&runtime(), &key(), Path::new("/nonexistent/aro/data.txt"))
            .await
            .expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/aro/data.txt"),
            "{error}"
        );
    }
}
