//! Recovery commands executed on Kubernetes: RESTART evicts the pod so its ReplicaSet
//! replaces it, REPLACE isolates it by relabelling, ROLLBACK rolls its Deployment back to the
//! previous ReplicaSet, MOVE cordons its node and evicts it, ESCALATE does nothing. Each
//! action is verified by waiting until the workload serves with its desired replicas.

use std::time::Duration;

use aro_proto::v1::{Action, Command, InstanceRef, Outcome, OutcomeStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tracing::info;

use crate::actions::Serving;
use crate::status::timestamp;
use crate::{Actuator, Error, LeaseKey, pods};

/// Delay before a command that met a passing API failure is delivered again.
const API_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Result of executing one command.
#[derive(Debug)]
pub enum Execution {
    /// The command ran (or was refused); publish this outcome.
    Finished(Box<Outcome>),
    /// The command did not run now and should be delivered again after `delay`: a
    /// disruption budget blocked the eviction, another deployer holds the workload's lease,
    /// or the API server failed for a moment.
    RetryAfter { delay: Duration, reason: String },
}

/// Executes commands on the pods of `namespaces`.
#[derive(Clone, Debug)]
pub struct Executor {
    actuator: Actuator,
    namespaces: Vec<String>,
}

impl Executor {
    /// Creates an executor that looks for the pods that commands name in `namespaces`, in
    /// that order.
    pub fn new(actuator: Actuator, namespaces: Vec<String>) -> Self {
        Self {
            actuator,
            namespaces,
        }
    }

    /// Returns the actuator that commands run through.
    pub fn actuator(&self) -> &Actuator {
        &self.actuator
    }

    /// Executes `command` and returns the outcome to publish, or when to try again.
    pub async fn execute(&self, command: &Command) -> Execution {
        let mut outcome = outcome_of(command);
        outcome.started_at = Some(timestamp(self.actuator.clock().now()));
        let target = command.target.clone().unwrap_or_default();
        let action = Action::try_from(command.action).unwrap_or(Action::Unspecified);
        let result = match action {
            Action::Restart | Action::Replace | Action::Rollback | Action::Move => {
                self.act(action, &target, &mut outcome).await
            }
            Action::Escalate => {
                let message = "escalated to a person; nothing to execute".to_owned();
                finish(&mut outcome, OutcomeStatus::Noop, message);
                Ok(())
            }
            other => {
                let message = format!(
                    "the Kubernetes runtime does not support {}",
                    other.as_str_name()
                );
                finish(&mut outcome, OutcomeStatus::Rejected, message);
                Ok(())
            }
        };
        match result {
            Ok(()) => Execution::Finished(Box::new(outcome)),
            Err(error) => self.settle_error(error, outcome),
        }
    }

    async fn act(
        &self,
        action: Action,
        target: &InstanceRef,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let Some(pod) = self.find_pod(&target.instance).await? else {
            if action == Action::Rollback
                && let Some(namespace) = self.find_deployment(&target.workload).await?
            {
                return self
                    .rollback(&namespace, &target.workload, &target.workload, outcome)
                    .await;
            }
            let message = format!(
                "pod {} not found in namespaces {:?}",
                target.instance, self.namespaces
            );
            finish(outcome, OutcomeStatus::Superseded, message);
            return Ok(());
        };
        // NOTE: a command whose target generation is older than the pod's (the container
        // restarted since the fault) still acts on the pod. Only a pod that is gone, being
        // deleted or isolated counts as superseded, so a crash-looping pod is still restarted.
        let workload = pods::workload(&pod).unwrap_or_default();
        if workload != target.workload {
            let message = format!(
                "pod {} belongs to workload {workload:?}, not {:?}",
                target.instance, target.workload
            );
            finish(outcome, OutcomeStatus::Rejected, message);
            return Ok(());
        }
        match action {
            Action::Restart => self.restart(&pod, outcome).await,
            Action::Replace => self.replace(&pod, outcome).await,
            Action::Move => self.move_away(&pod, outcome).await,
            _ => {
                let namespace = pod.namespace().unwrap_or_default();
                let deployment = pods::deployment_name(&pod).ok_or_else(|| {
                    Error::invalid(
                        format!("pod {namespace}/{}", pod.name_any()),
                        "no Deployment owns it",
                    )
                })?;
                self.rollback(&namespace, &deployment, &workload, outcome)
                    .await
            }
        }
    }

    async fn restart(&self, pod: &Pod, outcome: &mut Outcome) -> Result<(), Error> {
        let evicted = self.actuator.evict(pod).await?;
        outcome.replaced_at = Some(timestamp(self.actuator.clock().now()));
        let serving = self.actuator.wait_serving(&evicted.context).await?;
        self.verified(
            outcome,
            &evicted.workload,
            &evicted.serving_before,
            &serving,
            format!("evicted pod {}", evicted.pod),
        );
        Ok(())
    }

    async fn replace(&self, pod: &Pod, outcome: &mut Outcome) -> Result<(), Error> {
        let isolated = self.actuator.isolate(pod).await?;
        outcome.isolated_at = Some(timestamp(self.actuator.clock().now()));
        let serving = self.actuator.wait_serving(&isolated.context).await?;
        let done = format!(
            "isolated pod {} until {}",
            isolated.pod, isolated.expires_at
        );
        self.verified(
            outcome,
            &isolated.workload,
            &isolated.serving_before,
            &serving,
            done,
        );
        Ok(())
    }

    async fn move_away(&self, pod: &Pod, outcome: &mut Outcome) -> Result<(), Error> {
        let node = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.clone())
            .ok_or_else(|| {
                Error::invalid(
                    format!("pod {}", pod.name_any()),
                    "it is not scheduled on a node",
                )
            })?;
        let cordoned = self.actuator.cordon(&node).await?;
        let evicted = self.actuator.evict(pod).await?;
        outcome.replaced_at = Some(timestamp(self.actuator.clock().now()));
        let serving = self.actuator.wait_serving(&evicted.context).await?;
        let node_note = if cordoned {
            "cordoned"
        } else {
            "found already cordoned"
        };
        let done = format!("{node_note} node {node} and evicted pod {}", evicted.pod);
        self.verified(
            outcome,
            &evicted.workload,
            &evicted.serving_before,
            &serving,
            done,
        );
        Ok(())
    }

    async fn rollback(
        &self,
        namespace: &str,
        deployment: &str,
        workload: &str,
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        let rolled_back = self
            .actuator
            .rollback(namespace, deployment, workload)
            .await?;
        outcome.replaced_at = Some(timestamp(self.actuator.clock().now()));
        let lease = LeaseKey::workload(namespace, workload);
        let serving = self
            .actuator
            .wait_rolled_out(namespace, deployment, &lease)
            .await?;
        let done = format!(
            "rolled deployment {deployment} back from revision {} to {}",
            rolled_back.from_revision, rolled_back.to_revision
        );
        self.verified(outcome, workload, &[], &serving, done);
        Ok(())
    }

    /// Completes the outcome from the verification: RECOVERED when the workload served with
    /// its desired replicas in time, FAILED otherwise. The replacement is the first serving
    /// pod that did not serve before the action.
    fn verified(
        &self,
        outcome: &mut Outcome,
        workload: &str,
        before: &[String],
        serving: &Serving,
        done: String,
    ) {
        if let Some(fresh) = serving.pods.iter().find(|pod| !before.contains(pod)) {
            outcome.replacement = Some(InstanceRef {
                workload: workload.to_owned(),
                instance: fresh.clone(),
                generation: 1,
                node: String::new(),
            });
        }
        let count = format!("{}/{}", serving.serving, serving.desired);
        if serving.reached {
            outcome.verified_at = Some(timestamp(self.actuator.clock().now()));
            finish(
                outcome,
                OutcomeStatus::Recovered,
                format!(
                    "{done}; {workload} serves {count} replicas after {:?}",
                    serving.after
                ),
            );
        } else {
            finish(
                outcome,
                OutcomeStatus::Failed,
                format!(
                    "{done}; {workload} serves only {count} replicas after {:?}",
                    serving.after
                ),
            );
        }
    }

    async fn find_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        for namespace in &self.namespaces {
            match self.actuator.get_pod(namespace, name).await {
                Ok(pod) => return Ok(Some(pod)),
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    async fn find_deployment(&self, name: &str) -> Result<Option<String>, Error> {
        for namespace in &self.namespaces {
            match self.actuator.get_deployment(namespace, name).await {
                Ok(_) => return Ok(Some(namespace.clone())),
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    fn settle_error(&self, error: Error, mut outcome: Outcome) -> Execution {
        let message = error.to_string();
        let status = match &error {
            Error::EvictionBlocked { retry_after, .. } => {
                return Execution::RetryAfter {
                    delay: *retry_after,
                    reason: message,
                };
            }
            Error::LeaseHeld { .. } | Error::LeaseLost { .. } => {
                return Execution::RetryAfter {
                    delay: self.actuator.settings().lease_duration,
                    reason: message,
                };
            }
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } if status.code < 500 && status.code != 429 => OutcomeStatus::Failed,
            Error::Api { .. } => {
                return Execution::RetryAfter {
                    delay: API_RETRY_DELAY,
                    reason: message,
                };
            }
            Error::NotFound { .. } | Error::Superseded { .. } => OutcomeStatus::Superseded,
            Error::LastReadyPod { .. } | Error::Invalid { .. } => OutcomeStatus::Rejected,
            Error::ConflictExhausted { .. } => OutcomeStatus::Failed,
        };
        info!(command = %outcome.command_id, %message, "command not carried out");
        finish(&mut outcome, status, message);
        Execution::Finished(Box::new(outcome))
    }
}

/// Creates the outcome of `command` with its ids, target, action and attempt, and no status
/// yet. Its id, `out-<command id>`, makes JetStream drop a second outcome of the command.
pub fn outcome_of(command: &Command) -> Outcome {
    Outcome {
        id: format!("out-{}", command.id),
        incident_id: command.incident_id.clone(),
        command_id: command.id.clone(),
        target: command.target.clone(),
        action: command.action,
        attempt: command.attempt,
        ..Outcome::default()
    }
}

fn finish(outcome: &mut Outcome, status: OutcomeStatus, message: String) {
    outcome.set_status(status);
    outcome.message = message;
}
