//! Flags, wiring and graceful shutdown of the detector.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aro_bus::{Bus, Registry};
use aro_proto::v1::detector_server::DetectorServer;
use aro_service::{CommonArgs, GrpcServer, Telemetry, humantime_duration, serve_metrics};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::domain::phi::PhiSettings;
use crate::domain::{DetectorConfig, Tracker};
use crate::grpc::DetectorService;
use crate::metrics::Metrics;
use crate::publisher::{self, Publisher};
use crate::watcher::{self, Watcher};
use crate::{registry, signals};

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
            ..DetectorConfig::default()
        }
    }
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
    if args.tick.is_zero() {
        anyhow::bail!("invalid --tick 0ms: the evaluation period must be above zero");
    }
    let _telemetry = Telemetry::init(SERVICE, &args.common)?;
    let shutdown = aro_service::shutdown_on_signal();
    let replica = args.common.replica_name(SERVICE);
    info!(%replica, threshold = config.threshold, "detector starting");

    let bus = Bus::connect_and_prepare(&args.common.nats_url, &replica).await?;
    let registry = Registry::open(&bus).await?;
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut metrics_registry));
    let (fault_sender, fault_receiver) = mpsc::unbounded_channel();
    let watcher = Watcher::new(
        Tracker::new(config),
        Arc::clone(&metrics),
        fault_sender,
        shutdown.clone(),
    );
    registry::load(&registry, &watcher).await?;

    let publisher = Publisher::new(bus.clone(), Arc::clone(&metrics));
    let tasks = TaskTracker::new();
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

    let metrics_addr = args.common.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR);
    serve_metrics(metrics_addr, Arc::new(metrics_registry), shutdown.clone())
        .await
        .with_context(|| format!("failed to serve metrics on {metrics_addr}"))?;
    let (router, health) = GrpcServer::router();
    health
        .set_serving::<DetectorServer<DetectorService>>()
        .await;
    let router = router.add_service(DetectorServer::new(DetectorService::new(Arc::clone(
        &watcher,
    ))));
    let served = GrpcServer::serve(router, args.grpc_addr, shutdown.clone()).await;
    // The server also returns when binding fails; stop everything else then too.
    shutdown.cancel();

    tasks.close();
    publishing.close();
    let drained = tokio::time::timeout(args.common.shutdown_grace, async {
        tasks.wait().await;
        publishing.wait().await;
        watcher.probes_stopped().await;
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
}
