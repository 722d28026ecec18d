//! Flags, wiring and shutdown of the brain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aro_bus::{Bus, ConsumerSpec, Disposition, subjects};
use aro_policy::{Action, ActionSet};
use aro_proto::v1;
use aro_service::{
    CommonArgs, GrpcServer, Telemetry, humantime_duration, serve_metrics, shutdown_on_signal,
};
use clap::Parser;
use tracing::{Instrument, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::guards::{GuardConfig, Guards};
use crate::domain::peers::RecentFaults;
use crate::domain::storm::{StormConfig, StormDetector};
use crate::grpc::BrainService;
use crate::handler::{Brain, DecisionConfig};
use crate::incidents::IncidentStore;
use crate::metrics::Metrics;
use crate::onnx::{Policy, PolicyModel, locate_onnxruntime};

/// Decides recoveries for fault events with an ONNX policy behind safety guards.
#[derive(Debug, Parser)]
#[command(name = "aro-brain", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Address of the gRPC server (Brain, health, reflection).
    #[arg(long, env = "ARO_BRAIN_GRPC_ADDR", default_value = "127.0.0.1:7402")]
    grpc_addr: SocketAddr,

    /// Policy model in ONNX format.
    #[arg(long, env = "ARO_POLICY_MODEL", default_value = "models/policy.onnx")]
    model: PathBuf,

    /// ONNX Runtime shared library. Found in the project's .venv when unset.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    onnxruntime: Option<PathBuf>,

    /// Minimum probability the policy must give its action; below it the rule policy decides.
    #[arg(long, env = "ARO_MIN_CONFIDENCE", default_value_t = 0.5)]
    min_confidence: f32,

    /// Actions the deployer's runtime executes, comma-separated.
    #[arg(
        long,
        env = "ARO_SUPPORTED_ACTIONS",
        value_delimiter = ',',
        default_value = "observe,restart,replace,escalate"
    )]
    supported_actions: Vec<Action>,

    /// Recoveries per second across all workloads.
    #[arg(long, env = "ARO_GLOBAL_RATE", default_value_t = 5.0)]
    global_rate: f64,

    /// Recoveries that may start at once across all workloads.
    #[arg(long, env = "ARO_GLOBAL_BURST", default_value_t = 20.0)]
    global_burst: f64,

    /// Recoveries per second for one workload.
    #[arg(long, env = "ARO_WORKLOAD_RATE", default_value_t = 2.0)]
    workload_rate: f64,

    /// Recoveries that may start at once for one workload.
    #[arg(long, env = "ARO_WORKLOAD_BURST", default_value_t = 10.0)]
    workload_burst: f64,

    /// Back-off before the third recovery of one target within the back-off window; it doubles
    /// with each further recovery.
    #[arg(long, env = "ARO_BACKOFF_BASE", default_value = "1s", value_parser = humantime_duration)]
    backoff_base: Duration,

    /// Maximum back-off of one target.
    #[arg(long, env = "ARO_BACKOFF_MAX", default_value = "5m", value_parser = humantime_duration)]
    backoff_max: Duration,

    /// Faults of other instances within this window count as the policy's workload and node
    /// peer faults: replicas failing together point at a release, a dependency or the node.
    #[arg(long, env = "ARO_PEER_FAULT_WINDOW", default_value = "30s", value_parser = humantime_duration)]
    peer_fault_window: Duration,

    /// Mode of every workload without a `--workload-mode`: `enforce` (act), `propose` (wait
    /// for approval through the Approve call or `aro approve`) or `observe` (decide and record
    /// on `aro.decisions.<workload>`, act on nothing).
    #[arg(long, env = "ARO_MODE", default_value = "enforce", value_parser = parse_mode)]
    mode: v1::Mode,

    /// Mode of one workload, as `WORKLOAD=MODE`; repeat the flag for several workloads.
    #[arg(long = "workload-mode", env = "ARO_WORKLOAD_MODES", value_delimiter = ',', value_parser = parse_workload_mode)]
    workload_modes: Vec<(String, v1::Mode)>,

    /// Faults of one workload within --storm-window that make a storm: they become one
    /// incident that pages a person once instead of one recovery each. 0 turns it off.
    #[arg(long, env = "ARO_STORM_THRESHOLD", default_value_t = 5)]
    storm_threshold: usize,

    /// Window in which --storm-threshold faults make a storm.
    #[arg(long, env = "ARO_STORM_WINDOW", default_value = "10s", value_parser = humantime_duration)]
    storm_window: Duration,

    /// Recoveries in flight at once.
    #[arg(long, env = "ARO_MAX_CONCURRENT", default_value_t = 16)]
    max_concurrent: usize,
}

/// Parses the flags and runs the brain until a shutdown signal.
///
/// # Errors
///
/// Returns an error when start-up fails: no model, a model that does not fit, no NATS.
pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the Tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = Telemetry::init("aro-brain", &args.common)?;
    let shutdown = shutdown_on_signal();

    // The model loads before anything else, so a missing or unfit model stops start-up
    // instead of failing in the middle of an incident.
    let library = match &args.onnxruntime {
        Some(path) => path.clone(),
        None => locate_onnxruntime().ok_or(crate::onnx::OnnxError::LibraryNotFound)?,
    };
    let model = PolicyModel::load(&library, &args.model)?;
    let policy = Policy::spawn(model);

    let mut supported = ActionSet::EMPTY;
    for action in &args.supported_actions {
        supported.insert(*action);
    }
    let guards = Guards::new(
        GuardConfig {
            global_rate: args.global_rate,
            global_burst: args.global_burst,
            workload_rate: args.workload_rate,
            workload_burst: args.workload_burst,
            backoff_base: args.backoff_base,
            backoff_max: args.backoff_max,
            max_concurrent: args.max_concurrent,
            ..GuardConfig::default()
        },
        Instant::now(),
        rand::random(),
    );

    let replica = args.common.replica_name("brain");
    let bus = Bus::connect_and_prepare(&args.common.nats_url, &replica).await?;
    let incidents = IncidentStore::open(&bus).await?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    if let Some(addr) = args.common.metrics_addr {
        serve_metrics(addr, Arc::new(registry), shutdown.clone())
            .await
            .with_context(|| format!("binding metrics address {addr}"))?;
    }

    let brain = Arc::new(Brain {
        bus: bus.clone(),
        incidents,
        policy,
        guards: Mutex::new(guards),
        storms: Mutex::new(StormDetector::new(StormConfig {
            threshold: args.storm_threshold,
            window: args.storm_window,
            ..StormConfig::default()
        })),
        recent: Mutex::new(RecentFaults::new(args.peer_fault_window, 10_000)),
        config: DecisionConfig {
            default_mode: args.mode,
            workload_modes: args.workload_modes.iter().cloned().collect(),
            supported,
            min_confidence: args.min_confidence,
        },
        metrics,
    });

    let faults = {
        let brain = Arc::clone(&brain);
        let spec = ConsumerSpec::new(subjects::FAULTS_STREAM, "brain", "aro.faults.>");
        let bus = bus.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move {
                aro_bus::consume::<v1::FaultEvent, _, _>(&bus, spec, shutdown, |delivery| {
                    let brain = Arc::clone(&brain);
                    async move {
                        let span = info_span!(
                            "brain.fault",
                            otel.kind = "consumer",
                            incident_id = %delivery.message.incident_id,
                            fault_id = %delivery.message.id,
                        );
                        if let Err(error) = span.set_parent(delivery.parent.clone()) {
                            warn!(%error, "trace context not attached");
                        }
                        let disposition = brain
                            .handle_fault(delivery.message.clone(), delivery.delivered)
                            .instrument(span)
                            .await;
                        delivery.settle(disposition).await;
                    }
                })
                .await
            }
            .instrument(info_span!("brain.faults")),
        )
    };

    let outcomes = {
        let brain = Arc::clone(&brain);
        let spec = ConsumerSpec::new(subjects::OUTCOMES_STREAM, "brain", "aro.outcomes.>");
        let bus = bus.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(
            async move {
                aro_bus::consume::<v1::Outcome, _, _>(&bus, spec, shutdown, |delivery| {
                    let brain = Arc::clone(&brain);
                    async move {
                        let span = info_span!(
                            "brain.outcome",
                            otel.kind = "consumer",
                            incident_id = %delivery.message.incident_id,
                            outcome_id = %delivery.message.id,
                        );
                        if let Err(error) = span.set_parent(delivery.parent.clone()) {
                            warn!(%error, "trace context not attached");
                        }
                        let disposition: Disposition = brain
                            .handle_outcome(delivery.message.clone(), delivery.delivered)
                            .instrument(span)
                            .await;
                        delivery.settle(disposition).await;
                    }
                })
                .await
            }
            .instrument(info_span!("brain.outcomes")),
        )
    };

    let (router, health) = GrpcServer::router();
    health
        .set_serving::<v1::brain_server::BrainServer<BrainService>>()
        .await;
    let router = router.add_service(v1::brain_server::BrainServer::new(BrainService {
        brain: Arc::clone(&brain),
    }));
    info!(replica = %replica, model_version = %brain.policy.version(), "brain started");
    GrpcServer::serve(router, args.grpc_addr, shutdown.clone()).await?;

    // The gRPC server returns once shutdown is cancelled; the consumers stop at the same
    // signal after settling the message in hand.
    let drain = async {
        let _ = faults.await;
        let _ = outcomes.await;
    };
    if tokio::time::timeout(args.common.shutdown_grace, drain)
        .await
        .is_err()
    {
        warn!(grace = ?args.common.shutdown_grace, "consumers did not stop within the grace period");
    }
    info!("brain stopped");
    Ok(())
}

fn parse_mode(value: &str) -> Result<v1::Mode, String> {
    match value {
        "enforce" => Ok(v1::Mode::Enforce),
        "propose" => Ok(v1::Mode::Propose),
        "observe" => Ok(v1::Mode::Observe),
        _ => Err(format!(
            "invalid mode {value:?}: expected enforce, propose or observe"
        )),
    }
}

fn parse_workload_mode(value: &str) -> Result<(String, v1::Mode), String> {
    let (workload, mode) = value.split_once('=').ok_or_else(|| {
        format!("invalid workload mode {value:?}: expected WORKLOAD=MODE, like web=propose")
    })?;
    aro_bus::subjects::validate_name(workload)
        .map_err(|reason| format!("invalid workload in {value:?}: {reason}"))?;
    Ok((workload.to_owned(), parse_mode(mode)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_modes_parse() {
        assert_eq!(
            parse_workload_mode("web=propose"),
            Ok(("web".to_owned(), v1::Mode::Propose))
        );
        assert_eq!(parse_mode("observe"), Ok(v1::Mode::Observe));
    }

    #[test]
    fn bad_workload_modes_name_the_value() {
        let error = parse_workload_mode("web").expect_err("no mode given");
        assert!(error.contains("\"web\""), "{error}");
        let error = parse_workload_mode("web=sometimes").expect_err("no such mode");
        assert!(error.contains("sometimes"), "{error}");
        let error = parse_workload_mode("Web=observe").expect_err("not a workload name");
        assert!(error.contains("Web"), "{error}");
    }
}
