//! A workload's checksum files: their digests at start-up and a copy of their content, from
//! which a fresh instance gets them back when they changed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::executable::DigestCache;

/// Largest file of which the deployer keeps a copy in memory. A larger file is only hashed,
/// and a fresh instance cannot get its content back.
pub const MAX_COPY: u64 = 16 << 20;

/// A checksum file as it was when the deployer started.
#[derive(Clone, Debug)]
pub struct ChecksumFile {
    pub path: PathBuf,
    /// sha256 of the content at start-up, `sha256:<hex>`.
    pub digest: String,
    /// The content at start-up, for files of at most [`MAX_COPY`] bytes.
    pub pristine: Option<Arc<[u8]>>,
}

/// Reads `path` and returns its digest, with a copy of its content when it is small enough.
/// Hashes through `digests` when it is not.
///
/// # Errors
///
/// Returns the I/O error when the file cannot be read.
pub async fn load(path: PathBuf, digests: &DigestCache) -> std::io::Result<ChecksumFile> {
    let size = tokio::fs::metadata(&path).await?.len();
    if size > MAX_COPY {
        let digest = digests.sha256(path.clone()).await?;
        return Ok(ChecksumFile {
            path,
            digest,
            pristine: None,
        });
    }
    let content = tokio::fs::read(&path).await?;
    let digest = format!("sha256:{:x}", Sha256::digest(&content));
    Ok(ChecksumFile {
        path,
        digest,
        pristine: Some(Arc::from(content)),
    })
}

/// Writes the start-up content of `file` back. The copy goes to a temporary file in the same
/// directory, which then replaces the file in one rename, so no reader sees a half-written
/// file. The file keeps its permissions. Returns false when no copy was kept.
///
/// # Errors
///
/// Returns the I/O error of writing or renaming.
pub fn restore(file: &ChecksumFile) -> std::io::Result<bool> {
    let Some(pristine) = &file.pristine else {
        return Ok(false);
    };
    let directory = file.path.parent().unwrap_or(Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
    temporary.write_all(pristine)?;
    temporary.as_file().sync_all()?;
    if let Ok(metadata) = std::fs::metadata(&file.path) {
        std::fs::set_permissions(temporary.path(), metadata.permissions())?;
    }
    temporary.persist(&file.path).map_err(|error| error.error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn restore_writes_the_start_up_content_back() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("data.txt");
        std::fs::write(&path, b"pristine").expect("writing the file");
        let file = load(path.clone(), &DigestCache::default())
            .await
            .expect("reading the file");
        std::fs::write(&path, b"tampered").expect("changing the file");
        assert!(restore(&file).expect("restoring the file"));
        assert_eq!(std::fs::read(&path).expect("reading it again"), b"pristine");
        assert_eq!(
            file.digest,
            "sha256:9f2235c7754a56a9f0bc89dc2eb821ba0e52189db6dba93ee03d22337ae9739c"
        );
    }

    #[tokio::test]
    async fn restore_keeps_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("data.txt");
        std::fs::write(&path, b"pristine").expect("writing the file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("setting permissions");
        let file = load(path.clone(), &DigestCache::default())
            .await
            .expect("reading the file");
        restore(&file).expect("restoring the file");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn large_file_is_hashed_without_a_copy() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("large.bin");
        let content = vec![7u8; usize::try_from(MAX_COPY).expect("fits") + 1];
        std::fs::write(&path, &content).expect("writing the file");
        let file = load(path.clone(), &DigestCache::default())
            .await
            .expect("reading the file");
        assert!(file.pristine.is_none());
        assert_eq!(
            file.digest,
            format!("sha256:{:x}", Sha256::digest(&content))
        );
        assert!(!restore(&file).expect("nothing to restore"));
    }
}
