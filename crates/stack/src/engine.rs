use std::pin::Pin;
use std::time::Duration;

use aro_proto::v1;
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::deployer_client::DeployerClient;
use futures::{Stream, StreamExt};
use tonic::transport::Channel;

use crate::audit::Audited;
use crate::timeline::{Timeline, Tracker};
use crate::{Error, Result, Service, Stack, StackConfig};

/// A running local stack with what drives and watches it: gRPC clients of the deployer and its
/// Chaos API, and the audit trail joined into one timeline per injection.
pub struct Engine {
    pub stack: Stack,
    pub bus: aro_bus::Bus,
    pub chaos: ChaosClient<Channel>,
    pub deployer: DeployerClient<Channel>,
    pub tracker: Tracker,
    audit: Pin<Box<dyn Stream<Item = Audited> + Send>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

fn grpc_error(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Grpc { call, status }
}

impl Engine {
    /// Starts the stack, follows its audit trail from the start and waits until every
    /// workload serves.
    ///
    /// # Errors
    ///
    /// Returns an error when a process does not start or the fleet does not serve in 30 s.
    pub async fn start(config: StackConfig) -> Result<Self> {
        let stack = Stack::start(config).await?;
        let bus = aro_bus::Bus::connect(&stack.nats_url(), "aro-engine").await?;
        let audit = crate::audit::follow(&bus, true, false).await?;
        let endpoint = format!("http://{}", stack.grpc_addr(Service::Deployer));
        let channel = Channel::from_shared(endpoint)
            .expect("a socket address forms a valid URI")
            .connect()
            .await
            .map_err(|error| Error::Grpc {
                call: "connect",
                status: tonic::Status::unavailable(error.to_string()),
            })?;
        let mut engine = Self {
            stack,
            bus,
            chaos: ChaosClient::new(channel.clone()),
            deployer: DeployerClient::new(channel),
            tracker: Tracker::default(),
            audit,
        };
        engine.wait_until_serving(Duration::from_secs(30)).await?;
        Ok(engine)
    }

    /// Lists the workloads and their instances.
    ///
    /// # Errors
    ///
    /// Returns the gRPC error of the deployer.
    pub async fn workloads(&mut self) -> Result<Vec<v1::WorkloadStatus>> {
        let response = self
            .deployer
            .list_workloads(v1::ListWorkloadsRequest {})
            .await
            .map_err(grpc_error("ListWorkloads"))?;
        Ok(response.into_inner().workloads)
    }

    /// Waits until every workload has its desired number of serving instances.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotReady`] when that takes longer than `timeout`.
    pub async fn wait_until_serving(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<v1::WorkloadStatus>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let workloads = self.workloads().await?;
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
                return Err(Error::NotReady {
                    what: "the fleet".to_owned(),
                    seconds: timeout.as_secs(),
                    log: self.stack.log_path(Service::Deployer),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Injects a fault into a workload (into `instance`, or one serving instance when empty).
    ///
    /// # Errors
    ///
    /// Returns the gRPC error of the Chaos API.
    pub async fn inject(
        &mut self,
        kind: v1::ChaosKind,
        workload: &str,
        instance: &str,
    ) -> Result<v1::Injection> {
        let request = v1::InjectFaultRequest {
            kind: kind as i32,
            selector: Some(v1::TargetSelector {
                workload: workload.to_owned(),
                instances: if instance.is_empty() {
                    Vec::new()
                } else {
                    vec![instance.to_owned()]
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = self
            .chaos
            .inject_fault(request)
            .await
            .map_err(grpc_error("InjectFault"))?;
        response.into_inner().injection.ok_or_else(|| Error::Grpc {
            call: "InjectFault",
            status: tonic::Status::internal("no injection returned"),
        })
    }

    /// Reads the audit trail until the incident of `injection_id` is recovered or escalated,
    /// calling `on_event` for each event, and returns its timeline.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotReady`] when the incident does not finish within `timeout`.
    pub async fn follow_until_finished(
        &mut self,
        injection_id: &str,
        timeout: Duration,
        mut on_event: impl FnMut(&Audited),
    ) -> Result<Timeline> {
        let deadline = tokio::time::Instant::now() + timeout;
        let chaos_id = format!("chaos-{injection_id}-injected");
        loop {
            let timeline = self
                .tracker
                .timelines()
                .into_iter()
                .find(|timeline| timeline.chaos.id == chaos_id);
            if let Some(timeline) = timeline.filter(Timeline::finished) {
                return Ok(timeline);
            }
            if !self.read_until(deadline, &mut on_event).await {
                return Err(Error::NotReady {
                    what: format!("recovery of injection {injection_id}"),
                    seconds: timeout.as_secs(),
                    log: self.stack.log_path(Service::Deployer),
                });
            }
        }
    }

    /// Reads audited events for `duration`, so late duplicates show up in the tracker.
    pub async fn settle(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while self.read_until(deadline, &mut |_| {}).await {}
    }

    /// Reads one audited event; false when the deadline passed first.
    async fn read_until(
        &mut self,
        deadline: tokio::time::Instant,
        on_event: &mut impl FnMut(&Audited),
    ) -> bool {
        match tokio::time::timeout_at(deadline, self.audit.next()).await {
            Ok(Some(audited)) => {
                self.tracker.observe(&audited.event);
                on_event(&audited);
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// Follows the audit trail again from its start, for example after NATS restarted. Events
    /// already seen count once.
    ///
    /// # Errors
    ///
    /// Returns an error when the streams cannot be read.
    pub async fn refollow(&mut self) -> Result<()> {
        self.audit = crate::audit::follow(&self.bus, true, false).await?;
        Ok(())
    }

    /// Stops every process the engine started.
    pub async fn stop(self) {
        self.stack.stop().await;
    }
}
