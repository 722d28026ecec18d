//! Flags, wiring and graceful shutdown of the detector.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aro_bus::{Bus, Registry};
use aro_logmine::ScorerConfig;
use aro_proto::v1::detector_server::DetectorServer;
use aro_service::{CommonArgs, GrpcServer, Telemetry, humantime_duration, serve_metrics};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::domain::phi::PhiSettings;
use crate::domain::{DetectorConfig, MemorySettings, Tracker, WorkloadScorers};
use crate::grpc::DetectorService;
use crate::integrity::{Hasher, Integrity, IntegritySettings};
use crate::logs::{self, Intake, LogSettings};
use crate::metrics::Metrics;
use crate::publisher::{self, Publisher};
use crate::watcher::{self, Watcher};
use crate::{kubernetes, registry, signals};

const SERVICE: &str = "aro-detector";

/// Address of the Prometheus endpoint when `--metrics-addr` is not set.
const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9401);

/// Flags of the detector, each with an environment-variable twin.
#[derive(Debug, clap::Parser)]
#[command(name = "aro-detector", version, about)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub kube: kubernetes::KubernetesArgs,

    /// Address of the gRPC server (aro.v1.Detector, health and reflection).
    #[arg(long, env = "ARO_DETECTOR_GRPC_ADDR", default_value = "127.0.0.1:7401")]
    pub grpc_addr: SocketAddr,

    /// Suspicion level (phi) at which a serving instance is declared hung.
    #[arg(long, env = "ARO_DETECTOR_PHI_THRESHOLD", default_value_t = 8.0)]
    pub phi_threshold: f64,

    /// Floor of the standard deviation of arrival intervals in the phi computation.
    #[arg(long, env = "ARO_DETECTOR_MIN_STD_DEV", default_value = "100ms", value_parser = humantime_duration)]
    pub min_std_dev: Duration,

    /// Delay beyond the mean arrival interval that is tolerated before suspicion rises.
    #[arg(long, env = "ARO_DETECTOR_ACCEPTABLE_PAUSE", default_value = "200ms", value_parser = humantime_duration)]
    pub acceptable_pause: Duration,

    /// Number of arrival intervals per instance that the phi computation keeps.
    #[arg(long, env = "ARO_DETECTOR_PHI_WINDOW", default_value_t = 200)]
    pub phi_window: usize,

    /// Time after an instance is first seen serving during which no suspicion accrues.
    #[arg(long, env = "ARO_DETECTOR_STARTUP_GRACE", default_value = "1s", value_parser = humantime_duration)]
    pub startup_grace: Duration,

    /// An unexpected exit within this time after an earlier one of the same instance id is a
    /// crash loop.
    #[arg(long, env = "ARO_DETECTOR_CRASH_LOOP_WINDOW", default_value = "60s", value_parser = humantime_duration)]
    pub crash_loop_window: Duration,

    /// Consecutive answered probe failures after which a serving instance is unhealthy.
    #[arg(long, env = "ARO_DETECTOR_UNHEALTHY_AFTER", default_value_t = 3)]
    pub unhealthy_after: u32,

    /// Healthy serving time after which an instance's open incident is closed.
    #[arg(long, env = "ARO_DETECTOR_INCIDENT_CLOSE_AFTER", default_value = "10s", value_parser = humantime_duration)]
    pub incident_close_after: Duration,

    /// Time between two evaluations of every instance's suspicion level.
    #[arg(long, env = "ARO_DETECTOR_TICK", default_value = "25ms", value_parser = humantime_duration)]
    pub tick: Duration,

    /// Node name of this host. The detector reads the process, files and memory only of
    /// instances whose reference names this node. Defaults to the host name, as the
    /// deployer's `--node` does.
    #[arg(long, env = "ARO_NODE")]
    pub node: Option<String>,

    /// Time between two looks at the declared files (size, times, inode) and the resident
    /// memory of each instance on this node.
    #[arg(long, env = "ARO_DETECTOR_POLL_INTERVAL", default_value = "1s", value_parser = humantime_duration)]
    pub poll_interval: Duration,

    /// Time between two full hashes of the artifact and declared files of each instance on
    /// this node.
    #[arg(long, env = "ARO_DETECTOR_REHASH_INTERVAL", default_value = "30s", value_parser = humantime_duration)]
    pub rehash_interval: Duration,

    /// Bytes per second read for hashing at most, across all instances: a number of bytes or
    /// a number with KiB, MiB or GiB.
    #[arg(long, env = "ARO_DETECTOR_HASH_RATE", default_value = "64MiB", value_parser = byte_size)]
    pub hash_rate: u64,

    /// Share of an instance's memory limit at or above which its resident memory counts as
    /// exhausted, above 0 and at most 1.
    #[arg(long, env = "ARO_DETECTOR_MEMORY_FRACTION", default_value_t = 0.9)]
    pub memory_fraction: f64,

    /// A linear trend of resident memory that reaches the limit within this time counts as
    /// exhaustion.
    #[arg(long, env = "ARO_DETECTOR_MEMORY_HORIZON", default_value = "30s", value_parser = humantime_duration)]
    pub memory_horizon: Duration,

    /// Time a serving replica's data checksum must keep disagreeing with a strict majority of
    /// its workload's serving replicas before it counts as corrupt.
    #[arg(long, env = "ARO_DETECTOR_DATA_CHECKSUM_CONFIRM", default_value = "3s", value_parser = humantime_duration)]
    pub data_checksum_confirm: Duration,

    /// Log lines that wait for the anomaly scorer at most; further lines are dropped and
    /// counted.
    #[arg(long, env = "ARO_DETECTOR_LOG_QUEUE", default_value_t = 8192)]
    pub log_queue: usize,

    /// Maximum length in bytes of a scored log line; the rest of a longer line is cut off.
    #[arg(long, env = "ARO_DETECTOR_LOG_MAX_LINE_BYTES", default_value_t = 4096)]
    pub log_max_line_bytes: usize,
}

impl Args {
    /// Returns the domain settings that the flags describe.
    pub fn detector_config(&self) -> DetectorConfig {
        DetectorConfig {
            phi: PhiSettings {
                window: self.phi_window,
                min_std_dev: self.min_std_dev,
                acceptable_pause: self.acceptable_pause,
            },
            threshold: self.phi_threshold,
            startup_grace: self.startup_grace,
            crash_loop_window: self.crash_loop_window,
            unhealthy_after: self.unhealthy_after,
            incident_close_after: self.incident_close_after,
            memory: MemorySettings {
                fraction: self.memory_fraction,
                horizon: self.memory_horizon,
                ..MemorySettings::default()
            },
            data_checksum_confirm: self.data_checksum_confirm,
            ..DetectorConfig::default()
        }
    }

    /// Returns the settings of the log anomaly scorers.
    pub fn scorer_config(&self) -> ScorerConfig {
        let mut config = ScorerConfig::default();
        config.miner.max_line_bytes = self.log_max_line_bytes;
        config
    }

    fn integrity_settings(&self) -> IntegritySettings {
        IntegritySettings {
            node: self.node.clone().unwrap_or_else(host_name),
            poll_interval: self.poll_interval,
            rehash_interval: self.rehash_interval,
        }
    }

    /// Checks the flags that the domain settings do not cover.
    fn validate_adapters(&self) -> anyhow::Result<()> {
        for (flag, value) in [
            ("--tick", self.tick),
            ("--poll-interval", self.poll_interval),
            ("--rehash-interval", self.rehash_interval),
        ] {
            if value.is_zero() {
                anyhow::bail!("invalid {flag} {value:?}: the period must be above zero");
            }
        }
        if self.hash_rate == 0 {
            anyhow::bail!("invalid --hash-rate 0: the rate must be above zero");
        }
        if self.log_queue == 0 {
            anyhow::bail!("invalid --log-queue 0: the queue must hold at least one line");
        }
        Ok(())
    }
}

/// Parses a byte count such as `4096`, `512KiB`, `64MiB` or `1GiB`.
fn byte_size(value: &str) -> Result<u64, String> {
    let trimmed = value.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "invalid byte size {value:?}: unknown unit {other:?}, expected B, KiB, MiB or GiB"
            ));
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid byte size {value:?}: expected a whole number and a unit"))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid byte size {value:?}: too large"))
}

/// Returns the host name, or `local` when it is unavailable.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// Runs the detector until SIGINT or SIGTERM, then drains: the gRPC server finishes open
/// calls, the signal consumer finishes the signal in hand, and queued faults are published,
/// all within the shutdown grace.
///
/// # Errors
///
/// Returns an error when the settings are invalid, or when NATS, the registry or a listening
/// address is unavailable at start.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.detector_config();
    config.validate().context("invalid detector settings")?;
    args.validate_adapters()?;
    let scorers = WorkloadScorers::new(args.scorer_config()).context("invalid log settings")?;
    let _telemetry = Telemetry::init(SERVICE, &args.common)?;
    let shutdown = aro_service::shutdown_on_signal();
    let replica = args.common.replica_name(SERVICE);
    info!(%replica, threshold = config.threshold, "detector starting");

    let bus = Bus::connect_and_prepare(&args.common.nats_url, &replica).await?;
    let registry = Registry::open(&bus).await?;
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut metrics_registry));
    let (fault_sender, fault_receiver) = mpsc::unbounded_channel();
    let integrity_settings = args.integrity_settings();
    info!(node = %integrity_settings.node, hash_rate = args.hash_rate, "checking processes and files of instances on this node");
    let integrity = Integrity::new(
        integrity_settings,
        Hasher::new(args.hash_rate, Arc::clone(&metrics)),
    );
    let watcher = Watcher::new(
        Tracker::new(config),
        Arc::clone(&metrics),
        fault_sender,
        Some(integrity),
        shutdown.clone(),
    );
    registry::load(&registry, &watcher).await?;
    // Log lines get a connection of their own, so a flood of them does not delay fault
    // publishing and signal consumption on the bus connection.
    let log_client = logs::connect(&args.common.nats_url, &replica, Arc::clone(&metrics))
        .await
        .context("connecting to NATS for log lines failed")?;
    let (intake, lines) = Intake::new(
        LogSettings {
            queue_capacity: args.log_queue,
            max_line_bytes: args.log_max_line_bytes,
        },
        Arc::clone(&metrics),
    );

    let publisher = Publisher::new(bus.clone(), Arc::clone(&metrics));
    let tasks = TaskTracker::new();
    if args.kube.enabled {
        let sinks = kubernetes::Sinks {
            bus: bus.clone(),
            registry: registry.clone(),
            watcher: Arc::clone(&watcher),
            logs: log_client.clone(),
        };
        let client = kubernetes::client().await?;
        tasks.spawn(kubernetes::run(
            client,
            args.kube.namespaces.clone(),
            sinks,
            shutdown.clone(),
        ));
    }
    let publishing = TaskTracker::new();
    tasks.spawn(registry::follow(
        registry,
        Arc::clone(&watcher),
        shutdown.clone(),
    ));
    tasks.spawn(watcher::run_ticker(
        Arc::clone(&watcher),
        args.tick,
        shutdown.clone(),
    ));
    tasks.spawn(publisher::run_queue(
        publisher.clone(),
        fault_receiver,
        publishing.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(signals::consume(
        bus,
        Arc::clone(&watcher),
        publisher,
        Arc::clone(&metrics),
        shutdown.clone(),
    ));
    tasks.spawn(logs::subscribe(log_client, intake, shutdown.clone()));
    tasks.spawn(logs::score(
        lines,
        scorers,
        Arc::clone(&watcher),
        Arc::clone(&metrics),
    ));

    let metrics_addr = args.common.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR);
    serve_metrics(metrics_addr, Arc::new(metrics_registry), shutdown.clone())
        .await
        .with_context(|| format!("failed to serve metrics on {metrics_addr}"))?;
    let (router, health) = GrpcServer::router();
    health
        .set_serving::<DetectorServer<DetectorService>>()
        .await;
    let router = router.add_service(DetectorServer::new(DetectorService::new(
        Arc::clone(&watcher),
        Arc::clone(&metrics),
    )));
    let served = GrpcServer::serve(router, args.grpc_addr, shutdown.clone()).await;
    // The server also returns when binding fails; stop everything else then too.
    shutdown.cancel();

    tasks.close();
    publishing.close();
    let drained = tokio::time::timeout(args.common.shutdown_grace, async {
        tasks.wait().await;
        publishing.wait().await;
        watcher.tasks_stopped().await;
    })
    .await;
    if drained.is_err() {
        warn!(grace = ?args.common.shutdown_grace, "shutdown grace elapsed before all work finished");
    }
    served.with_context(|| format!("gRPC server on {} failed", args.grpc_addr))?;
    info!("detector stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn flag_defaults_match_domain_defaults() {
        let args = Args::try_parse_from(["aro-detector"]).expect("defaults parse");
        assert_eq!(args.detector_config(), DetectorConfig::default());
    }

    #[test]
    fn flags_set_config() {
        let args = Args::try_parse_from([
            "aro-detector",
            "--phi-threshold",
            "10",
            "--min-std-dev",
            "50ms",
            "--startup-grace",
            "3s",
            "--unhealthy-after",
            "5",
        ])
        .expect("flags parse");
        let config = args.detector_config();
        assert_eq!(config.threshold, 10.0);
        assert_eq!(config.phi.min_std_dev, Duration::from_millis(50));
        assert_eq!(config.startup_grace, Duration::from_secs(3));
        assert_eq!(config.unhealthy_after, 5);
    }

    #[test]
    fn sense_flags_set_config() {
        let args = Args::try_parse_from([
            "aro-detector",
            "--memory-fraction",
            "0.8",
            "--memory-horizon",
            "10s",
            "--data-checksum-confirm",
            "1s",
            "--hash-rate",
            "16MiB",
            "--node",
            "node-a",
        ])
        .expect("flags parse");
        let config = args.detector_config();
        assert_eq!(config.memory.fraction, 0.8);
        assert_eq!(config.memory.horizon, Duration::from_secs(10));
        assert_eq!(config.data_checksum_confirm, Duration::from_secs(1));
        assert_eq!(args.hash_rate, 16 << 20);
        assert_eq!(args.integrity_settings().node, "node-a");
    }

    #[test]
    fn zero_poll_interval_is_rejected() {
        let args =
            Args::try_parse_from(["aro-detector", "--poll-interval", "0s"]).expect("flags parse");
        let error = args
            .validate_adapters()
            .expect_err("a zero period is invalid");
        assert_eq!(
            error.to_string(),
            "invalid --poll-interval 0ns: the period must be above zero"
        );
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(byte_size("4096"), Ok(4096));
        assert_eq!(byte_size("512KiB"), Ok(512 << 10));
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size("2 GiB"), Ok(2 << 30));
    }

    #[test]
    fn bad_byte_sizes_are_named() {
        assert_eq!(
            byte_size("64MB"),
            Err(
                "invalid byte size \"64MB\": unknown unit \"MB\", expected B, KiB, MiB or GiB"
                    .to_owned()
            )
        );
        assert!(byte_size("MiB").is_err());
        assert!(byte_size("99999999999GiB").is_err());
    }
}
