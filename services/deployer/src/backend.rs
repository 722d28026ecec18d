//! Runtimes that run instances. The supervisor drives them through [`Runtime`]; each runtime
//! declares the actions it supports.

pub mod docker;
pub mod process;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use tokio::sync::{mpsc, watch};

use aro_proto::v1::Action;

use crate::domain::plan::Capabilities;

/// Returns true for the actions of a runtime that runs each instance by itself: observe,
/// escalate, restart in place and replace.
pub(crate) fn supports_single_instance_action(action: Action) -> bool {
    matches!(
        action,
        Action::Observe | Action::Escalate | Action::Restart | Action::Replace
    )
}

/// One generation of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    pub workload: String,
    pub instance: String,
    pub generation: u64,
}

impl std::fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} generation {}", self.instance, self.generation)
    }
}

/// The program of an instance, resolved at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// Path of an executable on this host.
    Executable(PathBuf),
    /// A container image: the reference as written and the image id it had at start-up,
    /// `sha256:<hex>`, from which every instance starts.
    Image { reference: String, id: String },
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Executable(path) => write!(f, "executable {}", path.display()),
            Self::Image { reference, id } => write!(f, "image {reference} ({id})"),
        }
    }
}

/// Everything a runtime needs to start one instance.
#[derive(Clone, Debug)]
pub struct Launch {
    pub key: InstanceKey,
    pub program: Program,
    pub args: Vec<String>,
    /// Variables added to the deployer's own environment.
    pub env: Vec<(String, String)>,
    /// Directory a local process runs in; a container runs in its image's directory.
    pub working_dir: PathBuf,
    /// Resident memory the instance may use, in bytes; the runtime ends it beyond that.
    pub memory_limit: Option<u64>,
}

/// A started instance.
#[derive(Debug)]
pub struct Launched {
    pub pid: u32,
    /// sha256 of the executable that was started, or the id of the container's image, as
    /// `sha256:<hex>`.
    pub artifact_digest: String,
    /// Address at which the instance is reached: loopback for a local process, the
    /// container's address on the project network for a container.
    pub address: IpAddr,
    pub started_at: SystemTime,
    pub exit: ExitWatch,
}

/// Ending of an instance's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit status when the process exited on its own.
    pub code: Option<i32>,
    /// Signal that ended the process.
    pub signal: Option<i32>,
    /// True when the deployer asked the runtime to stop the instance.
    pub expected: bool,
    /// True when the runtime ended the instance for using more memory than its limit.
    pub oom_killed: bool,
    /// When the runtime observed the exit.
    pub at: SystemTime,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status {code}"),
            (None, Some(signal)) => write!(f, "signal {signal}"),
            (None, None) => f.write_str("unknown status"),
        }?;
        if self.oom_killed {
            f.write_str(" after exceeding its memory limit")?;
        }
        Ok(())
    }
}

/// Resolves once an instance's process has exited.
#[derive(Clone, Debug)]
pub struct ExitWatch(watch::Receiver<Option<Exit>>);

impl ExitWatch {
    /// A watch and the sender that reports the exit to it.
    pub fn channel() -> (watch::Sender<Option<Exit>>, Self) {
        let (sender, receiver) = watch::channel(None);
        (sender, Self(receiver))
    }

    /// The exit, if it already happened.
    pub fn get(&self) -> Option<Exit> {
        self.0.borrow().clone()
    }

    /// Waits for the exit. Returns `None` when the runtime dropped the instance without
    /// reporting one.
    pub async fn wait(&mut self) -> Option<Exit> {
        match self.0.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone(),
            Err(_) => None,
        }
    }
}

/// Observation of the runtime, delivered in order per instance.
#[derive(Clone, Debug)]
pub enum RuntimeEvent {
    Started {
        key: InstanceKey,
        pid: u32,
        at: SystemTime,
    },
    Exited {
        key: InstanceKey,
        exit: Exit,
    },
}

/// Signals the fault-injection API sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultSignal {
    /// End the instance at once (SIGKILL).
    Kill,
    /// Freeze the instance (SIGSTOP).
    Freeze,
    /// Resume a frozen instance (SIGCONT).
    Resume,
    /// Cut the instance off its networks while it keeps running (a partition).
    Disconnect,
    /// Undo [`FaultSignal::Disconnect`].
    Reconnect,
}

impl FaultSignal {
    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Freeze => "freeze",
            Self::Resume => "resume",
            Self::Disconnect => "disconnect",
            Self::Reconnect => "reconnect",
        }
    }
}

/// Errors of a runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start {key} from {program}: {source}")]
    Start {
        key: InstanceKey,
        program: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("failed to hash the executable {program}: {source}")]
    Digest {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not running")]
    NotRunning(InstanceKey),
    #[error("failed to send {signal} to {key}: {message}")]
    Signal {
        key: InstanceKey,
        signal: &'static str,
        message: String,
    },
    #[error("the {runtime} runtime cannot {what}")]
    Unsupported {
        runtime: &'static str,
        what: &'static str,
    },
    #[error("{key} did not exit within {waited:?} of SIGKILL")]
    StopTimedOut { key: InstanceKey, waited: Duration },
    #[error("failed to {operation} {path} of {key}: {source}")]
    File {
        key: InstanceKey,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the container engine failed to {what}: {message}")]
    Engine { what: String, message: String },
}

/// Result of runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A place where instances run: local processes today, containers and pods later.
pub trait Runtime: Capabilities + Send + Sync + 'static {
    /// Starts one instance. Emits [`RuntimeEvent::Started`] before the returned future
    /// resolves, and [`RuntimeEvent::Exited`] (after it) when the instance ends.
    fn start(&self, launch: Launch) -> impl Future<Output = Result<Launched>> + Send;

    /// Stops an instance and waits until it exited: sends it SIGTERM, and kills it after
    /// `grace` (at once when `grace` is zero). Its exit is reported as expected. Returns
    /// `None` when it was not running.
    fn stop(
        &self,
        key: &InstanceKey,
        grace: Duration,
    ) -> impl Future<Output = Result<Option<Exit>>> + Send;

    /// Stops `old` (as [`Runtime::stop`] does) and starts `launch` in its place.
    fn restart(
        &self,
        old: &InstanceKey,
        launch: Launch,
        grace: Duration,
    ) -> impl Future<Output = Result<Launched>> + Send {
        async move {
            self.stop(old, grace).await?;
            self.start(launch).await
        }
    }

    /// Quarantines an instance: it keeps its state for inspection but does no more work.
    fn isolate(&self, key: &InstanceKey) -> impl Future<Output = Result<()>> + Send;

    /// Applies a fault signal. Returns when it took effect.
    fn inject(
        &self,
        key: &InstanceKey,
        signal: FaultSignal,
    ) -> impl Future<Output = Result<SystemTime>> + Send;

    /// Reads a file of an instance: a file of this host for a local process, a file inside
    /// the container for a container.
    fn read_file(
        &self,
        key: &InstanceKey,
        path: &Path,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// Overwrites `bytes.len()` bytes of an instance's file at `offset`, keeping the rest of
    /// it, its length and its permissions.
    fn write_file_at(
        &self,
        key: &InstanceKey,
        path: &Path,
        offset: u64,
        bytes: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// sha256 of an instance's file, `sha256:<hex>`.
    fn file_digest(
        &self,
        key: &InstanceKey,
        path: &Path,
    ) -> impl Future<Output = Result<String>> + Send {
        async move {
            let content = self.read_file(key, path).await?;
            Ok(format!("sha256:{:x}", Sha256::digest(&content)))
        }
    }

    /// True when every instance gets its own copy of the files it starts from (a container
    /// starts from its image), so that a fresh instance never sees a predecessor's changes.
    /// False when instances share the host's files, which the supervisor then restores.
    fn fresh_files(&self) -> bool;

    /// Instances that are running now.
    fn running(&self) -> Vec<InstanceKey>;

    /// The event stream, on the first call only.
    fn events(&self) -> Option<mpsc::UnboundedReceiver<RuntimeEvent>>;
}
