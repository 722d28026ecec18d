//! The process runtime: each instance is a child process of the deployer, in its own process
//! group, with its output read line by line.

mod memory;
mod output;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aro_proto::v1::Action;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug_span, error, info, warn};

use super::{
    Error, Exit, ExitWatch, FaultSignal, InstanceKey, Launch, Launched, Program, Result, Runtime,
    RuntimeEvent,
};
use crate::domain::plan::Capabilities;
use crate::executable::{self, DigestCache};
use crate::logs::{LogSink, Stream};

pub use output::MAX_LINE;
pub(super) use output::pump;

/// Time a process has to disappear after SIGKILL before stopping it is reported as failed.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Address local processes listen on and are reached at.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running child.
#[derive(Debug)]
struct Running {
    pid: u32,
    /// Set before the deployer stops the child, so its exit is reported as expected.
    stop_requested: Arc<AtomicBool>,
    exit: ExitWatch,
}

/// Runs instances as local child processes.
#[derive(Debug)]
pub struct ProcessRuntime {
    running: Arc<Mutex<HashMap<InstanceKey, Running>>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<RuntimeEvent>>>,
    logs: LogSink,
    digests: DigestCache,
    /// `setpriv`, when found: children are started through it so that the kernel kills them
    /// when the deployer dies, even by SIGKILL.
    death_signal: Option<PathBuf>,
}

impl ProcessRuntime {
    /// Creates a runtime that sends its children's output to `logs` and hashes executables
    /// through `digests`.
    pub fn new(logs: LogSink, digests: DigestCache) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        let death_signal = executable::resolve("setpriv", std::env::var_os("PATH").as_deref());
        match &death_signal {
            Some(path) => {
                info!(setpriv = %path.display(), "children get SIGKILL when the deployer dies")
            }
            None => warn!(
                "setpriv not found on PATH: children may outlive a deployer that is killed with SIGKILL"
            ),
        }
        Self {
            running: Arc::default(),
            events,
            receiver: Mutex::new(Some(receiver)),
            logs,
            digests,
            death_signal,
        }
    }

    fn command(&self, launch: &Launch, program: &Path) -> Command {
        let mut command = match &self.death_signal {
            // setpriv sets PR_SET_PDEATHSIG and then execs the program, so the child keeps
            // the pid that was spawned. The kernel sends the signal when the thread that
            // spawned the child exits: spawning happens on a Tokio worker thread, and those
            // live as long as the deployer's runtime.
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("ARO_HOST", LOOPBACK.to_string())
            .current_dir(&launch.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        command
    }

    fn lookup(&self, key: &InstanceKey) -> Option<(u32, Arc<AtomicBool>, ExitWatch)> {
        let running = self.running.lock().expect("running-children lock poisoned");
        running.get(key).map(|child| {
            (
                child.pid,
                Arc::clone(&child.stop_requested),
                child.exit.clone(),
            )
        })
    }

    /// Sends `signal` to the process group of `key`.
    fn signal(&self, key: &InstanceKey, signal: Signal) -> Result<()> {
        let (pid, _, _) = self
            .lookup(key)
            .ok_or_else(|| Error::NotRunning(key.clone()))?;
        send(key, pid, signal)
    }
}

/// Sends `signal` to the process group that `pid` leads.
fn send(key: &InstanceKey, pid: u32, signal: Signal) -> Result<()> {
    let group = Pid::from_raw(i32::try_from(pid).expect("pids fit in i32"));
    match killpg(group, signal) {
        // The process exited and awaits reaping; its exit is on its way.
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(errno) => Err(Error::Signal {
            key: key.clone(),
            signal: signal.as_str(),
            message: errno.desc().to_owned(),
        }),
    }
}

impl Capabilities for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn supports(&self, action: Action) -> bool {
        super::supports_single_instance_action(action)
    }
}

impl Runtime for ProcessRuntime {
    async fn start(&self, launch: Launch) -> Result<Launched> {
        let Program::Executable(program) = &launch.program else {
            return Err(Error::Unsupported {
                runtime: "process",
                what: "run a container image",
            });
        };
        let artifact_digest = self
            .digests
            .sha256(program.clone())
            .await
            .map_err(|source| Error::Digest {
                program: program.clone(),
                source,
            })?;
        let mut child = self
            .command(&launch, program)
            .spawn()
            .map_err(|source| Error::Start {
                key: launch.key.clone(),
                program: program.display().to_string(),
                source: Box::new(source),
            })?;
        let started_at = SystemTime::now();
        let pid = child.id().expect("a child that was not awaited has a pid");
        let key = launch.key;
        // Sent before the exit watcher exists, so a start always precedes its exit.
        let _ = self.events.send(RuntimeEvent::Started {
            key: key.clone(),
            pid,
            at: started_at,
        });

        let span = debug_span!("deployer.instance", instance = %key.instance, generation = key.generation, pid);
        if let Some(stdout) = child.stdout.take() {
            let pump = output::pump(
                stdout,
                key.workload.clone(),
                key.instance.clone(),
                Stream::Stdout,
                self.logs.clone(),
            );
            tokio::spawn(pump.instrument(span.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            let pump = output::pump(
                stderr,
                key.workload.clone(),
                key.instance.clone(),
                Stream::Stderr,
                self.logs.clone(),
            );
            tokio::spawn(pump.instrument(span.clone()));
        }

        let (exit_sender, exit) = ExitWatch::channel();
        let stop_requested = Arc::new(AtomicBool::new(false));
        let oom_killed = Arc::new(AtomicBool::new(false));
        if let Some(limit) = launch.memory_limit {
            let enforce = memory::enforce_limit(
                key.clone(),
                pid,
                limit,
                Arc::clone(&oom_killed),
                exit.clone(),
            );
            tokio::spawn(enforce.instrument(span.clone()));
        }
        self.running
            .lock()
            .expect("running-children lock poisoned")
            .insert(
                key.clone(),
                Running {
                    pid,
                    stop_requested: Arc::clone(&stop_requested),
                    exit: exit.clone(),
                },
            );
        let watcher = watch_exit(
            child,
            key,
            stop_requested,
            oom_killed,
            Arc::clone(&self.running),
            self.events.clone(),
            exit_sender,
        );
        tokio::spawn(watcher.instrument(span));
        Ok(Launched {
            pid,
            artifact_digest,
            address: LOOPBACK,
            started_at,
            exit,
        })
    }

    async fn stop(&self, key: &InstanceKey, grace: Duration) -> Result<Option<Exit>> {
        let Some((pid, stop_requested, mut exit)) = self.lookup(key) else {
            return Ok(None);
        };
        stop_requested.store(true, Ordering::SeqCst);
        if !grace.is_zero() {
            send(key, pid, Signal::SIGTERM)?;
            // A frozen process handles SIGTERM only once it runs again.
            send(key, pid, Signal::SIGCONT)?;
            if let Ok(exit) = tokio::time::timeout(grace, exit.wait()).await {
                return Ok(exit);
            }
            info!(instance = %key.instance, generation = key.generation, ?grace, "instance ignored SIGTERM, sending SIGKILL");
        }
        send(key, pid, Signal::SIGKILL)?;
        tokio::time::timeout(KILL_WAIT, exit.wait())
            .await
            .map_err(|_| Error::StopTimedOut {
                key: key.clone(),
                waited: KILL_WAIT,
            })
    }

    async fn isolate(&self, key: &InstanceKey) -> Result<()> {
        self.signal(key, Signal::SIGSTOP)
    }

    async fn inject(&self, key: &InstanceKey, fault: FaultSignal) -> Result<SystemTime> {
        let signal = match fault {
            FaultSignal::Kill => Signal::SIGKILL,
            FaultSignal::Freeze => Signal::SIGSTOP,
            FaultSignal::Resume => Signal::SIGCONT,
            FaultSignal::Disconnect | FaultSignal::Reconnect => {
                return Err(Error::Unsupported {
                    runtime: "process",
                    what: "cut a local process off the network",
                });
            }
        };
        self.signal(key, signal)?;
        Ok(SystemTime::now())
    }

    async fn read_file(&self, key: &InstanceKey, path: &Path) -> Result<Vec<u8>> {
        tokio::fs::read(path).await.map_err(|source| Error::File {
            key: key.clone(),
            operation: "read",
            path: path.to_owned(),
            source,
        })
    }

    async fn write_file_at(
        &self,
        key: &InstanceKey,
        path: &Path,
        offset: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let target = path.to_owned();
        let bytes = bytes.to_vec();
        let written = tokio::task::spawn_blocking(move || {
            let file = OpenOptions::new().write(true).open(&target)?;
            let len = file.metadata()?.len();
            if offset + bytes.len() as u64 > len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} bytes at offset {offset} reach past the end of the {len}-byte file",
                        bytes.len()
                    ),
                ));
            }
            file.write_all_at(&bytes, offset)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|result| result);
        written.map_err(|source| Error::File {
            key: key.clone(),
            operation: "write",
            path: path.to_owned(),
            source,
        })
    }

    async fn file_digest(&self, key: &InstanceKey, path: &Path) -> Result<String> {
        self.digests
            .sha256(path.to_owned())
            .await
            .map_err(|source| Error::File {
                key: key.clone(),
                operation: "hash",
                path: path.to_owned(),
                source,
            })
    }

    fn fresh_files(&self) -> bool {
        false
    }

    fn running(&self) -> Vec<InstanceKey> {
        self.running
            .lock()
            .expect("running-children lock poisoned")
            .keys()
            .cloned()
            .collect()
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<RuntimeEvent>> {
        self.receiver
            .lock()
            .expect("event receiver lock poisoned")
            .take()
    }
}

/// Waits for the child to exit, then reports the exit: first as an event, then to the
/// instance's exit watch, so a caller waiting on the watch finds the event already queued.
async fn watch_exit(
    mut child: Child,
    key: InstanceKey,
    stop_requested: Arc<AtomicBool>,
    oom_killed: Arc<AtomicBool>,
    running: Arc<Mutex<HashMap<InstanceKey, Running>>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    exit_sender: watch::Sender<Option<Exit>>,
) {
    let status = child.wait().await;
    let at = SystemTime::now();
    running
        .lock()
        .expect("running-children lock poisoned")
        .remove(&key);
    let (code, signal) = match status {
        Ok(status) => (status.code(), status.signal()),
        Err(error) => {
            error!(instance = %key.instance, generation = key.generation, %error, "waiting for the instance failed");
            (None, None)
        }
    };
    let exit = Exit {
        code,
        signal,
        expected: stop_requested.load(Ordering::SeqCst),
        oom_killed: oom_killed.load(Ordering::SeqCst),
        at,
    };
    let _ = events.send(RuntimeEvent::Exited {
        key,
        exit: exit.clone(),
    });
    let _ = exit_sender.send(Some(exit));
}
