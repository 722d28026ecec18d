//! gRPC services: `aro.v1.Deployer` and `aro.v1.Chaos`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use aro_proto::v1::chaos_server::Chaos;
use aro_proto::v1::deployer_server::Deployer;
use aro_proto::v1::{
    BlastRadiusMode, CancelFaultRequest, CancelFaultResponse, GetFaultRequest, GetFaultResponse,
    HaltAllRequest, HaltAllResponse, InjectFaultRequest, InjectFaultResponse, InjectionState,
    ListFaultsRequest, ListFaultsResponse, ListWorkloadsRequest, ListWorkloadsResponse,
    WatchFaultsRequest, WatchFaultsResponse,
};
use futures::Stream;
use tokio::sync::broadcast;
use tonic::{Request, Response, Status};

use crate::backend::Runtime;
use crate::chaos::{self, Change, ChaosError, ChaosRuntime, InjectRequest};
use crate::domain::chaos::selection::{BlastRadius, Selector};
use crate::domain::chaos::{Injection, ListFilter};
use crate::injections;
use crate::supervisor::Supervisor;

/// `aro.v1.Deployer`.
#[derive(Debug)]
pub struct DeployerService<R> {
    supervisor: Arc<Supervisor<R>>,
}

impl<R> DeployerService<R> {
    pub fn new(supervisor: Arc<Supervisor<R>>) -> Self {
        Self { supervisor }
    }
}

#[tonic::async_trait]
impl<R: Runtime> Deployer for DeployerService<R> {
    async fn list_workloads(
        &self,
        _request: Request<ListWorkloadsRequest>,
    ) -> Result<Response<ListWorkloadsResponse>, Status> {
        Ok(Response::new(ListWorkloadsResponse {
            workloads: self.supervisor.list_workloads(),
            runtime: self.supervisor.runtime().name().to_owned(),
        }))
    }
}

/// `aro.v1.Chaos` on any runtime. Every call fails unless chaos was enabled at start-up.
#[derive(Debug)]
pub struct ChaosService<C> {
    runtime: Arc<C>,
    enabled: bool,
    node: String,
}

impl<C> ChaosService<C> {
    pub fn new(runtime: Arc<C>, enabled: bool, node: String) -> Self {
        Self {
            runtime,
            enabled,
            node,
        }
    }

    fn ensure_enabled(&self) -> Result<(), Status> {
        if self.enabled {
            Ok(())
        } else {
            Err(Status::failed_precondition(
                "fault injection is disabled: start the deployer with --enable-chaos \
                 (or ARO_ENABLE_CHAOS=true) to use the Chaos service",
            ))
        }
    }

    fn to_proto(&self, injection: &Injection) -> aro_proto::v1::Injection {
        injections::to_proto(injection, &self.node)
    }
}

fn status(error: ChaosError) -> Status {
    match error {
        ChaosError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        ChaosError::NotFound(message) => Status::not_found(message),
        ChaosError::FailedPrecondition(message) => Status::failed_precondition(message),
        ChaosError::Unavailable => Status::unavailable(error.to_string()),
        ChaosError::Runtime(_) | ChaosError::Internal(_) => Status::internal(error.to_string()),
    }
}

fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {message}"))
}

/// Converts a request into the supervisor's form, checking what needs no fleet.
fn inject_request(request: InjectFaultRequest) -> Result<InjectRequest, Status> {
    let duration = match request.duration {
        Some(duration) => Some(std::time::Duration::try_from(duration).map_err(|_| {
            invalid(
                "duration",
                format!("{}s {}ns is negative", duration.seconds, duration.nanos),
            )
        })?),
        None => None,
    };
    let blast = request.blast_radius.unwrap_or_default();
    let mode = match BlastRadiusMode::try_from(blast.mode) {
        Ok(BlastRadiusMode::Unspecified) => None,
        Ok(BlastRadiusMode::One) => Some("one"),
        Ok(BlastRadiusMode::All) => Some("all"),
        Ok(BlastRadiusMode::Fixed) => Some("fixed"),
        Ok(BlastRadiusMode::Percent) => Some("percent"),
        Err(_) => {
            return Err(invalid(
                "blast_radius.mode",
                format!(
                    "unknown mode value {}, expected ONE, ALL, FIXED or PERCENT",
                    blast.mode
                ),
            ));
        }
    };
    let blast_radius =
        BlastRadius::new(mode, blast.count, blast.percent).map_err(|error| status(error.into()))?;
    let selector = request.selector.unwrap_or_default();
    Ok(InjectRequest {
        kind: request.kind,
        selector: Selector {
            workload: selector.workload,
            labels: selector.labels.into_iter().collect(),
            instances: selector.instances,
        },
        blast_radius,
        params: injections::params_from_proto(request.params.as_ref()),
        duration,
        idempotency_key: request.idempotency_key,
        dry_run: request.dry_run,
        allow_last_replica: request.allow_last_replica,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchFaultsResponse, Status>> + Send>>;

/// State of one watch: responses ready to send, then the changes still to come.
struct Watch<C> {
    runtime: Arc<C>,
    node: String,
    workload: String,
    ready: VecDeque<WatchFaultsResponse>,
    changes: broadcast::Receiver<Change>,
}

impl<C: ChaosRuntime> Watch<C> {
    fn response(&self, phase: &str, injection: &Injection, message: String) -> WatchFaultsResponse {
        WatchFaultsResponse {
            phase: phase.to_owned(),
            injection: Some(injections::to_proto(injection, &self.node)),
            message,
        }
    }

    fn wanted(&self, injection: &Injection) -> bool {
        self.workload.is_empty() || injection.hits_workload(&self.workload)
    }

    /// Queues the active injections and the `synced` marker.
    fn queue_snapshot(&mut self, active: &[Injection]) {
        let responses: Vec<WatchFaultsResponse> = active
            .iter()
            .filter(|injection| self.wanted(injection))
            .map(|injection| self.response("active", injection, injection.message.clone()))
            .collect();
        self.ready.extend(responses);
        self.ready.push_back(WatchFaultsResponse {
            phase: "synced".to_owned(),
            injection: None,
            message: String::new(),
        });
    }

    async fn next(mut self) -> Option<(Result<WatchFaultsResponse, Status>, Self)> {
        loop {
            if let Some(response) = self.ready.pop_front() {
                return Some((Ok(response), self));
            }
            let runtime = Arc::clone(&self.runtime);
            let received = tokio::select! {
                received = self.changes.recv() => received,
                () = runtime.chaos().stopping() => return None,
            };
            match received {
                Ok(change) if self.wanted(&change.injection) => {
                    let response = self.response(change.phase, &change.injection, change.message);
                    return Some((Ok(response), self));
                }
                Ok(_) => {}
                // The watcher fell behind and changes were dropped: it gets the active set
                // again, so it misses no injection that is still active.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let active = chaos::list_faults(
                        self.runtime.chaos(),
                        &ListFilter {
                            active_only: true,
                            workload: String::new(),
                        },
                    );
                    self.queue_snapshot(&active);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[tonic::async_trait]
impl<C: ChaosRuntime> Chaos for ChaosService<C> {
    async fn inject_fault(
        &self,
        request: Request<InjectFaultRequest>,
    ) -> Result<Response<InjectFaultResponse>, Status> {
        self.ensure_enabled()?;
        let request = inject_request(request.into_inner())?;
        let injected = chaos::inject(&*self.runtime, request)
            .await
            .map_err(status)?;
        let mut injection = self.to_proto(&injected.injection);
        if injected.dry_run {
            injection.state = InjectionState::Unspecified as i32;
        }
        Ok(Response::new(InjectFaultResponse {
            injection: Some(injection),
            dry_run: injected.dry_run,
            replayed: injected.replayed,
        }))
    }

    async fn get_fault(
        &self,
        request: Request<GetFaultRequest>,
    ) -> Result<Response<GetFaultResponse>, Status> {
        self.ensure_enabled()?;
        let injection =
            chaos::get_fault(self.runtime.chaos(), &request.into_inner().id).map_err(status)?;
        Ok(Response::new(GetFaultResponse {
            injection: Some(self.to_proto(&injection)),
        }))
    }

    async fn list_faults(
        &self,
        request: Request<ListFaultsRequest>,
    ) -> Result<Response<ListFaultsResponse>, Status> {
        self.ensure_enabled()?;
        let request = request.into_inner();
        let filter = ListFilter {
            active_only: request.active_only,
            workload: request.workload,
        };
        let injections = chaos::list_faults(self.runtime.chaos(), &filter)
            .iter()
            .map(|injection| self.to_proto(injection))
            .collect();
        Ok(Response::new(ListFaultsResponse { injections }))
    }

    async fn cancel_fault(
        &self,
        request: Request<CancelFaultRequest>,
    ) -> Result<Response<CancelFaultResponse>, Status> {
        self.ensure_enabled()?;
        let injection = chaos::cancel_fault(&*self.runtime, &request.into_inner().id)
            .await
            .map_err(status)?;
        Ok(Response::new(CancelFaultResponse {
            injection: Some(self.to_proto(&injection)),
        }))
    }

    async fn halt_all(
        &self,
        _request: Request<HaltAllRequest>,
    ) -> Result<Response<HaltAllResponse>, Status> {
        self.ensure_enabled()?;
        let halted = chaos::halt_all(&*self.runtime).await;
        Ok(Response::new(HaltAllResponse { halted }))
    }

    type WatchFaultsStream = WatchStream;

    async fn watch_faults(
        &self,
        request: Request<WatchFaultsRequest>,
    ) -> Result<Response<Self::WatchFaultsStream>, Status> {
        self.ensure_enabled()?;
        let (active, changes) = chaos::watch_faults(self.runtime.chaos());
        let mut watch = Watch {
            runtime: Arc::clone(&self.runtime),
            node: self.node.clone(),
            workload: request.into_inner().workload,
            ready: VecDeque::new(),
            changes,
        };
        watch.queue_snapshot(&active);
        let stream = futures::stream::unfold(watch, Watch::next);
        Ok(Response::new(Box::pin(stream)))
    }
}
