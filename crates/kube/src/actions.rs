//! Recovery actions and fault injections on pods, Deployments and nodes. Each acquires the lease of what it acts
//! on, re-reads the lease (and, for a pod, the workload's ready pods) right before the
//! destructive call, and records a Kubernetes Event on the object it changed.

pub mod chaos;
mod cordon;
mod evict;
mod isolate;
mod reap;
mod rollback;
mod verify;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};
use tracing::warn;

use crate::lease::{LeaseKey, Leases};
use crate::{Clock, Error, Result, pods};

pub use evict::Evicted;
pub use isolate::Isolated;
pub use rollback::RolledBack;
pub use verify::Serving;

/// Name under which the runtime reports its Kubernetes Events.
pub const REPORTING_CONTROLLER: &str = "aro-deployer";

/// Settings of the actions.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Holder identity in leases and reporting instance in Events; unique per deployer.
    pub identity: String,
    /// Time a lease stays held without renewal.
    pub lease_duration: Duration,
    /// Namespace of the node leases, since nodes have none.
    pub lease_namespace: String,
    /// Attempts of an update that ends in 409 Conflict, the first one included.
    pub conflict_attempts: u32,
    /// Time an isolated pod is kept for inspection before the reaper deletes it.
    pub quarantine_retention: Duration,
    /// Back-off after an eviction refused with 429 that names no retry delay.
    pub eviction_backoff: Duration,
    /// Time a recovered workload has to serve with all its desired replicas.
    pub verify_timeout: Duration,
    /// Time between two looks at the workload's pods during verification.
    pub verify_interval: Duration,
}

impl Settings {
    /// Settings with the defaults the deployer uses, for `identity`.
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            lease_duration: Duration::from_secs(30),
            lease_namespace: "default".to_owned(),
            conflict_attempts: 3,
            quarantine_retention: Duration::from_secs(3600),
            eviction_backoff: Duration::from_secs(10),
            verify_timeout: Duration::from_secs(120),
            verify_interval: Duration::from_secs(2),
        }
    }
}

/// Executes recovery actions against the API server.
#[derive(Clone)]
pub struct Actuator {
    client: Client,
    settings: Settings,
    leases: Leases,
    recorder: Recorder,
    clock: Clock,
}

impl std::fmt::Debug for Actuator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Actuator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Actuator {
    /// Creates an actuator that talks to the API server through `client`.
    pub fn new(client: Client, settings: Settings, clock: Clock) -> Self {
        let leases = Leases::new(
            client.clone(),
            settings.identity.clone(),
            settings.lease_duration,
            settings.conflict_attempts,
            clock.clone(),
        );
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_owned(),
            instance: Some(settings.identity.clone()),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            settings,
            leases,
            recorder,
            clock,
        }
    }

    /// Returns the settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Returns the lease client, for renewing leases outside an action.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    pub(crate) fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub(crate) fn deployments(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Reads a pod.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when it does not exist, or the API error.
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod> {
        self.pods(namespace)
            .get(name)
            .await
            .map_err(|source| Error::api("get", format!("pod {namespace}/{name}"), source))
    }

    /// Reads a Deployment.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when it does not exist, or the API error.
    pub async fn get_deployment(&self, namespace: &str, name: &str) -> Result<Deployment> {
        self.deployments(namespace)
            .get(name)
            .await
            .map_err(|source| Error::api("get", format!("deployment {namespace}/{name}"), source))
    }

    /// Acquires the lease of the pod's workload and reads the Deployment that owns the pod.
    async fn prepare_pod_action(&self, pod: &Pod) -> Result<PodContext> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let object = format!("pod {namespace}/{name}");
        let workload = pods::workload(pod).ok_or_else(|| {
            Error::invalid(
                &object,
                "no Deployment owns it and it has no aro.io/workload label",
            )
        })?;
        let deployment = pods::deployment_name(pod)
            .ok_or_else(|| Error::invalid(&object, "no Deployment owns it"))?;
        let lease = LeaseKey::workload(&namespace, &workload);
        self.leases.acquire(&lease).await?;
        let deployment = self.get_deployment(&namespace, &deployment).await?;
        Ok(PodContext {
            namespace,
            workload,
            lease,
            deployment,
        })
    }

    /// Lists the workload's pods again and returns the names of the serving ones other than
    /// `pod`. Raises [`Error::LastReadyPod`] when `pod` is the only one that serves.
    async fn guard_last_ready(&self, context: &PodContext, pod: &Pod) -> Result<Vec<String>> {
        let serving = self.serving_pods(context).await?;
        let name = pod.name_any();
        let others: Vec<String> = serving.into_iter().filter(|other| *other != name).collect();
        if pods::is_serving(pod) && others.is_empty() {
            return Err(Error::LastReadyPod {
                pod: name,
                workload: context.workload.clone(),
            });
        }
        Ok(others)
    }

    async fn serving_pods(&self, context: &PodContext) -> Result<Vec<String>> {
        let params = pods::deployment_pods(&context.deployment)?;
        let listed = self
            .pods(&context.namespace)
            .list(&params)
            .await
            .map_err(|source| {
                Error::api(
                    "list",
                    format!(
                        "pods of deployment {}/{}",
                        context.namespace,
                        context.deployment.name_any()
                    ),
                    source,
                )
            })?;
        Ok(listed
            .items
            .iter()
            .filter(|pod| pods::is_serving(pod))
            .map(ResourceExt::name_any)
            .collect())
    }

    /// Raises [`Error::Superseded`] for a pod that is being deleted or was isolated already.
    fn check_not_handled(pod: &Pod) -> Result<()> {
        let reason = if pods::is_terminating(pod) {
            "it is being deleted"
        } else if pods::is_quarantined(pod) {
            "it is isolated"
        } else {
            return Ok(());
        };
        Err(Error::Superseded {
            pod: pod.name_any(),
            reason: reason.to_owned(),
        })
    }

    /// Records an Event on `regarding`. A failure is logged and does not undo the action.
    async fn record(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            warn!(
                object = regarding.name.as_deref().unwrap_or_default(),
                reason,
                %error,
                "recording a Kubernetes Event failed"
            );
        }
    }
}

/// The workload, lease and Deployment of the pod a pod action acts on.
#[derive(Debug)]
pub(crate) struct PodContext {
    namespace: String,
    workload: String,
    lease: LeaseKey,
    deployment: Deployment,
}
