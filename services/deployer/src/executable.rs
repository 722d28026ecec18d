//! Finding executables on `PATH` and hashing files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// Resolves `command` the way `execvp` does: a name with a `/` is a path, any other name is
/// looked up in the directories of `path` (the value of `PATH`), and the first executable
/// regular file wins. Returns `None` when nothing matches.
pub fn resolve(command: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if command.contains('/') {
        let candidate = PathBuf::from(command);
        return is_executable(&candidate).then(|| absolute(candidate));
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
        .map(absolute)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// sha256 of a file's content as `sha256:<hex>`. Blocks on file I/O: call it from a blocking
/// thread, as [`DigestCache::sha256`] does.
///
/// # Errors
///
/// Returns the I/O error when the file cannot be read.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// Metadata that identifies a version of a file's content without reading it. Every write
/// changes the modification and the change time. User space can set the modification time
/// back but not the change time, so an unchanged stamp means unchanged content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// sha256 digests of files, computed again only when a file's [`FileStamp`] changed, so
/// starting a large executable again does not hash it again.
#[derive(Clone, Debug, Default)]
pub struct DigestCache {
    entries: Arc<Mutex<HashMap<PathBuf, (FileStamp, String)>>>,
}

impl DigestCache {
    /// sha256 of `path` as `sha256:<hex>`, computed on a blocking thread when the file
    /// changed since the last call.
    ///
    /// # Errors
    ///
    /// Returns the I/O error when the file cannot be read.
    pub async fn sha256(&self, path: PathBuf) -> std::io::Result<String> {
        let cache = self.clone();
        tokio::task::spawn_blocking(move || cache.sha256_blocking(&path))
            .await
            .map_err(std::io::Error::other)?
    }

    fn sha256_blocking(&self, path: &Path) -> std::io::Result<String> {
        let before = FileStamp::of(path)?;
        if let Some((stamp, digest)) = self.entries().get(path)
            && *stamp == before
        {
            return Ok(digest.clone());
        }
        let digest = sha256_file(path)?;
        // A file that changed while it was read is hashed again on the next call.
        if FileStamp::of(path)? == before {
            self.entries()
                .insert(path.to_owned(), (before, digest.clone()));
        }
        Ok(digest)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (FileStamp, String)>> {
        self.entries.lock().expect("digest cache lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_looked_up_on_path() {
        let path = std::env::var_os("PATH");
        let found = resolve("sh", path.as_deref()).expect("sh is on PATH");
        assert!(found.is_absolute(), "{found:?}");
        assert!(found.ends_with("sh"), "{found:?}");
    }

    #[test]
    fn missing_name_is_not_found() {
        let path = std::env::var_os("PATH");
        assert_eq!(resolve("aro-no-such-program", path.as_deref()), None);
        assert_eq!(resolve("sh", None), None);
    }

    #[test]
    fn paths_must_be_executable_files() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"data").expect("writing the file");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644))
            .expect("setting permissions");
        let plain = plain.to_str().expect("temporary paths are UTF-8");
        assert!(resolve("/bin/sh", None).is_some());
        assert!(resolve(plain, None).is_none());
        assert!(resolve("/", None).is_none());
    }

    #[tokio::test]
    async fn cache_notices_changed_content() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("artifact");
        std::fs::write(&file, b"abc").expect("writing the file");
        let cache = DigestCache::default();
        let first = cache.sha256(file.clone()).await.expect("readable");
        let again = cache.sha256(file.clone()).await.expect("readable");
        std::fs::write(&file, b"abd").expect("rewriting the file");
        let changed = cache.sha256(file.clone()).await.expect("readable");
        assert_eq!(first, again);
        assert_ne!(first, changed);
        assert_eq!(changed, sha256_file(&file).expect("readable"));
    }

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("abc");
        std::fs::write(&file, b"abc").expect("writing the file");
        assert_eq!(
            sha256_file(&file).expect("the file is readable"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
