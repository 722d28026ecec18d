//! gRPC services: `aro.v1.Deployer` and `aro.v1.Chaos`.

use std::sync::Arc;

use aro_proto::v1::chaos_server::Chaos;
use aro_proto::v1::deployer_server::Deployer;
use aro_proto::v1::{
    HaltAllRequest, HaltAllResponse, InjectFaultRequest, InjectFaultResponse, InstanceRef,
    ListFaultsRequest, ListFaultsResponse, ListWorkloadsRequest, ListWorkloadsResponse,
};
use tonic::{Request, Response, Status};

use crate::backend::Runtime;
use crate::convert::timestamp;
use crate::domain::chaos::Injection;
use crate::supervisor::{ChaosError, InjectRequest, Supervisor};

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

/// `aro.v1.Chaos`. Every call fails unless chaos was enabled at start-up.
#[derive(Debug)]
pub struct ChaosService<R> {
    supervisor: Arc<Supervisor<R>>,
    enabled: bool,
    node: String,
}

impl<R> ChaosService<R> {
    pub fn new(supervisor: Arc<Supervisor<R>>, enabled: bool, node: String) -> Self {
        Self {
            supervisor,
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
        aro_proto::v1::Injection {
            id: injection.id.clone(),
            kind: injection.kind as i32,
            target: Some(InstanceRef {
                workload: injection.workload.clone(),
                instance: injection.instance.clone(),
                generation: injection.generation,
                node: self.node.clone(),
            }),
            injected_at: Some(timestamp(injection.injected_at)),
            remaining: injection.remaining,
        }
    }
}

fn status(error: ChaosError) -> Status {
    match error {
        ChaosError::InvalidArgument { .. } => Status::invalid_argument(error.to_string()),
        ChaosError::NotFound(message) => Status::not_found(message),
        ChaosError::FailedPrecondition(message) => Status::failed_precondition(message),
        ChaosError::Runtime(_) | ChaosError::Internal(_) => Status::internal(error.to_string()),
    }
}

#[tonic::async_trait]
impl<R: Runtime> Chaos for ChaosService<R> {
    async fn inject_fault(
        &self,
        request: Request<InjectFaultRequest>,
    ) -> Result<Response<InjectFaultResponse>, Status> {
        self.ensure_enabled()?;
        let request = request.into_inner();
        let duration = match request.duration {
            Some(duration) => Some(std::time::Duration::try_from(duration).map_err(|_| {
                Status::invalid_argument(format!(
                    "invalid duration: {}s {}ns is negative",
                    duration.seconds, duration.nanos
                ))
            })?),
            None => None,
        };
        let injection = self
            .supervisor
            .inject(InjectRequest {
                kind: request.kind,
                workload: request.workload,
                instance: request.instance,
                count: request.count,
                duration,
                idempotency_key: request.idempotency_key,
                path: request.path,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(InjectFaultResponse {
            injection: Some(self.to_proto(&injection)),
        }))
    }

    async fn list_faults(
        &self,
        _request: Request<ListFaultsRequest>,
    ) -> Result<Response<ListFaultsResponse>, Status> {
        self.ensure_enabled()?;
        let injections = self
            .supervisor
            .list_faults()
            .iter()
            .map(|injection| self.to_proto(injection))
            .collect();
        Ok(Response::new(ListFaultsResponse { injections }))
    }

    async fn halt_all(
        &self,
        _request: Request<HaltAllRequest>,
    ) -> Result<Response<HaltAllResponse>, Status> {
        self.ensure_enabled()?;
        let halted = self.supervisor.halt_all().await;
        Ok(Response::new(HaltAllResponse { halted }))
    }
}
