//! sha256 of files, read in chunks on blocking threads and paced by a byte-rate limit, so
//! checksum checks neither stall the async executor nor saturate the disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::domain::{Digest, TokenBucket};
use crate::metrics::Metrics;

/// Bytes read from a file at once. A file larger than this is hashed chunk by chunk and never
/// held in memory whole.
const CHUNK_BYTES: usize = 1 << 20;

/// Files hashed at the same time, which bounds the chunk buffers in memory.
const CONCURRENT_HASHES: usize = 2;

/// Digests remembered by file version; the cache is emptied when it reaches this size.
const CACHE_ENTRIES: usize = 4096;

/// Metadata that identifies a version of a file's content without reading it. Every write
/// changes the modification and the change time, and user space can set the modification
/// time back but not the change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Returns the stamp of the file at `path`, following links, or `None` when it does not
    /// exist. Blocks on the file system: call it from a blocking thread.
    pub(crate) fn read(path: &Path) -> io::Result<Option<Self>> {
        match std::fs::metadata(path) {
            Ok(metadata) => Ok(Some(Self::of(&metadata))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Paces work measured in bytes with a [`TokenBucket`] on Tokio's clock.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bucket: Mutex<TokenBucket>,
}

impl RateLimiter {
    /// Creates a limiter of `bytes_per_second`, which lets one second's worth through at once.
    pub(crate) fn new(bytes_per_second: u64) -> Self {
        Self {
            bucket: Mutex::new(TokenBucket::new(bytes_per_second, now())),
        }
    }

    /// Accounts for `bytes` and waits as long as the rate requires.
    pub(crate) async fn acquire(&self, bytes: u64) {
        let wait = self
            .bucket
            .lock()
            .expect("no thread panics while holding the rate limiter lock")
            .take(bytes, now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Computes sha256 digests of files at a limited byte rate.
#[derive(Debug)]
pub(crate) struct Hasher {
    limiter: RateLimiter,
    permits: Semaphore,
    cache: Mutex<HashMap<FileStamp, Digest>>,
    metrics: Arc<Metrics>,
}

impl Hasher {
    /// Creates a hasher that reads at most `bytes_per_second` across all files.
    pub(crate) fn new(bytes_per_second: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            limiter: RateLimiter::new(bytes_per_second),
            permits: Semaphore::new(CONCURRENT_HASHES),
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Returns the sha256 of the file at `path`. Unless `fresh` is set, a file whose stamp
    /// (device, inode, size, modification and change time) matches an earlier hash is not
    /// read again.
    ///
    /// # Errors
    ///
    /// Returns the I/O error when the file cannot be opened or read.
    pub(crate) async fn sha256(&self, path: &Path, fresh: bool) -> io::Result<Digest> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the hash semaphore is never closed");
        let owned = path.to_owned();
        let (file, stamp) = blocking(move || {
            let file = File::open(&owned)?;
            let stamp = FileStamp::of(&file.metadata()?);
            Ok((file, stamp))
        })
        .await?;
        if !fresh && let Some(digest) = self.cached(&stamp) {
            return Ok(digest);
        }

        let mut chunk = Chunk {
            file,
            hasher: Sha256::new(),
            buffer: vec![0; CHUNK_BYTES],
            read: 0,
        };
        loop {
            chunk = blocking(move || chunk.next()).await?;
            if chunk.read == 0 {
                break;
            }
            let read = chunk.read as u64;
            self.metrics.hashed_bytes.inc_by(read);
            self.limiter.acquire(read).await;
        }
        let Chunk { file, hasher, .. } = chunk;
        let digest = Digest::from_sha256(&hasher.finalize().into());
        // A file written while it was read gets another stamp, and is hashed again next time.
        let unchanged = blocking(move || Ok(FileStamp::of(&file.metadata()?) == stamp)).await?;
        if unchanged {
            self.remember(stamp, digest.clone());
        }
        Ok(digest)
    }

    fn cached(&self, stamp: &FileStamp) -> Option<Digest> {
        self.cache
            .lock()
            .expect("no thread panics while holding the digest cache lock")
            .get(stamp)
            .cloned()
    }

    fn remember(&self, stamp: FileStamp, digest: Digest) {
        let mut cache = self
            .cache
            .lock()
            .expect("no thread panics while holding the digest cache lock");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(stamp, digest);
    }
}

/// A file being hashed, moved to a blocking thread for each chunk and back.
struct Chunk {
    file: File,
    hasher: Sha256,
    buffer: Vec<u8>,
    /// Bytes of the last read; 0 at the end of the file.
    read: usize,
}

impl Chunk {
    fn next(mut self) -> io::Result<Self> {
        self.read = self.file.read(&mut self.buffer)?;
        self.hasher.update(&self.buffer[..self.read]);
        Ok(self)
    }
}

/// Runs file I/O on Tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn hasher(bytes_per_second: u64) -> Hasher {
        let mut registry = prometheus_client::registry::Registry::default();
        Hasher::new(bytes_per_second, Arc::new(Metrics::register(&mut registry)))
    }

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("creating a temporary file");
        file.write_all(content).expect("writing the temporary file");
        file.flush().expect("flushing the temporary file");
        file
    }

    fn expected(content: &[u8]) -> Digest {
        Digest::from_sha256(&Sha256::digest(content).into())
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_paces_bytes() {
        let limiter = RateLimiter::new(2 << 20);
        let start = tokio::time::Instant::now();
        for _ in 0..10 {
            limiter.acquire(1 << 20).await;
        }
        // The first 2 MiB pass at once, the other 8 MiB take 4 s at 2 MiB/s.
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_lets_idle_capacity_through() {
        let limiter = RateLimiter::new(1 << 20);
        limiter.acquire(1 << 20).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = tokio::time::Instant::now();
        limiter.acquire(1 << 20).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn file_larger_than_chunk_hashes_correctly() {
        let content: Vec<u8> = (0..CHUNK_BYTES * 3 + 17).map(|n| (n % 251) as u8).collect();
        let file = file_with(&content);
        let hasher = hasher(u64::MAX);
        let digest = hasher.sha256(file.path(), true).await.expect("hashing");
        assert_eq!(digest, expected(&content));
        assert_eq!(hasher.metrics.hashed_bytes.get(), content.len() as u64);
    }

    #[tokio::test]
    async fn empty_file_hashes_correctly() {
        let file = file_with(b"");
        let digest = hasher(u64::MAX)
            .sha256(file.path(), true)
            .await
            .expect("hashing");
        assert_eq!(digest, expected(b""));
    }

    #[tokio::test(start_paused = true)]
    async fn hashing_is_paced() {
        let content = vec![7u8; CHUNK_BYTES * 4];
        let file = file_with(&content);
        let hasher = hasher(CHUNK_BYTES as u64);
        let start = tokio::time::Instant::now();
        let digest = hasher.sha256(file.path(), true).await.expect("hashing");
        assert_eq!(digest, expected(&content));
        // One chunk passes at once, three more take a second each.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn unchanged_file_is_served_from_cache() {
        let file = file_with(b"version 1");
        let hasher = hasher(u64::MAX);
        hasher.sha256(file.path(), false).await.expect("hashing");
        hasher
            .sha256(file.path(), false)
            .await
            .expect("hashing again");
        assert_eq!(hasher.metrics.hashed_bytes.get(), 9);
        hasher
            .sha256(file.path(), true)
            .await
            .expect("hashing afresh");
        assert_eq!(hasher.metrics.hashed_bytes.get(), 18);
    }

    #[tokio::test]
    async fn changed_file_is_hashed_again() {
        let file = file_with(b"version 1");
        let hasher = hasher(u64::MAX);
        let first = hasher.sha256(file.path(), false).await.expect("hashing");
        std::fs::write(file.path(), b"version 2").expect("rewriting the file");
        let second = hasher
            .sha256(file.path(), false)
            .await
            .expect("hashing again");
        assert_ne!(first, second);
        assert_eq!(second, expected(b"version 2"));
    }

    #[tokio::test]
    async fn missing_file_is_an_error() {
        let error = hasher(u64::MAX)
            .sha256(Path::new("/nonexistent/aro-detector-test"), true)
            .await
            .expect_err("no such file");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
