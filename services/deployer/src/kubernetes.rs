//! The Kubernetes mode of the deployer: commands from the bus are executed on the pods and
//! Deployments of a cluster through `aro-kube`, and their outcomes are published. A reaper
//! deletes isolated pods whose retention has ended. With chaos enabled, the Chaos API kills
//! and partitions pods.

pub mod chaos;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aro_bus::{Bus, ConsumerSpec, Delivery, Disposition, InjectionStore, subjects};
use aro_kube::commands::{Execution, Executor, outcome_of};
use aro_kube::kube;
use aro_kube::{Actuator, Clock, Settings};
use aro_proto::v1::chaos_server::ChaosServer;
use aro_proto::v1::{Command, Outcome, OutcomeStatus};
use aro_service::{CommonArgs, GrpcServer, humantime_duration, serve_metrics};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::chaos::ChaosState;
use crate::command_consumer::{DURABLE, consume_in_tasks, outcome_workload};
use crate::domain::chaos::State;
use crate::grpc::ChaosService;
use crate::injections;
use crate::metrics::{CommandLabels, Metrics};
use chaos::KubeChaos;

/// Interval of the "still working" acknowledgements while a command is verified.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Delay before a command whose outcome could not be stored is delivered again.
const PUBLISH_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Flags of the Kubernetes mode.
#[derive(clap::Args, Clone, Debug)]
pub struct KubernetesArgs {
    /// Namespaces whose opted-in pods commands act on, separated by commas; a command's pod
    /// is looked for in this order.
    #[arg(
        long = "kube-namespaces",
        env = "ARO_KUBE_NAMESPACES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub namespaces: Vec<String>,

    /// Time a workload lease stays held without renewal.
    #[arg(long = "kube-lease-duration", env = "ARO_KUBE_LEASE_DURATION", default_value = "30s", value_parser = humantime_duration)]
    pub lease_duration: Duration,

    /// Namespace of the node leases taken to cordon a node.
    #[arg(
        long = "kube-lease-namespace",
        env = "ARO_KUBE_LEASE_NAMESPACE",
        default_value = "default"
    )]
    pub lease_namespace: String,

    /// Time an isolated pod is kept for inspection before the reaper deletes it.
    #[arg(long = "kube-quarantine-retention", env = "ARO_KUBE_QUARANTINE_RETENTION", default_value = "1h", value_parser = humantime_duration)]
    pub quarantine_retention: Duration,

    /// Time a workload has to serve with its desired replicas after an action.
    #[arg(long = "kube-verify-timeout", env = "ARO_KUBE_VERIFY_TIMEOUT", default_value = "2m", value_parser = humantime_duration)]
    pub verify_timeout: Duration,

    /// Time between two runs of the reaper of expired isolated pods.
    #[arg(long = "kube-reap-interval", env = "ARO_KUBE_REAP_INTERVAL", default_value = "1m", value_parser = humantime_duration)]
    pub reap_interval: Duration,
}

impl KubernetesArgs {
    /// Returns the action settings for a deployer named `identity`.
    pub fn settings(&self, identity: &str) -> Settings {
        Settings {
            lease_duration: self.lease_duration,
            lease_namespace: self.lease_namespace.clone(),
            quarantine_retention: self.quarantine_retention,
            verify_timeout: self.verify_timeout,
            ..Settings::new(identity)
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self
            .namespaces
            .iter()
            .all(|namespace| namespace.trim().is_empty())
        {
            anyhow::bail!("invalid --kube-namespaces: name at least one namespace");
        }
        for (flag, value) in [
            ("--kube-lease-duration", self.lease_duration),
            ("--kube-reap-interval", self.reap_interval),
        ] {
            if value < Duration::from_secs(1) {
                anyhow::bail!("invalid {flag} {value:?}: it must be at least 1s");
            }
        }
        Ok(())
    }
}

/// Connects to the API server from the in-cluster service account or the kubeconfig, without
/// kube's default retry layer, so that an eviction's 429 reaches the command handler.
///
/// # Errors
///
/// Returns an error when no configuration is found or the client cannot be built.
pub async fn client() -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration found (in-cluster or kubeconfig)")?;
    config.default_retry = false;
    kube::Client::try_from(config).context("building the Kubernetes client failed")
}

/// Default address of the metrics endpoint, the same as in the other runtimes.
const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9403);

/// gRPC settings of the Kubernetes mode.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub grpc_addr: SocketAddr,
    /// Serve the Chaos service; without it every Chaos call fails with FAILED_PRECONDITION.
    pub enable_chaos: bool,
    /// Node name reported in the injections' targets.
    pub node: String,
}

/// Opens fault injection on the opted-in pods of `namespaces`. First removes the partitions
/// that an earlier deployer run left, and closes and publishes that run's injections in the
/// bucket. Then ends injections whose duration ran out, on `tasks`, until the stopping token
/// of `state` is cancelled.
///
/// # Errors
///
/// Returns an error when the leftover partitions cannot be listed or removed, or the
/// injections bucket is unavailable.
pub async fn start_chaos(
    bus: &Bus,
    actuator: Actuator,
    namespaces: Vec<String>,
    state: ChaosState,
    tasks: &TaskTracker,
) -> anyhow::Result<Arc<KubeChaos>> {
    let node = state.node().to_owned();
    let runtime = Arc::new(KubeChaos::new(actuator, namespaces, state));
    runtime
        .clean_leftovers()
        .await
        .context("removing the partitions of an earlier deployer run failed")?;
    let store = InjectionStore::open(bus).await?;
    let recovered = injections::recover(bus, &store, &node).await?;
    crate::chaos::adopt(&runtime, store, recovered, tasks);
    Ok(runtime)
}

/// Runs the deployer's Kubernetes mode until `shutdown` is cancelled: serves metrics and gRPC
/// health, reflection and the Chaos service on `options.grpc_addr`, consumes commands and
/// executes each on the cluster, and runs the reaper. Active injections are undone when it
/// stops. The replica name is the lease holder identity, so give each deployer
/// replica its own (`ARO_REPLICA`, for example the pod name). Commands still running at the end
/// of the shutdown grace are not acknowledged, so JetStream delivers them again.
///
/// # Errors
///
/// Returns an error when the flags are invalid, no Kubernetes configuration is found, or NATS,
/// the metrics address or the gRPC address is unavailable.
pub async fn serve(
    common: &CommonArgs,
    args: &KubernetesArgs,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    args.validate()?;
    let grpc_addr = options.grpc_addr;
    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut metrics_registry));
    let metrics_addr = common.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR);
    serve_metrics(metrics_addr, Arc::new(metrics_registry), shutdown.clone())
        .await
        .with_context(|| format!("failed to serve metrics on {metrics_addr}"))?;
    let identity = common.replica_name("deployer");
    let bus = Bus::connect_and_prepare(&common.nats_url, &identity).await?;
    let client = client().await?;

    let actuator = Actuator::new(client, args.settings(&identity), Clock::system());
    let namespaces: Vec<String> = args
        .namespaces
        .iter()
        .map(|namespace| namespace.trim().to_owned())
        .filter(|namespace| !namespace.is_empty())
        .collect();
    info!(%identity, ?namespaces, "executing commands on Kubernetes");
    let tasks = TaskTracker::new();
    tasks.spawn(reap(
        actuator.clone(),
        namespaces.clone(),
        args.reap_interval,
        shutdown.clone(),
    ));
    let chaos_stopping = CancellationToken::new();
    let state = ChaosState::new(
        bus.clone(),
        Arc::clone(&metrics),
        options.node.clone(),
        chaos_stopping.clone(),
    );
    let chaos_runtime =
        start_chaos(&bus, actuator.clone(), namespaces.clone(), state, &tasks).await?;
    let (router, health) = GrpcServer::router();
    let router = router.add_service(ChaosServer::new(ChaosService::new(
        Arc::clone(&chaos_runtime),
        options.enable_chaos,
        options.node,
    )));
    health
        .set_serving::<ChaosServer<ChaosService<KubeChaos>>>()
        .await;
    if !options.enable_chaos {
        info!("fault injection disabled; start with --enable-chaos to use the Chaos service");
    }
    let grpc = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let served = GrpcServer::serve(router, grpc_addr, shutdown.clone()).await;
            // A server that could not bind stops the consumer too.
            shutdown.cancel();
            served
        }
    });

    consume_commands(
        bus,
        Executor::new(actuator, namespaces),
        metrics,
        shutdown.clone(),
        common.shutdown_grace,
    )
    .await;
    // The reaper stops at the cancellation; a round in progress finishes first.
    shutdown.cancel();
    chaos_stopping.cancel();
    crate::chaos::end_all(&*chaos_runtime, State::Reverted, "the deployer stopped").await;
    tasks.close();
    tasks.wait().await;
    let served = grpc.await.context("gRPC server task failed")?;
    served.with_context(|| format!("gRPC server on {grpc_addr} failed"))?;
    info!("deployer stopped");
    Ok(())
}

/// Consumes commands until `shutdown` is cancelled and executes each through `executor`,
/// then gives running commands `grace` to finish. Commands still running after that are not
/// acknowledged, so JetStream delivers them again.
pub async fn consume_commands(
    bus: Bus,
    executor: Executor,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let handler = Arc::new(Handler {
        bus: bus.clone(),
        executor,
        metrics,
    });
    let spec = ConsumerSpec::new(subjects::COMMANDS_STREAM, DURABLE, "aro.commands.>");
    consume_in_tasks(&bus, spec, shutdown, grace, move |delivery, max_deliver| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(delivery, max_deliver).await }
    })
    .await;
}

#[derive(Debug)]
struct Handler {
    bus: Bus,
    executor: Executor,
    metrics: Arc<Metrics>,
}

impl Handler {
    async fn handle(&self, delivery: Delivery<Command>, max_deliver: i64) {
        let command = &delivery.message;
        let target = command.target.clone().unwrap_or_default();
        let span = info_span!(
            "deployer.command",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = %delivery.subject,
            incident.id = %command.incident_id,
            command.id = %command.id,
            command.action = command.action().as_str_name(),
            workload = %target.workload,
            instance = %target.instance,
            delivered = delivery.delivered,
        );
        if let Err(error) = span.set_parent(delivery.parent.clone()) {
            debug!(%error, "command span keeps no trace parent");
        }
        let disposition = self.execute(&delivery, max_deliver).instrument(span).await;
        delivery.settle(disposition).await;
    }

    async fn execute(&self, delivery: &Delivery<Command>, max_deliver: i64) -> Disposition {
        let command = &delivery.message;
        let execution = self.executor.execute(command);
        tokio::pin!(execution);
        let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
        progress.tick().await;
        let execution = loop {
            tokio::select! {
                execution = &mut execution => break execution,
                _ = progress.tick() => delivery.in_progress().await,
            }
        };
        let outcome = match execution {
            Execution::Finished(outcome) => *outcome,
            Execution::RetryAfter { delay, reason } if delivery.delivered < max_deliver => {
                info!(retry_in = ?delay, %reason, "command deferred");
                return Disposition::Retry(delay);
            }
            Execution::RetryAfter { reason, .. } => {
                warn!(%reason, "command deferred on its last delivery, reporting it failed");
                gave_up(command, delivery.delivered, &reason)
            }
        };
        info!(status = outcome.status().as_str_name(), message = %outcome.message, "command handled");
        self.count(&outcome);
        let subject = subjects::outcome(outcome_workload(&outcome, &delivery.subject));
        match self.bus.publish(subject, &outcome.id, &outcome).await {
            Ok(()) => Disposition::Ack,
            Err(error) => {
                error!(outcome = %outcome.id, %error, "publishing the outcome failed, command will be redelivered");
                Disposition::Retry(PUBLISH_RETRY_DELAY)
            }
        }
    }

    fn count(&self, outcome: &Outcome) {
        let action = outcome.action().as_str_name();
        let status = outcome.status().as_str_name();
        self.metrics
            .commands
            .get_or_create(&CommandLabels {
                action: action
                    .strip_prefix("ACTION_")
                    .unwrap_or(action)
                    .to_ascii_lowercase(),
                status: status
                    .strip_prefix("OUTCOME_STATUS_")
                    .unwrap_or(status)
                    .to_ascii_lowercase(),
            })
            .inc();
    }
}

/// Builds the FAILED outcome of a command that was still deferred at its last delivery.
fn gave_up(command: &Command, delivered: i64, reason: &str) -> Outcome {
    let mut outcome = outcome_of(command);
    outcome.message = format!("not carried out after {delivered} deliveries: {reason}");
    outcome.set_status(OutcomeStatus::Failed);
    outcome
}

/// Deletes expired isolated pods in every namespace each `interval` until `shutdown`.
async fn reap(
    actuator: Actuator,
    namespaces: Vec<String>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        for namespace in &namespaces {
            match actuator.reap(namespace).await {
                Ok(reaped) if !reaped.is_empty() => {
                    info!(%namespace, ?reaped, "expired isolated pods deleted")
                }
                Ok(_) => {}
                Err(error) => warn!(%namespace, %error, "listing isolated pods failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aro_proto::v1::{Action, InstanceRef};
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        kube: KubernetesArgs,
    }

    #[test]
    fn flags_set_the_action_settings() {
        let flags = Flags::try_parse_from([
            "aro-deployer",
            "--kube-namespaces",
            "shop,payments",
            "--kube-lease-duration",
            "15s",
            "--kube-quarantine-retention",
            "10m",
        ])
        .expect("flags parse");
        let settings = flags.kube.settings("deployer-a");
        assert_eq!(flags.kube.namespaces, vec!["shop", "payments"]);
        assert_eq!(settings.identity, "deployer-a");
        assert_eq!(settings.lease_duration, Duration::from_secs(15));
        assert_eq!(settings.quarantine_retention, Duration::from_secs(600));
    }

    #[test]
    fn short_lease_is_rejected() {
        let flags = Flags::try_parse_from(["aro-deployer", "--kube-lease-duration", "100ms"])
            .expect("flags parse");
        let error = flags
            .kube
            .validate()
            .expect_err("a lease under 1s is invalid");
        assert_eq!(
            error.to_string(),
            "invalid --kube-lease-duration 100ms: it must be at least 1s"
        );
    }

    #[test]
    fn deferred_command_fails_on_its_last_delivery() {
        let command = Command {
            id: "cmd-inc-web-1-a1".to_owned(),
            incident_id: "inc-web-1".to_owned(),
            attempt: 1,
            target: Some(InstanceRef {
                workload: "web".to_owned(),
                ..InstanceRef::default()
            }),
            action: Action::Restart.into(),
            ..Command::default()
        };
        let outcome = gave_up(
            &command,
            10,
            "evicting pod web-1 is blocked by a disruption budget",
        );
        assert_eq!(outcome.id, "out-cmd-inc-web-1-a1");
        assert_eq!(outcome.status(), OutcomeStatus::Failed);
        assert_eq!(
            outcome.message,
            "not carried out after 10 deliveries: evicting pod web-1 is blocked by a disruption budget"
        );
        assert_eq!(outcome_workload(&outcome, "aro.commands.web"), "web");
    }
}
