//! Integrity checks of the instances on this node, one task per watched generation: the
//! artifact its process runs and its declared files are hashed and compared with their
//! expected digests, and its resident memory is sampled from `/proc`.
//!
//! The artifact is hashed once the process is known and then every rehash interval. A
//! declared file is hashed at first, whenever its size, modification time, change time or
//! inode changes (looked at every poll interval), and every rehash interval. The checks run
//! only for instances whose node is this detector's node, because pids and paths mean
//! nothing elsewhere.

mod hasher;
mod procfs;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aro_proto::v1::{DeclaredFile, Instance};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::domain::{ChecksumMismatch, ChecksumSubject, Digest, InstanceKey, Observed};
use crate::log_limit::LogLimit;
use crate::watcher::Watcher;
use hasher::FileStamp;
pub(crate) use hasher::Hasher;
use procfs::{Process, ProcessError};

/// Shortest time between two log lines about the same kind of failed check of one instance.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of the integrity checks.
#[derive(Clone, Debug)]
pub(crate) struct IntegritySettings {
    /// Node name of this host; instances on other nodes are not checked.
    pub(crate) node: String,
    /// Time between two looks at each instance's declared files and resident memory.
    pub(crate) poll_interval: Duration,
    /// Time between two full hashes of each instance's artifact and declared files.
    pub(crate) rehash_interval: Duration,
}

/// Starts the integrity task of each watched generation; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Integrity {
    settings: Arc<IntegritySettings>,
    hasher: Arc<Hasher>,
}

impl Integrity {
    pub(crate) fn new(settings: IntegritySettings, hasher: Hasher) -> Self {
        Self {
            settings: Arc::new(settings),
            hasher: Arc::new(hasher),
        }
    }

    /// Checks one generation every poll interval until `cancel` is cancelled or the generation
    /// is no longer watched.
    pub(crate) async fn run(
        self,
        watcher: Arc<Watcher>,
        key: InstanceKey,
        generation: u64,
        cancel: CancellationToken,
    ) {
        let mut checks = Checks::new(self, watcher, key, generation);
        let mut ticker = tokio::time::interval(checks.integrity.settings.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let proceed = tokio::select! {
                () = cancel.cancelled() => return,
                proceed = checks.round() => proceed,
            };
            if !proceed {
                return;
            }
        }
    }
}

/// State of the checks of one generation.
#[derive(Debug)]
struct Checks {
    integrity: Integrity,
    watcher: Arc<Watcher>,
    key: InstanceKey,
    generation: u64,
    artifact_checked: bool,
    /// Whether the process runs in a container, once known.
    container: Option<bool>,
    last_full: Option<Instant>,
    /// Stamp of each declared file when it was last hashed.
    stamps: HashMap<String, FileStamp>,
    process_log: LogLimit,
    check_log: LogLimit,
}

/// Outcome of hashing one file.
enum Hashed {
    Digest(Digest),
    Missing,
    /// The file did not change since it was last hashed.
    Unchanged,
}

impl Checks {
    fn new(integrity: Integrity, watcher: Arc<Watcher>, key: InstanceKey, generation: u64) -> Self {
        Self {
            integrity,
            watcher,
            key,
            generation,
            artifact_checked: false,
            container: None,
            last_full: None,
            stamps: HashMap::new(),
            process_log: LogLimit::new(LOG_INTERVAL),
            check_log: LogLimit::new(LOG_INTERVAL),
        }
    }

    /// Runs one round of checks. Returns false when the generation needs no more checks: it
    /// is no longer watched, or runs on another node.
    async fn round(&mut self) -> bool {
        let Some((entry, faulted)) = self.watcher.watched_entry(&self.key, self.generation) else {
            return false;
        };
        let node = entry.r#ref.as_ref().map_or("", |r| r.node.as_str());
        if node != self.integrity.settings.node {
            debug!(
                instance = %self.key,
                node,
                local_node = %self.integrity.settings.node,
                "instance runs on another node, its process and files are not checked here"
            );
            return false;
        }
        let full = self
            .last_full
            .is_none_or(|last| last.elapsed() >= self.integrity.settings.rehash_interval);
        let process = self.process(&entry).await;
        if let Some(process) = process {
            self.sample_memory(&entry, process).await;
        }
        if let Some(process) = process
            && self.container.is_none()
        {
            self.container = blocking(move || process.in_container().ok())
                .await
                .flatten();
        }
        let container = self.container == Some(true);
        // A generation raises one fault at most, so once it has, hashing is wasted.
        if !faulted {
            if let Some(process) = process
                && (!self.artifact_checked || full)
            {
                if container {
                    self.check_image(&entry);
                } else {
                    self.check_artifact(&entry, process, full).await;
                }
                self.artifact_checked = true;
            }
            // Declared files are read as the running process opens them, because a container's
            // are reachable only through it, and before the process runs no file is in use.
            if let Some(process) = process {
                let root = container.then_some(process);
                for file in &entry.declared_files {
                    self.check_declared_file(file, root, full).await;
                }
            }
        }
        if full {
            self.last_full = Some(Instant::now());
        }
        true
    }

    /// Returns the instance's process when its entry names one that runs on this node.
    async fn process(&self, entry: &Instance) -> Option<Process> {
        if entry.pid == 0 {
            return None;
        }
        let pid = entry.pid;
        let started_at = entry
            .started_at
            .as_ref()
            .map(aro_proto::time::to_system_time);
        let found = blocking(move || Process::find(pid, started_at)).await;
        match found {
            Some(Ok(process)) => Some(process),
            Some(Err(error)) => {
                // A process that just exited is normal: its exit signal follows.
                let level_is_debug = matches!(
                    error,
                    ProcessError::NotFound { .. } | ProcessError::Zombie { .. }
                );
                if let Some(suppressed) = self.process_log.admit() {
                    if level_is_debug {
                        debug!(instance = %self.key, %error, suppressed, "instance process not checked");
                    } else {
                        warn!(instance = %self.key, %error, suppressed, "instance process not checked");
                    }
                }
                None
            }
            None => None,
        }
    }

    async fn sample_memory(&self, entry: &Instance, process: Process) {
        if entry.memory_limit_bytes == 0 {
            return;
        }
        match blocking(move || process.rss_bytes()).await {
            Some(Ok(Some(bytes))) => {
                self.watcher
                    .memory_sample(&self.key, self.generation, bytes);
            }
            Some(Ok(None)) | None => {}
            Some(Err(error)) => {
                if let Some(suppressed) = self.process_log.admit() {
                    debug!(instance = %self.key, pid = process.pid(), %error, suppressed, "reading resident memory failed");
                }
            }
        }
    }

    /// Compares the program the process runs with the artifact digest that the workload
    /// declares. When the executable differs and the process runs a script, the script is
    /// compared instead. Without a declared digest nothing is compared: the command the
    /// deployer resolved can be a launcher (a pyenv shim, a wrapper script) whose digest is not
    /// that of the program the process ends up running, and the deployer already checks the
    /// resolved command against its start-up digest before each verification.
    async fn check_artifact(&self, entry: &Instance, process: Process, full: bool) {
        let declared = &entry.expected_artifact_digest;
        if declared.is_empty() {
            return;
        }
        let Some(expected) = self.expected("artifact", "expected_artifact_digest", declared) else {
            return;
        };
        let Some(executable) = self
            .hash("artifact", &process.executable(), full)
            .await
            .and_then(|hashed| match hashed {
                Hashed::Digest(digest) => Some(digest),
                Hashed::Missing | Hashed::Unchanged => None,
            })
        else {
            return;
        };
        let target = blocking(move || process.executable_target())
            .await
            .unwrap_or_default();
        if executable == expected {
            self.watcher.count_checksum("artifact", "match", 1);
            return;
        }
        let script = blocking(move || process.script()).await.flatten();
        let (path, actual, interpreter) = match script {
            Some(script) => {
                let Some(Hashed::Digest(digest)) = self.hash("artifact", &script.path, full).await
                else {
                    return;
                };
                (script.display_path, digest, Some((target, executable)))
            }
            None => (target, executable, None),
        };
        if actual == expected {
            self.watcher.count_checksum("artifact", "match", 1);
            return;
        }
        self.mismatch(ChecksumMismatch {
            subject: ChecksumSubject::Artifact { path, interpreter },
            expected,
            actual: Observed::Digest(actual),
        });
    }

    /// Compares the image a container runs, as the deployer recorded it, with the artifact
    /// digest that the workload declares.
    fn check_image(&self, entry: &Instance) {
        let declared = &entry.expected_artifact_digest;
        if declared.is_empty() {
            return;
        }
        let Some(expected) = self.expected("artifact", "expected_artifact_digest", declared) else {
            return;
        };
        let Some(actual) = self.expected("artifact", "artifact_digest", &entry.artifact_digest)
        else {
            return;
        };
        if actual == expected {
            self.watcher.count_checksum("artifact", "match", 1);
            return;
        }
        self.mismatch(ChecksumMismatch {
            subject: ChecksumSubject::Artifact {
                path: format!("container image {}", entry.artifact_digest),
                interpreter: None,
            },
            expected,
            actual: Observed::Digest(actual),
        });
    }

    /// Compares a declared file with its digest when it changed since it was last hashed, or
    /// on a full round. With `root`, the file is read through that process's root directory (in its container).
    async fn check_declared_file(
        &mut self,
        file: &DeclaredFile,
        root: Option<Process>,
        full: bool,
    ) {
        let Some(expected) = self.expected("declared_file", "declared_files.digest", &file.digest)
        else {
            return;
        };
        let declared = Path::new(&file.path);
        if !declared.is_absolute() {
            self.check_failed(
                "declared_file",
                &file.path,
                "the declared path is not absolute",
            );
            return;
        }
        let opened = root.map(|process| process.file(declared));
        let path = opened.as_deref().unwrap_or(declared);
        let stamp = match blocking({
            let path = path.to_owned();
            move || FileStamp::read(&path)
        })
        .await
        {
            Some(Ok(stamp)) => stamp,
            Some(Err(error)) => {
                self.check_failed("declared_file", &file.path, &error.to_string());
                return;
            }
            None => return,
        };
        let hashed = match stamp {
            None => Hashed::Missing,
            Some(stamp) if !full && self.stamps.get(&file.path) == Some(&stamp) => {
                Hashed::Unchanged
            }
            Some(stamp) => {
                let Some(hashed) = self.hash("declared_file", path, full).await else {
                    return;
                };
                self.stamps.insert(file.path.clone(), stamp);
                hashed
            }
        };
        // Through a container's root, a file vanishes with the process: that is an exit, which
        // its signal reports, not a missing file.
        if matches!(hashed, Hashed::Missing)
            && let Some(process) = root
            && !blocking(move || process.is_alive()).await.unwrap_or(false)
        {
            return;
        }
        let actual = match hashed {
            Hashed::Unchanged => return,
            Hashed::Missing => Observed::Missing,
            Hashed::Digest(digest) if digest == expected => {
                self.watcher.count_checksum("declared_file", "match", 1);
                return;
            }
            Hashed::Digest(digest) => Observed::Digest(digest),
        };
        self.mismatch(ChecksumMismatch {
            subject: ChecksumSubject::DeclaredFile {
                path: file.path.clone(),
            },
            expected,
            actual,
        });
    }

    /// Parses an expected digest from the registry entry; an invalid one is logged and
    /// counted as an error of the check.
    fn expected(&self, check: &'static str, field: &str, value: &str) -> Option<Digest> {
        match Digest::parse(value) {
            Ok(digest) => Some(digest),
            Err(error) => {
                self.check_failed(check, field, &error.to_string());
                None
            }
        }
    }

    /// Hashes a file; a missing file is reported as such, another error is logged and counted.
    async fn hash(&self, check: &'static str, path: &Path, full: bool) -> Option<Hashed> {
        match self.integrity.hasher.sha256(path, full).await {
            Ok(digest) => Some(Hashed::Digest(digest)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(Hashed::Missing),
            Err(error) => {
                self.check_failed(check, &path.display().to_string(), &error.to_string());
                None
            }
        }
    }

    fn mismatch(&self, mismatch: ChecksumMismatch) {
        let check = mismatch.subject.check();
        self.watcher.count_checksum(check, "mismatch", 1);
        self.watcher
            .checksum_mismatch(&self.key, self.generation, &mismatch);
    }

    fn check_failed(&self, check: &'static str, subject: &str, error: &str) {
        self.watcher.count_checksum(check, "error", 1);
        if let Some(suppressed) = self.check_log.admit() {
            warn!(instance = %self.key, check, subject, error, suppressed, "checksum check failed");
        }
    }
}

/// Runs `/proc` and file-system reads on Tokio's blocking threads; `None` when the blocking
/// task panicked or was cancelled.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}
