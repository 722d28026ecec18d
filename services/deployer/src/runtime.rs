//! Command-line flags, wiring and graceful shutdown of the deployer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aro_bus::{Bus, InjectionStore, InstanceNumbers, Registry};
use aro_proto::v1::chaos_server::ChaosServer;
use aro_proto::v1::deployer_server::DeployerServer;
use aro_service::{CommonArgs, GrpcServer, humantime_duration, serve_metrics};
use clap::Parser;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::backend::docker::{DockerRuntime, Engine};
use crate::backend::process::ProcessRuntime;
use crate::backend::{Program, Runtime};
use crate::checksum_file;
use crate::checksum_file::ChecksumFile;
use crate::command_consumer;
use crate::domain::fleet::Fleet;
use crate::domain::workload::{ProgramSpec, WorkloadSpec};
use crate::domain::workload_file::{self, RuntimeKind};
use crate::executable::{self, DigestCache};
use crate::grpc::{ChaosService, DeployerService};
use crate::injections;
use crate::logs::{self, LogSink};
use crate::metrics::Metrics;
use crate::registry_writer::Stores;
use crate::supervisor::{Artifact, Settings, Supervisor};

const SERVICE: &str = "aro-deployer";

/// The deployer: runs workloads, executes recovery commands and injects faults.
#[derive(Debug, Parser)]
#[command(name = "aro-deployer", version, about)]
pub struct Args {
    /// Workload file (TOML) declaring the workloads to run. Required by the process and
    /// docker runtimes; the kubernetes runtime acts on the cluster's opted-in pods instead.
    #[arg(long, env = "ARO_WORKLOADS")]
    pub workloads: Option<PathBuf>,

    /// Address of the gRPC server (Deployer and Chaos services, health, reflection).
    #[arg(long, env = "ARO_DEPLOYER_GRPC_ADDR", default_value = "127.0.0.1:7403")]
    pub grpc_addr: SocketAddr,

    /// The detector's gRPC address, given to instances as {detector} and ARO_DETECTOR_ADDR.
    #[arg(long, env = "ARO_DETECTOR_ADDR", default_value = "127.0.0.1:7401")]
    pub detector_addr: String,

    /// Serve the Chaos service; without it every Chaos call fails with FAILED_PRECONDITION.
    #[arg(long, env = "ARO_ENABLE_CHAOS")]
    pub enable_chaos: bool,

    /// How long an isolated instance is kept for inspection before it is killed and removed.
    #[arg(long, env = "ARO_ISOLATION_RETENTION", default_value = "5m", value_parser = humantime_duration)]
    pub isolation_retention: Duration,

    /// How long an OBSERVE command waits before it probes its target once.
    #[arg(long, env = "ARO_OBSERVE_PERIOD", default_value = "5s", value_parser = humantime_duration)]
    pub observe_period: Duration,

    /// Time an instance has to exit after SIGTERM (on restarts and at shutdown) before it
    /// gets SIGKILL.
    #[arg(long, env = "ARO_STOP_GRACE", default_value = "2s", value_parser = humantime_duration)]
    pub stop_grace: Duration,

    /// Node name recorded in instance references. Defaults to the host name.
    #[arg(long, env = "ARO_NODE")]
    pub node: Option<String>,

    /// Runtime of the instances: `process` (local child processes, workloads with `command`),
    /// `docker` (containers of the local Docker engine, workloads with `image`) or
    /// `kubernetes` (the opted-in pods of the cluster, see the --kube-* flags).
    #[arg(long, env = "ARO_RUNTIME", default_value = "process", value_parser = parse_runtime)]
    pub runtime: RuntimeArg,

    #[command(flatten)]
    pub kube: crate::kubernetes::KubernetesArgs,

    /// Docker network the containers join (docker runtime); created, labelled
    /// io.aro.managed=true, when it does not exist.
    #[arg(long, env = "ARO_DOCKER_NETWORK", default_value = "aro-fleet")]
    pub docker_network: String,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Time open gRPC connections have to close at shutdown.
const GRPC_DRAIN: Duration = Duration::from_secs(2);

/// Default address of the metrics endpoint when `--metrics-addr` is not given.
const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9403";

/// Runs the deployer until SIGINT or SIGTERM, then stops every instance.
///
/// # Errors
///
/// Fails when the workload file is invalid, a workload's command is not found, or an
/// address cannot be bound.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = aro_service::Telemetry::init(SERVICE, &args.common)?;
    let shutdown = aro_service::shutdown_on_signal();

    let runtime_kind = match args.runtime {
        RuntimeArg::Kubernetes => {
            let options = crate::kubernetes::ServeOptions {
                grpc_addr: args.grpc_addr,
                enable_chaos: args.enable_chaos,
                node: args.node.clone().unwrap_or_else(host_name),
            };
            return crate::kubernetes::serve(&args.common, &args.kube, options, shutdown).await;
        }
        RuntimeArg::Workloads(kind) => kind,
    };
    let Some(workloads) = args.workloads.clone() else {
        anyhow::bail!(
            "missing --workloads (ARO_WORKLOADS): the {} runtime runs the workloads of a workload file",
            runtime_kind.name()
        );
    };
    let specs = load_workloads(&workloads, runtime_kind)?;
    let working_dir = std::path::absolute(directory_of(&workloads)).with_context(|| {
        format!(
            "failed to resolve the directory of the workload file {}",
            workloads.display()
        )
    })?;
    let digests = DigestCache::default();
    let node = args.node.clone().unwrap_or_else(host_name);

    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut metrics_registry));
    let metrics_addr = match args.common.metrics_addr {
        Some(addr) => addr,
        None => DEFAULT_METRICS_ADDR
            .parse()
            .expect("the default address is valid"),
    };
    serve_metrics(metrics_addr, Arc::new(metrics_registry), shutdown.clone())
        .await
        .with_context(|| format!("failed to serve metrics on {metrics_addr}"))?;

    let replica = args.common.replica_name("deployer");
    let Some(bus) = connect(&args.common.nats_url, &replica, &shutdown).await else {
        return Ok(());
    };
    let registry = Registry::open(&bus).await?;
    // Files that an earlier run left corrupted get their bytes back before they are hashed.
    let injection_store = InjectionStore::open(&bus).await?;
    let recovered = injections::recover(&bus, &injection_store, &node).await?;
    let (log_sink, log_queue) = LogSink::new(Arc::clone(&metrics));
    let log_publisher = logs::publish(log_queue, bus.client().clone(), Arc::clone(&metrics));
    tokio::spawn(log_publisher.instrument(info_span!("deployer.logs")));
    let wiring = Wiring {
        bus,
        registry,
        metrics,
        shutdown,
        node,
        working_dir,
        injection_store,
        recovered,
    };
    match runtime_kind {
        RuntimeKind::Process => {
            let artifacts = resolve_artifacts(&workloads, &specs, &digests).await?;
            let runtime = ProcessRuntime::new(log_sink, digests);
            serve(&args, runtime, specs, artifacts, wiring).await
        }
        RuntimeKind::Docker => {
            let owner = docker_owner(&args);
            let engine = Engine::connect(&args.docker_network, &owner).await?;
            // Images first: a deployer that stops on a missing image leaves no network behind.
            let artifacts = resolve_images(&workloads, &specs, &engine).await?;
            if engine.ensure_network().await? {
                info!(network = %args.docker_network, "created the project network");
            }
            let removed = engine.remove_leftovers().await?;
            if removed > 0 {
                info!(removed, replica = %owner, "removed containers of an earlier run");
            }
            let runtime = DockerRuntime::new(engine, log_sink);
            serve(&args, runtime, specs, artifacts, wiring).await
        }
    }
}

/// Connections and settings that [`run`] prepares for [`serve`], whatever the runtime.
struct Wiring {
    bus: Bus,
    registry: Registry,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    node: String,
    working_dir: PathBuf,
    injection_store: InjectionStore,
    recovered: Vec<crate::domain::chaos::Injection>,
}

/// Runs the fleet on `runtime` and serves the APIs until shutdown, then stops every instance.
async fn serve<R: Runtime>(
    args: &Args,
    runtime: R,
    specs: Vec<WorkloadSpec>,
    artifacts: HashMap<String, Artifact>,
    wiring: Wiring,
) -> anyhow::Result<()> {
    let Wiring {
        bus,
        registry,
        metrics,
        shutdown,
        node,
        working_dir,
        injection_store,
        recovered,
    } = wiring;
    let events = runtime
        .events()
        .expect("the event stream is taken once, here");
    let settings = Settings {
        node: node.clone(),
        detector_addr: args.detector_addr.clone(),
        stop_grace: args.stop_grace,
        isolation_retention: args.isolation_retention,
        observe_period: args.observe_period,
        working_dir,
    };
    let supervisor = Arc::new(Supervisor::new(
        runtime,
        bus.clone(),
        Stores {
            registry,
            instance_numbers: InstanceNumbers::open(&bus).await?,
        },
        Fleet::new(specs),
        artifacts,
        settings,
        Arc::clone(&metrics),
    ));

    let removed = supervisor.remove_leftovers().await?;
    if removed > 0 {
        info!(removed, "removed registry entries of an earlier run");
    }
    supervisor.adopt_injections(injection_store, recovered);
    let drain_events = CancellationToken::new();
    let event_loop = tokio::spawn({
        let supervisor = Arc::clone(&supervisor);
        let drain = drain_events.clone();
        async move { supervisor.run_events(events, drain).await }
            .instrument(info_span!("deployer.events"))
    });
    supervisor.start_fleet().await;

    let (router, health) = GrpcServer::router();
    let router = router
        .add_service(DeployerServer::new(DeployerService::new(Arc::clone(
            &supervisor,
        ))))
        .add_service(ChaosServer::new(ChaosService::new(
            Arc::clone(&supervisor),
            args.enable_chaos,
            node,
        )));
    let grpc_shutdown = CancellationToken::new();
    let mut grpc = tokio::spawn(GrpcServer::serve(
        router,
        args.grpc_addr,
        grpc_shutdown.clone(),
    ));
    health
        .set_serving::<DeployerServer<DeployerService<R>>>()
        .await;
    health
        .set_serving::<ChaosServer<ChaosService<Supervisor<R>>>>()
        .await;
    if !args.enable_chaos {
        info!("fault injection disabled; start with --enable-chaos to use the Chaos service");
    }

    let consumer = command_consumer::run(
        bus.clone(),
        Arc::clone(&supervisor),
        shutdown.clone(),
        args.common.shutdown_grace,
    );
    let commands = tokio::spawn(consumer.instrument(info_span!("deployer.commands")));

    let grpc_failed = tokio::select! {
        () = shutdown.cancelled() => None,
        result = &mut grpc => Some(result),
    };

    // Drain: stop serving and taking commands, let running commands finish, then stop every
    // instance, publish their exits and remove them from the registry.
    shutdown.cancel();
    grpc_shutdown.cancel();
    health
        .set_not_serving::<DeployerServer<DeployerService<R>>>()
        .await;
    if let Err(error) = commands.await {
        warn!(%error, "command consumer task failed");
    }
    supervisor.stop_all().await;
    drain_events.cancel();
    if let Err(error) = event_loop.await {
        warn!(%error, "event task failed");
    }
    supervisor.remove_all().await;

    let grpc_result = match grpc_failed {
        Some(result) => result,
        // Clients that keep their connection open do not hold up the exit for long.
        None => match tokio::time::timeout(GRPC_DRAIN, grpc).await {
            Ok(result) => result,
            Err(_) => Ok(Ok(())),
        },
    };
    info!("deployer stopped");
    match grpc_result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            Err(error).with_context(|| format!("gRPC server on {} failed", args.grpc_addr))
        }
        Err(error) => Err(error).context("gRPC server task failed"),
    }
}

/// Value of `--runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeArg {
    /// Instances of the workload file, on this machine.
    Workloads(RuntimeKind),
    /// The opted-in pods of a Kubernetes cluster.
    Kubernetes,
}

fn parse_runtime(value: &str) -> Result<RuntimeArg, String> {
    match value {
        "process" => Ok(RuntimeArg::Workloads(RuntimeKind::Process)),
        "docker" => Ok(RuntimeArg::Workloads(RuntimeKind::Docker)),
        "kubernetes" => Ok(RuntimeArg::Kubernetes),
        other => Err(format!(
            "{other:?} is not a runtime: expected process, docker or kubernetes"
        )),
    }
}

/// Name that labels the containers of this deployer, so a later run finds its leftovers: the
/// replica name when one is given, otherwise one made of the node name, which stays the same
/// from one run to the next.
fn docker_owner(args: &Args) -> String {
    args.common
        .replica
        .clone()
        .unwrap_or_else(|| format!("deployer-{}", args.node.clone().unwrap_or_else(host_name)))
}

fn load_workloads(path: &Path, runtime: RuntimeKind) -> anyhow::Result<Vec<WorkloadSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read workload file {}", path.display()))?;
    let file = path.display().to_string();
    let specs = workload_file::parse(&file, &text)?;
    workload_file::check_runtime(&file, &specs, runtime)?;
    Ok(specs)
}

/// Finds each workload's executable on `PATH` and records the digests of it and of its
/// checksum files, with a copy of each small checksum file. Relative checksum paths are
/// relative to the workload file's directory. An executable whose digest differs from the
/// workload's `artifact_digest` still runs: the registry carries the declared digest, and
/// the detector reports the mismatch.
async fn resolve_artifacts(
    file: &Path,
    specs: &[WorkloadSpec],
    digests: &DigestCache,
) -> anyhow::Result<HashMap<String, Artifact>> {
    let path = std::env::var_os("PATH");
    // Absolute, because the detector checks declared files by absolute path and a restarted
    // deployer restores them from any working directory.
    let base = std::path::absolute(directory_of(file)).with_context(|| {
        format!(
            "failed to resolve the directory of the workload file {}",
            file.display()
        )
    })?;
    let mut artifacts = HashMap::new();
    for spec in specs {
        let ProgramSpec::Command(command) = &spec.program else {
            anyhow::bail!(
                "invalid workload file {}: workload {:?}: field image: the process runtime runs commands",
                file.display(),
                spec.name
            );
        };
        let program = executable::resolve(command, path.as_deref()).with_context(|| {
            format!(
                "invalid workload file {}: workload {:?}: field command: {command:?} is not an executable file on PATH",
                file.display(),
                spec.name,
            )
        })?;
        let digest = digests
            .sha256(program.clone())
            .await
            .with_context(|| format!("failed to hash the executable {}", program.display()))?;
        if let Some(expected) = spec.artifact_digest.as_ref().filter(|e| **e != digest) {
            warn!(
                workload = %spec.name,
                program = %program.display(),
                %digest,
                %expected,
                "executable does not match the workload's artifact_digest; its instances start anyway and the detector reports them"
            );
        }
        let mut files = Vec::with_capacity(spec.checksum_files.len());
        for (index, checksum_file) in spec.checksum_files.iter().enumerate() {
            let resolved = base.join(checksum_file);
            let file = checksum_file::load(resolved.clone(), digests)
                .await
                .with_context(|| {
                    format!(
                        "invalid workload file {}: workload {:?}: field checksum_files[{index}]: cannot read {:?}",
                        file.display(),
                        spec.name,
                        resolved.display().to_string()
                    )
                })?;
            if file.pristine.is_none() {
                warn!(
                    workload = %spec.name,
                    path = %resolved.display(),
                    max_bytes = checksum_file::MAX_COPY,
                    "checksum file too large to keep a copy of; a fresh instance cannot get its content back"
                );
            }
            files.push(file);
        }
        info!(workload = %spec.name, program = %program.display(), %digest, "workload executable resolved");
        artifacts.insert(
            spec.name.clone(),
            Artifact {
                program: Program::Executable(program),
                digest,
                files,
            },
        );
    }
    Ok(artifacts)
}

/// Resolves each workload's image to its id, once, so every instance starts from the same
/// image, and reads its checksum files out of the image. An image whose id differs from the
/// workload's `artifact_digest` still runs: the registry carries the declared digest, and the
/// detector reports the mismatch.
async fn resolve_images(
    file: &Path,
    specs: &[WorkloadSpec],
    engine: &Engine,
) -> anyhow::Result<HashMap<String, Artifact>> {
    let mut artifacts = HashMap::new();
    for spec in specs {
        let ProgramSpec::Image(reference) = &spec.program else {
            anyhow::bail!(
                "invalid workload file {}: workload {:?}: field command: the docker runtime runs images",
                file.display(),
                spec.name
            );
        };
        let id = engine.resolve_image(reference).await.with_context(|| {
            format!(
                "invalid workload file {}: workload {:?}: field image: {reference:?} cannot be used",
                file.display(),
                spec.name
            )
        })?;
        if let Some(expected) = spec.artifact_digest.as_ref().filter(|e| **e != id) {
            warn!(
                workload = %spec.name,
                image = %reference,
                %id,
                %expected,
                "image does not match the workload's artifact_digest; its instances start anyway and the detector reports them"
            );
        }
        let paths: Vec<&Path> = spec.checksum_files.iter().map(PathBuf::as_path).collect();
        let contents = engine
            .image_files(&id, &paths)
            .await
            .map_err(|(index, error)| {
                anyhow::Error::new(error).context(format!(
                    "invalid workload file {}: workload {:?}: field checksum_files[{index}]: cannot read {:?} from image {reference}",
                    file.display(),
                    spec.name,
                    paths.get(index).map(|path| path.display().to_string()).unwrap_or_default()
                ))
            })?;
        let files = spec
            .checksum_files
            .iter()
            .zip(contents)
            .map(|(path, content)| ChecksumFile {
                path: path.clone(),
                digest: format!("sha256:{:x}", Sha256::digest(&content)),
                pristine: Some(Arc::from(content)),
            })
            .collect();
        info!(workload = %spec.name, image = %reference, %id, "workload image resolved");
        artifacts.insert(
            spec.name.clone(),
            Artifact {
                program: Program::Image {
                    reference: reference.clone(),
                    id: id.clone(),
                },
                digest: id,
                files,
            },
        );
    }
    Ok(artifacts)
}

/// Connects to NATS and prepares the streams, retrying until it works or shutdown begins.
async fn connect(url: &str, replica: &str, shutdown: &CancellationToken) -> Option<Bus> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Bus::connect_and_prepare(url, replica).await {
            Ok(bus) => return Some(bus),
            Err(error) => warn!(%url, %error, retry_in = ?delay, "NATS not ready, retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// Returns the directory of `file`, or `.` for a bare file name.
fn directory_of(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
