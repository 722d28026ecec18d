//! The `aro.v1.Brain` gRPC service.

use std::sync::Arc;

use aro_proto::v1;
use aro_proto::v1::brain_server::Brain as BrainApi;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::handler::{Brain, Plan, ReviewError};

/// gRPC front of the brain.
#[derive(Debug)]
pub(crate) struct BrainService {
    pub(crate) brain: Arc<Brain>,
}

#[tonic::async_trait]
impl BrainApi for BrainService {
    async fn decide(
        &self,
        request: Request<v1::DecideRequest>,
    ) -> Result<Response<v1::DecideResponse>, Status> {
        let fault = request
            .into_inner()
            .fault
            .ok_or_else(|| Status::invalid_argument("field fault is missing"))?;
        let kind = convert::validate_fault(&fault)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let target = fault
            .target
            .clone()
            .expect("validated faults have a target");
        let peers = self.brain.peer_faults(&target, false);
        let (choice, features, scores) = match kind {
            Some(known) => {
                let (choice, features, scores) =
                    self.brain.choose_first(&fault, known, peers).await;
                (choice, features.to_vec(), scores)
            }
            None => (crate::handler::unknown_kind(fault.kind), Vec::new(), None),
        };
        let incident = v1::Incident {
            id: fault.incident_id.clone(),
            ..Default::default()
        };
        let proposal = crate::domain::guards::Proposal {
            incident: &incident.id,
            workload: &target.workload,
            target: &target.instance,
            action: choice.action,
            fault: kind,
            healthy_replicas: fault.healthy_replicas,
        };
        let decision = match self
            .brain
            .guard(choice, proposal, &features, scores.as_ref(), None)
        {
            Plan::Act(decision) => decision,
            Plan::Defer(_) => unreachable!("a dry run reports deferrals as verdicts"),
        };
        Ok(Response::new(v1::DecideResponse {
            decision: Some(decision),
        }))
    }

    async fn approve(
        &self,
        request: Request<v1::ApproveRequest>,
    ) -> Result<Response<v1::ApproveResponse>, Status> {
        let request = request.into_inner();
        let approver = reviewer(&request.incident_id, &request.approver)?;
        let command = self
            .brain
            .approve(&request.incident_id, approver)
            .await
            .map_err(review_status)?;
        Ok(Response::new(v1::ApproveResponse {
            command: Some(command),
        }))
    }

    async fn reject(
        &self,
        request: Request<v1::RejectRequest>,
    ) -> Result<Response<v1::RejectResponse>, Status> {
        let request = request.into_inner();
        let approver = reviewer(&request.incident_id, &request.approver)?;
        let incident = self
            .brain
            .reject(&request.incident_id, approver, &request.reason)
            .await
            .map_err(review_status)?;
        Ok(Response::new(v1::RejectResponse {
            incident: Some(incident),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<v1::ListIncidentsRequest>,
    ) -> Result<Response<v1::ListIncidentsResponse>, Status> {
        let request = request.into_inner();
        let limit = if request.limit == 0 {
            100
        } else {
            request.limit as usize
        };
        let incidents = self
            .brain
            .incidents
            .list(&request.workload, limit)
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(v1::ListIncidentsResponse { incidents }))
    }
}

/// Maps review errors to gRPC status codes, once, at the edge.
fn review_status(error: ReviewError) -> Status {
    match error {
        ReviewError::NotFound(_) => Status::not_found(error.to_string()),
        ReviewError::NotPending { .. } | ReviewError::Refused(_) => {
            Status::failed_precondition(error.to_string())
        }
        ReviewError::Busy(_) => Status::aborted(error.to_string()),
        ReviewError::Incident(_) | ReviewError::Bus(_) => Status::unavailable(error.to_string()),
    }
}

/// Checks the incident id of a review and returns the name to record as its reviewer.
fn reviewer<'a>(incident_id: &str, approver: &'a str) -> Result<&'a str, Status> {
    if incident_id.is_empty() {
        return Err(Status::invalid_argument("field incident_id is missing"));
    }
    Ok(if approver.is_empty() {
        "unnamed"
    } else {
        approver
    })
}
