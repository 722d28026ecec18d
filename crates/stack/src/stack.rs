use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::process::{free_port, wait_for_health};
use crate::{Error, NatsServer, Result};

/// One of the three services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Detector,
    Brain,
    Deployer,
}

impl Service {
    /// Every service, in start-up order.
    pub const ALL: [Service; 3] = [Service::Detector, Service::Brain, Service::Deployer];

    /// Name of the service's binary.
    pub fn binary(self) -> &'static str {
        match self {
            Service::Detector => "aro-detector",
            Service::Brain => "aro-brain",
            Service::Deployer => "aro-deployer",
        }
    }
}

/// Configuration of a local stack.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Directory holding the service binaries and `aro-sample-workload`.
    pub bin_dir: PathBuf,
    /// Directory for logs and the JetStream store; created if missing.
    pub run_dir: PathBuf,
    /// Workload file the deployer runs.
    pub workloads: PathBuf,
    /// Policy model the brain loads.
    pub model: PathBuf,
    /// ONNX Runtime library for the brain; the brain looks for one itself when `None`.
    pub onnxruntime: Option<PathBuf>,
    /// Serve the Chaos API on the deployer.
    pub enable_chaos: bool,
    /// Extra flags per service.
    pub extra_args: HashMap<Service, Vec<String>>,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
}

impl StackConfig {
    /// Makes the deployer run its workloads as containers of the local Docker engine, on the
    /// Docker network `network` (created, labelled `io.aro.managed=true`, when missing), with
    /// its containers labelled `replica`, under which a later run finds and removes them. The
    /// workload file must then declare images.
    pub fn run_in_docker(&mut self, network: &str, replica: &str) {
        self.extra_args
            .entry(Service::Deployer)
            .or_default()
            .extend(Self::docker_args(network, replica));
    }

    /// Returns the deployer flags that [`StackConfig::run_in_docker`] adds, for a caller that
    /// assembles the extra flags itself.
    pub fn docker_args(network: &str, replica: &str) -> [String; 6] {
        [
            "--runtime".to_owned(),
            "docker".to_owned(),
            "--docker-network".to_owned(),
            network.to_owned(),
            "--replica".to_owned(),
            replica.to_owned(),
        ]
    }
}

struct Running {
    child: Child,
}

/// A running local stack. Dropping it kills every process it started; [`Stack::stop`] stops
/// them gracefully.
pub struct Stack {
    config: StackConfig,
    nats_binary: PathBuf,
    pub nats: NatsServer,
    services: HashMap<Service, Running>,
    addrs: HashMap<Service, (SocketAddr, SocketAddr)>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("nats", &self.nats)
            .field("run_dir", &self.config.run_dir)
            .finish()
    }
}

impl Stack {
    /// Starts nats-server and the three services, each on free loopback ports, and waits until
    /// every service reports SERVING over gRPC health.
    ///
    /// # Errors
    ///
    /// Returns an error naming the process that failed to start and its log file.
    pub async fn start(config: StackConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.run_dir).map_err(|source| Error::Io {
            operation: format!("creating {}", config.run_dir.display()),
            source,
        })?;
        let nats_binary = crate::find_nats_server()?;
        let nats = NatsServer::start(&nats_binary, &config.run_dir).await?;
        let addrs = Service::ALL
            .into_iter()
            .map(|service| {
                let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
                let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
                (service, (grpc, metrics))
            })
            .collect();
        let mut stack = Self {
            config,
            nats_binary,
            nats,
            services: HashMap::new(),
            addrs,
        };
        for service in Service::ALL {
            stack.start_service(service).await?;
        }
        Ok(stack)
    }

    /// gRPC address of a service.
    pub fn grpc_addr(&self, service: Service) -> SocketAddr {
        self.addrs[&service].0
    }

    /// Metrics address of a service.
    pub fn metrics_addr(&self, service: Service) -> SocketAddr {
        self.addrs[&service].1
    }

    /// Client URL of the stack's nats-server.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// Path of the nats-server binary in use.
    pub fn nats_binary(&self) -> &Path {
        &self.nats_binary
    }

    /// Log file of a service.
    pub fn log_path(&self, service: Service) -> PathBuf {
        self.config
            .run_dir
            .join(format!("{}.log", service.binary()))
    }

    /// Process id of a running service.
    pub fn pid(&self, service: Service) -> Option<u32> {
        self.services
            .get(&service)
            .and_then(|running| running.child.id())
    }

    /// Starts one service (again) on its ports and waits until it reports SERVING.
    ///
    /// # Errors
    ///
    /// Returns an error when it cannot be spawned, exits, or is not ready within 30 s.
    pub async fn start_service(&mut self, service: Service) -> Result<()> {
        let (grpc, metrics) = self.addrs[&service];
        let program = self.config.bin_dir.join(service.binary());
        let log_path = self.log_path(service);
        let io = |operation: &str, source| Error::Io {
            operation: operation.to_owned(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io("opening a service log", e))?;
        let stdout = log
            .try_clone()
            .map_err(|e| io("opening a service log", e))?;

        let mut command = Command::new(&program);
        command
            .args([
                "--grpc-addr",
                &grpc.to_string(),
                "--metrics-addr",
                &metrics.to_string(),
            ])
            .args(["--nats-url", &self.nats.url()])
            .env("RUST_LOG", &self.config.log_filter)
            .env("PATH", path_with(&self.config.bin_dir))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .kill_on_drop(true);
        match service {
            Service::Detector => {}
            Service::Brain => {
                command.arg("--model").arg(&self.config.model);
                if let Some(library) = &self.config.onnxruntime {
                    command.arg("--onnxruntime").arg(library);
                }
            }
            Service::Deployer => {
                command.arg("--workloads").arg(&self.config.workloads);
                command.args([
                    "--detector-addr",
                    &self.grpc_addr(Service::Detector).to_string(),
                ]);
                if self.config.enable_chaos {
                    command.arg("--enable-chaos");
                }
            }
        }
        if let Some(extra) = self.config.extra_args.get(&service) {
            command.args(extra);
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            program: program.clone(),
            source,
        })?;

        let ready = tokio::select! {
            ready = wait_for_health(grpc, Duration::from_secs(30)) => ready,
            status = child.wait() => {
                let status = status.map_or_else(|error| error.to_string(), |status| status.to_string());
                return Err(Error::Exited { what: service.binary().to_owned(), status, log: log_path });
            }
        };
        if !ready {
            return Err(Error::NotReady {
                what: service.binary().to_owned(),
                seconds: 30,
                log: log_path,
            });
        }
        info!(service = service.binary(), %grpc, "service ready");
        self.services.insert(service, Running { child });
        Ok(())
    }

    /// Stops one service with SIGTERM, or SIGKILL after its grace.
    pub async fn stop_service(&mut self, service: Service) {
        if let Some(running) = self.services.remove(&service) {
            terminate(running.child, Duration::from_secs(15)).await;
        }
    }

    /// Kills one service at once with SIGKILL, as a crash would.
    pub async fn kill_service(&mut self, service: Service) {
        if let Some(mut running) = self.services.remove(&service) {
            let _ = running.child.kill().await;
        }
    }

    /// Stops the services (the deployer first, so it stops its workloads while NATS still
    /// runs) and then nats-server.
    pub async fn stop(mut self) {
        for service in [Service::Deployer, Service::Brain, Service::Detector] {
            self.stop_service(service).await;
        }
        self.nats.stop().await;
    }
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_owned()];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Sends SIGTERM to `child` and waits up to `grace` for it to exit, then kills it.
pub(crate) async fn terminate(mut child: Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    let pid = Pid::from_raw(i32::try_from(pid).expect("process ids fit in i32"));
    if let Err(error) = kill(pid, Signal::SIGTERM) {
        warn!(%pid, %error, "SIGTERM failed");
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            warn!(%pid, ?grace, "process did not stop within its grace, killing it");
            let _ = child.kill().await;
        }
    }
}
