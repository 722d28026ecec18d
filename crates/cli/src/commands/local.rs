//! A local engine for `demo` and `bench`: the stack, a connection to its NATS, gRPC clients and
//! the audit trail joined into timelines.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aro_bus::Bus;
use aro_proto::v1;
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::deployer_client::DeployerClient;
use aro_stack::audit::Audited;
use aro_stack::{Service, Stack, StackConfig};
use futures::{Stream, StreamExt};
use tonic::transport::Channel;

use crate::incidents::{Timeline, Tracker};

/// Flags shared by `demo` and `bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LocalArgs {
    /// Workload file of the fleet. Default: `deploy/local/fleet.toml` in the repository.
    #[arg(long, env = "ARO_WORKLOADS")]
    pub(crate) workloads: Option<PathBuf>,

    /// Policy model. Default: `models/policy.onnx` in the repository.
    #[arg(long, env = "ARO_POLICY_MODEL")]
    pub(crate) model: Option<PathBuf>,

    /// Directory for logs and the JetStream store. Default: `.run/<command>-<pid>` in the
    /// repository.
    #[arg(long)]
    pub(crate) run_dir: Option<PathBuf>,

    /// How long one incident may take from injection to recovery.
    #[arg(long, default_value = "30s", value_parser = aro_service::humantime_duration)]
    pub(crate) incident_timeout: Duration,
}

/// A running local engine.
pub(crate) struct Local {
    pub(crate) stack: Stack,
    pub(crate) chaos: ChaosClient<Channel>,
    pub(crate) deployer: DeployerClient<Channel>,
    pub(crate) tracker: Tracker,
    audit: std::pin::Pin<Box<dyn Stream<Item = Audited> + Send>>,
    pub(crate) run_dir: PathBuf,
}

impl Local {
    /// Starts the stack, follows its audit trail and waits until every instance serves.
    pub(crate) async fn start(
        args: &LocalArgs,
        command: &str,
        extra_args: std::collections::HashMap<Service, Vec<String>>,
    ) -> anyhow::Result<Self> {
        let root = aro_stack::repository_root()
            .context("run aro from inside the repository, or set ARO_ROOT")?;
        let bin_dir = std::env::current_exe()?
            .parent()
            .context("the executable has a directory")?
            .to_owned();
        let run_dir = args.run_dir.clone().unwrap_or_else(|| {
            root.join(".run")
                .join(format!("{command}-{}", std::process::id()))
        });
        let config = StackConfig {
            bin_dir,
            run_dir: run_dir.clone(),
            workloads: args
                .workloads
                .clone()
                .unwrap_or_else(|| root.join("deploy/local/fleet.toml")),
            model: args
                .model
                .clone()
                .unwrap_or_else(|| root.join("models/policy.onnx")),
            onnxruntime: aro_stack::find_onnxruntime(),
            enable_chaos: true,
            extra_args,
            log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        };
        let stack = Stack::start(config)
            .await
            .context("starting the local stack")?;
        let bus = Bus::connect(&stack.nats_url(), "aro-cli").await?;
        let audit = aro_stack::audit::follow(&bus, true, false).await?;
        let channel =
            Channel::from_shared(format!("http://{}", stack.grpc_addr(Service::Deployer)))?
                .connect()
                .await
                .context("connecting to the deployer")?;
        let mut local = Self {
            stack,
            chaos: ChaosClient::new(channel.clone()),
            deployer: DeployerClient::new(channel),
            tracker: Tracker::default(),
            audit,
            run_dir,
        };
        local.wait_until_serving(Duration::from_secs(30)).await?;
        Ok(local)
    }

    /// Waits until every workload has its desired number of serving instances.
    pub(crate) async fn wait_until_serving(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Vec<v1::WorkloadStatus>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let workloads = self
                .deployer
                .list_workloads(v1::ListWorkloadsRequest {})
                .await?
                .into_inner()
                .workloads;
            let serving = workloads.iter().all(|workload| {
                let serving = workload
                    .instances
                    .iter()
                    .filter(|i| i.state() == v1::InstanceState::Serving)
                    .count();
                serving >= workload.replicas as usize
            });
            if serving && !workloads.is_empty() {
                return Ok(workloads);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the fleet did not serve within {timeout:?}; logs are in {}",
                    self.run_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Injects a fault and returns the injection.
    pub(crate) async fn inject(
        &mut self,
        kind: v1::ChaosKind,
        workload: &str,
        instance: &str,
    ) -> anyhow::Result<v1::Injection> {
        let request = v1::InjectFaultRequest {
            kind: kind as i32,
            workload: workload.to_owned(),
            instance: instance.to_owned(),
            ..Default::default()
        };
        let response = self
            .chaos
            .inject_fault(request)
            .await
            .with_context(|| format!("injecting {} into {workload}", kind.as_str_name()))?;
        response
            .into_inner()
            .injection
            .context("the Chaos API returned no injection")
    }

    /// Reads the audit trail until the incident of `injection_id` is recovered or escalated,
    /// calling `on_event` for each event. Returns the timeline.
    pub(crate) async fn follow_until_finished(
        &mut self,
        injection_id: &str,
        timeout: Duration,
        mut on_event: impl FnMut(&Audited),
    ) -> anyhow::Result<Timeline> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let finished = self
                .tracker
                .timelines()
                .into_iter()
                .find(|timeline| timeline.chaos.id == format!("chaos-{injection_id}-injected"));
            if let Some(timeline) = finished.filter(Timeline::finished) {
                return Ok(timeline);
            }
            let next = tokio::time::timeout_at(deadline, self.audit.next()).await;
            match next {
                Ok(Some(audited)) => {
                    self.tracker.observe(&audited.event);
                    on_event(&audited);
                }
                Ok(None) => bail!("the audit trail ended"),
                Err(_) => bail!(
                    "injection {injection_id} was not recovered within {timeout:?}; logs are in {}",
                    self.run_dir.display()
                ),
            }
        }
    }

    /// Stops everything the engine started.
    pub(crate) async fn stop(self) {
        self.stack.stop().await;
    }
}
