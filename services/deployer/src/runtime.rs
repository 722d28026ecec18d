//! Command-line flags, wiring and graceful shutdown of the deployer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aro_bus::{Bus, Registry};
use aro_proto::v1::chaos_server::ChaosServer;
use aro_proto::v1::deployer_server::DeployerServer;
use aro_service::{CommonArgs, GrpcServer, humantime_duration, serve_metrics};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::backend::Runtime;
use crate::backend::process::ProcessRuntime;
use crate::checksum_file;
use crate::command_consumer;
use crate::domain::fleet::Fleet;
use crate::domain::workload::WorkloadSpec;
use crate::domain::workload_file;
use crate::executable::{self, DigestCache};
use crate::grpc::{ChaosService, DeployerService};
use crate::logs::{self, LogSink};
use crate::metrics::Metrics;
use crate::supervisor::{Artifact, Settings, Supervisor};

const SERVICE: &str = "aro-deployer";

/// The deployer: runs workloads, executes recovery commands and injects faults.
#[derive(Debug, Parser)]
#[command(name = "aro-deployer", version, about)]
pub struct Args {
    /// Workload file (TOML) declaring the workloads to run.
    #[arg(long, env = "ARO_WORKLOADS")]
    pub workloads: PathBuf,

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

    let specs = load_workloads(&args.workloads)?;
    let working_dir = std::path::absolute(args.workloads.parent().unwrap_or(Path::new(".")))
        .with_context(|| {
            format!(
                "failed to resolve the directory of the workload file {}",
                args.workloads.display()
            )
        })?;
    let digests = DigestCache::default();
    let artifacts = resolve_artifacts(&args.workloads, &specs, &digests).await?;
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

    let (log_sink, log_queue) = LogSink::new(Arc::clone(&metrics));
    let log_publisher = logs::publish(log_queue, bus.client().clone(), Arc::clone(&metrics));
    tokio::spawn(log_publisher.instrument(info_span!("deployer.logs")));
    let process_runtime = ProcessRuntime::new(log_sink, digests);
    let events = process_runtime
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
        process_runtime,
        bus.clone(),
        registry,
        Fleet::new(specs),
        artifacts,
        settings,
        Arc::clone(&metrics),
    ));

    let removed = supervisor.remove_leftovers().await?;
    if removed > 0 {
        info!(removed, "removed registry entries of an earlier run");
    }
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
        .set_serving::<DeployerServer<DeployerService<ProcessRuntime>>>()
        .await;
    health
        .set_serving::<ChaosServer<ChaosService<ProcessRuntime>>>()
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
        .set_not_serving::<DeployerServer<DeployerService<ProcessRuntime>>>()
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

fn load_workloads(path: &Path) -> anyhow::Result<Vec<WorkloadSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read workload file {}", path.display()))?;
    Ok(workload_file::parse(&path.display().to_string(), &text)?)
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
    let base = file.parent().unwrap_or(Path::new("."));
    let mut artifacts = HashMap::new();
    for spec in specs {
        let program = executable::resolve(&spec.command, path.as_deref()).with_context(|| {
            format!(
                "invalid workload file {}: workload {:?}: field command: {:?} is not an executable file on PATH",
                file.display(),
                spec.name,
                spec.command
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
                program,
                digest,
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
