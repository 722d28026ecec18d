//! The Docker runtime: each generation of an instance is a container of the workload's image,
//! on the project network, labelled as the deployer's own. Talks to the local Docker engine
//! through its API.

mod archive;
mod engine;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aro_proto::v1::Action;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions, WaitContainerOptions};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, debug_span, info, warn};

use super::process::pump;
use super::{
    Error, Exit, ExitWatch, FaultSignal, InstanceKey, Launch, Launched, Program, Result, Runtime,
    RuntimeEvent,
};
use crate::domain::plan::Capabilities;
use crate::logs::{LogSink, Stream};

use engine::ExitState;
pub use engine::{Engine, MANAGED_LABEL};

/// Label naming the workload of a container.
pub const WORKLOAD_LABEL: &str = "io.aro.workload";
/// Label naming the instance of a container.
pub const INSTANCE_LABEL: &str = "io.aro.instance";
/// Label carrying the generation of a container's instance.
pub const GENERATION_LABEL: &str = "io.aro.generation";
/// Label naming the deployer replica that created a container.
pub const REPLICA_LABEL: &str = "io.aro.replica";

/// Address a container's program listens on: every interface of its own network namespace.
const LISTEN_ADDRESS: &str = "0.0.0.0";

/// Time a container has to disappear after SIGKILL before stopping it is reported as failed.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Time the output of an exited container has to drain before the container is removed.
const LOG_DRAIN: Duration = Duration::from_secs(2);

/// Pause before waiting again on a container whose wait ended while it still runs.
const WAIT_RETRY: Duration = Duration::from_secs(1);

/// Bytes of output buffered between the engine's log stream and the line reader.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Lowest memory limit the engine accepts.
pub const MIN_MEMORY_LIMIT: u64 = 6 << 20;

/// A container the runtime started and has not seen exit.
#[derive(Debug)]
struct Running {
    id: String,
    address: IpAddr,
    /// Set before the deployer stops the container, so its exit is reported as expected.
    stop_requested: Arc<AtomicBool>,
    exit: ExitWatch,
    /// Networks a partition took the container off, with its address on each, for the
    /// reconnection.
    disconnected: Vec<(String, IpAddr)>,
}

/// Runs instances as containers of the local Docker engine.
#[derive(Debug)]
pub struct DockerRuntime {
    engine: Engine,
    running: Arc<Mutex<HashMap<InstanceKey, Running>>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<RuntimeEvent>>>,
    logs: LogSink,
}

impl DockerRuntime {
    /// Creates a runtime on `engine` that sends its containers' output to `logs`.
    pub fn new(engine: Engine, logs: LogSink) -> Self {
        let (events, receiver) = mpsc::unbounded_channel();
        Self {
            engine,
            running: Arc::default(),
            events,
            receiver: Mutex::new(Some(receiver)),
            logs,
        }
    }

    /// Returns the engine this runtime drives.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceKey, Running>> {
        self.running
            .lock()
            .expect("running-containers lock poisoned")
    }

    fn lookup(&self, key: &InstanceKey) -> Result<(String, Arc<AtomicBool>, ExitWatch)> {
        self.running()
            .get(key)
            .map(|container| {
                (
                    container.id.clone(),
                    Arc::clone(&container.stop_requested),
                    container.exit.clone(),
                )
            })
            .ok_or_else(|| Error::NotRunning(key.clone()))
    }

    fn container_id(&self, key: &InstanceKey) -> Result<String> {
        self.lookup(key).map(|(id, _, _)| id)
    }

    fn create_body(&self, launch: &Launch, image: &str) -> ContainerCreateBody {
        let key = &launch.key;
        let mut env: Vec<String> = launch
            .env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        env.push(format!("ARO_HOST={LISTEN_ADDRESS}"));
        let network = self.engine.network().to_owned();
        let memory = launch
            .memory_limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: (!launch.args.is_empty()).then(|| launch.args.clone()),
            env: Some(env),
            labels: Some(self.engine.labels([
                (WORKLOAD_LABEL, key.workload.clone()),
                (INSTANCE_LABEL, key.instance.clone()),
                (GENERATION_LABEL, key.generation.to_string()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some(network.clone()),
                memory,
                // Memory plus swap equal to the memory limit: no swap, so the limit is what the
                // program may use before the kernel ends it.
                memory_swap: memory,
                ..HostConfig::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
            }),
            ..ContainerCreateBody::default()
        }
    }

    /// Name of the container of one generation, unique per deployer replica.
    fn container_name(&self, key: &InstanceKey) -> String {
        engine::container_name(&format!(
            "aro-{}-{}-{}",
            self.engine.replica(),
            key.instance,
            key.generation
        ))
    }

    /// Follows the container's output into the log sink, line by line, until it ends.
    fn follow_output(&self, key: &InstanceKey, id: &str) -> tokio::task::JoinHandle<()> {
        let docker = self.engine.docker().clone();
        let id = id.to_owned();
        let sink = self.logs.clone();
        let (workload, instance) = (key.workload.clone(), key.instance.clone());
        let follow = async move {
            let (mut stdout, stdout_reader) = tokio::io::duplex(PIPE_CAPACITY);
            let (mut stderr, stderr_reader) = tokio::io::duplex(PIPE_CAPACITY);
            let readers = futures::future::join(
                pump(
                    stdout_reader,
                    workload.clone(),
                    instance.clone(),
                    Stream::Stdout,
                    sink.clone(),
                ),
                pump(stderr_reader, workload, instance, Stream::Stderr, sink),
            );
            let forward = async move {
                let options = LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    ..LogsOptions::default()
                };
                let mut output = docker.logs(&id, Some(options));
                while let Some(chunk) = output.next().await {
                    let written = match chunk {
                        Ok(bollard::container::LogOutput::StdErr { message }) => {
                            stderr.write_all(&message).await
                        }
                        Ok(
                            bollard::container::LogOutput::StdOut { message }
                            | bollard::container::LogOutput::Console { message },
                        ) => stdout.write_all(&message).await,
                        Ok(bollard::container::LogOutput::StdIn { .. }) => Ok(()),
                        Err(error) => {
                            debug!(container = %id, %error, "following container output ended");
                            break;
                        }
                    };
                    if written.is_err() {
                        break;
                    }
                }
                // Dropping the writers ends the readers after the last line.
            };
            futures::future::join(forward, readers).await;
        };
        tokio::spawn(follow)
    }
}

impl Capabilities for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn supports(&self, action: Action) -> bool {
        super::supports_single_instance_action(action)
    }
}

impl Runtime for DockerRuntime {
    async fn start(&self, launch: Launch) -> Result<Launched> {
        let Program::Image { id: image, .. } = &launch.program else {
            return Err(Error::Unsupported {
                runtime: "docker",
                what: "run an executable of this host",
            });
        };
        let key = launch.key.clone();
        let start_failed = |error: bollard::errors::Error| Error::Start {
            key: key.clone(),
            program: launch.program.to_string(),
            source: Box::new(error),
        };
        let docker = self.engine.docker();
        let name = self.container_name(&key);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..CreateContainerOptions::default()
        };
        let created = docker
            .create_container(Some(options), self.create_body(&launch, image))
            .await
            .map_err(start_failed)?;
        let id = created.id;
        if let Err(error) = docker.start_container(&id, None).await {
            self.engine.remove_container(&id).await;
            return Err(start_failed(error));
        }
        let inspected = match self.engine.inspect(&id).await {
            Ok(inspected) => inspected,
            Err(error) => {
                self.engine.remove_container(&id).await;
                return Err(error);
            }
        };
        let Some(address) = inspected.address else {
            // The container exited before it got its address, or the network lost it.
            self.engine.remove_container(&id).await;
            return Err(Error::Engine {
                what: format!("give {key} an address on network {}", self.engine.network()),
                message: "the container has no address on the network".to_owned(),
            });
        };
        let started_at = SystemTime::now();
        let pid = inspected.pid;
        // Sent before the exit watcher exists, so a start always precedes its exit.
        let _ = self.events.send(RuntimeEvent::Started {
            key: key.clone(),
            pid,
            at: started_at,
        });

        let span = debug_span!("deployer.container", instance = %key.instance, generation = key.generation, container = %short(&id));
        let output = self.follow_output(&key, &id);
        let (exit_sender, exit) = ExitWatch::channel();
        let stop_requested = Arc::new(AtomicBool::new(false));
        self.running().insert(
            key.clone(),
            Running {
                id: id.clone(),
                address,
                stop_requested: Arc::clone(&stop_requested),
                exit: exit.clone(),
                disconnected: Vec::new(),
            },
        );
        let watcher = watch_exit(WatchedContainer {
            engine: self.engine.clone(),
            id: id.clone(),
            key: key.clone(),
            stop_requested,
            output,
            running: Arc::clone(&self.running),
            events: self.events.clone(),
            exit_sender,
        });
        tokio::spawn(watcher.instrument(span));
        info!(instance = %key.instance, generation = key.generation, container = %short(&id), %address, pid, "container started");
        Ok(Launched {
            pid,
            artifact_digest: inspected.image,
            address,
            started_at,
            exit,
        })
    }

    async fn stop(&self, key: &InstanceKey, grace: Duration) -> Result<Option<Exit>> {
        let Ok((id, stop_requested, mut exit)) = self.lookup(key) else {
            return Ok(None);
        };
        stop_requested.store(true, Ordering::SeqCst);
        // A paused container takes signals only once it runs again.
        self.engine.unpause_if_paused(&id).await?;
        if !grace.is_zero() {
            self.engine.signal(&id, "SIGTERM").await?;
            if let Ok(exit) = tokio::time::timeout(grace, exit.wait()).await {
                return Ok(exit);
            }
            info!(instance = %key.instance, generation = key.generation, ?grace, "container ignored SIGTERM, sending SIGKILL");
        }
        self.engine.signal(&id, "SIGKILL").await?;
        tokio::time::timeout(KILL_WAIT, exit.wait())
            .await
            .map_err(|_| Error::StopTimedOut {
                key: key.clone(),
                waited: KILL_WAIT,
            })
    }

    async fn isolate(&self, key: &InstanceKey) -> Result<()> {
        self.disconnect(key).await?;
        let id = self.container_id(key)?;
        self.engine.pause(&id).await
    }

    async fn inject(&self, key: &InstanceKey, fault: FaultSignal) -> Result<SystemTime> {
        match fault {
            FaultSignal::Kill => {
                let id = self.container_id(key)?;
                self.engine.unpause_if_paused(&id).await?;
                self.engine.signal(&id, "SIGKILL").await?;
            }
            FaultSignal::Freeze => self.engine.pause(&self.container_id(key)?).await?,
            FaultSignal::Resume => self.engine.unpause(&self.container_id(key)?).await?,
            FaultSignal::Disconnect => self.disconnect(key).await?,
            FaultSignal::Reconnect => self.reconnect(key).await?,
        }
        Ok(SystemTime::now())
    }

    async fn read_file(&self, key: &InstanceKey, path: &Path) -> Result<Vec<u8>> {
        let id = self.container_id(key)?;
        let file = self
            .engine
            .download_file(&id, path)
            .await
            .map_err(|source| file_error(key, "read", path, source))?;
        Ok(file.content)
    }

    async fn write_file_at(
        &self,
        key: &InstanceKey,
        path: &Path,
        offset: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let id = self.container_id(key)?;
        let mut file = self
            .engine
            .download_file(&id, path)
            .await
            .map_err(|source| file_error(key, "read", path, source))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(range) = file
            .content
            .get_mut(start..start.saturating_add(bytes.len()))
        else {
            return Err(file_error(
                key,
                "write",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} bytes at offset {offset} reach past the end of the {}-byte file",
                        bytes.len(),
                        file.content.len()
                    ),
                ),
            ));
        };
        range.copy_from_slice(bytes);
        self.engine
            .upload_file(&id, path, &file)
            .await
            .map_err(|source| file_error(key, "write", path, source))
    }

    fn fresh_files(&self) -> bool {
        true
    }

    fn running(&self) -> Vec<InstanceKey> {
        self.running().keys().cloned().collect()
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<RuntimeEvent>> {
        self.receiver
            .lock()
            .expect("event receiver lock poisoned")
            .take()
    }
}

impl DockerRuntime {
    /// Takes the container off every network it is on, remembering them and its address on
    /// each for [`DockerRuntime::reconnect`].
    async fn disconnect(&self, key: &InstanceKey) -> Result<()> {
        let id = self.container_id(key)?;
        let networks = self.engine.networks_of(&id).await?;
        for (network, _) in &networks {
            self.engine.disconnect(network, &id).await?;
        }
        if let Some(container) = self.running().get_mut(key) {
            container.disconnected.extend(networks);
        }
        Ok(())
    }

    /// Connects the container back to the networks a partition took it off, at the address it
    /// had on each.
    async fn reconnect(&self, key: &InstanceKey) -> Result<()> {
        let (id, networks) = {
            let mut running = self.running();
            let container = running
                .get_mut(key)
                .ok_or_else(|| Error::NotRunning(key.clone()))?;
            let networks = if container.disconnected.is_empty() {
                vec![(self.engine.network().to_owned(), container.address)]
            } else {
                std::mem::take(&mut container.disconnected)
            };
            (container.id.clone(), networks)
        };
        let current = self.engine.networks_of(&id).await?;
        for (network, address) in networks {
            if current.iter().any(|(name, _)| *name == network) {
                continue;
            }
            self.engine.connect_network(&network, &id, address).await?;
        }
        Ok(())
    }
}

fn file_error(
    key: &InstanceKey,
    operation: &'static str,
    path: &Path,
    source: std::io::Error,
) -> Error {
    Error::File {
        key: key.clone(),
        operation,
        path: PathBuf::from(path),
        source,
    }
}

/// First 12 characters of a container id, as the Docker CLI shows it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A started container whose exit is being awaited.
struct WatchedContainer {
    engine: Engine,
    id: String,
    key: InstanceKey,
    stop_requested: Arc<AtomicBool>,
    output: tokio::task::JoinHandle<()>,
    running: Arc<Mutex<HashMap<InstanceKey, Running>>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    exit_sender: watch::Sender<Option<Exit>>,
}

/// Waits for the container to exit, lets its output drain, removes it, then reports the exit:
/// first as an event, then to the instance's exit watch.
async fn watch_exit(container: WatchedContainer) {
    let WatchedContainer {
        engine,
        id,
        key,
        stop_requested,
        output,
        running,
        events,
        exit_sender,
    } = container;

    let (status, state, at) = wait_until_exited(&engine, &id, &key).await;
    if tokio::time::timeout(LOG_DRAIN, output).await.is_err() {
        debug!(instance = %key.instance, "container output did not drain in time");
    }
    engine.remove_container(&id).await;

    running
        .lock()
        .expect("running-containers lock poisoned")
        .remove(&key);
    let code = state.as_ref().map(|state| state.code).or(status);
    let (code, signal) = split_status(code);
    let exit = Exit {
        code,
        signal,
        expected: stop_requested.load(Ordering::SeqCst),
        oom_killed: state.is_some_and(|state| state.oom_killed),
        at,
    };
    let _ = events.send(RuntimeEvent::Exited {
        key,
        exit: exit.clone(),
    });
    let _ = exit_sender.send(Some(exit));
}

/// Waits on the engine until the container no longer runs. Returns the status the wait
/// endpoint reported, the container's final state and when the exit was seen. A wait that
/// ends while the container still runs (the connection to the engine broke) is started again.
async fn wait_until_exited(
    engine: &Engine,
    id: &str,
    key: &InstanceKey,
) -> (Option<i64>, Option<ExitState>, SystemTime) {
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        let waited = engine
            .docker()
            .wait_container(id, Some(options))
            .next()
            .await;
        let at = SystemTime::now();
        let status = match waited {
            Some(Ok(response)) => Some(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(error)) => {
                warn!(instance = %key.instance, container = %short(id), %error, "waiting for the container failed");
                None
            }
            None => None,
        };
        let state = engine.exit_state(id).await;
        if state.is_some_and(|state| state.running) {
            warn!(instance = %key.instance, container = %short(id), "the wait for the container ended while it runs, waiting again");
            tokio::time::sleep(WAIT_RETRY).await;
            continue;
        }
        return (status, state, at);
    }
}

/// Splits a container's exit status into an exit code or a signal: the engine reports a
/// process ended by signal `n` as status `128 + n`, as a shell does.
fn split_status(status: Option<i64>) -> (Option<i32>, Option<i32>) {
    match status {
        Some(status @ 129..=192) => (None, i32::try_from(status - 128).ok()),
        Some(status) => (i32::try_from(status).ok(), None),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_above_128_is_a_signal() {
        assert_eq!(split_status(Some(137)), (None, Some(9)));
        assert_eq!(split_status(Some(143)), (None, Some(15)));
        assert_eq!(split_status(Some(0)), (Some(0), None));
        assert_eq!(split_status(Some(3)), (Some(3), None));
        assert_eq!(split_status(None), (None, None));
    }
}
