//! The Chaos API on Kubernetes: KILL deletes a pod at once and PARTITION cuts its traffic
//! with a NetworkPolicy, both through `aro-kube` under the workload's lease. The other kinds
//! need a way into the pod's containers and are rejected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use aro_bus::InjectionStore;
use aro_kube::k8s_openapi::api::core::v1::Pod;
use aro_kube::kube::ResourceExt;
use aro_kube::{Actuator, pods};
use aro_proto::v1::ChaosKind;
use tracing::{info, warn};

use crate::chaos::{
    ChaosError, ChaosRuntime, ChaosState, FleetView, TargetStatuses, kind_name, target_names,
};
use crate::domain::chaos::selection::Candidate;
use crate::domain::chaos::{Injection, Params, Target, TargetStatus};

/// Name of the runtime, stored with each injection.
pub const RUNTIME: &str = "kubernetes";

/// Generation of every pod as a fault target. A partition lives in the pod's labels, not in
/// its containers, so it outlasts a container restart and ends only with the pod, whose
/// replacement has another name.
const POD_GENERATION: u64 = 1;

/// Fault injection on the opted-in pods of some namespaces.
#[derive(Debug)]
pub struct KubeChaos {
    actuator: Actuator,
    namespaces: Vec<String>,
    chaos: ChaosState,
    /// Namespace of each pod seen, by pod name.
    seen: Mutex<HashMap<String, String>>,
}

impl KubeChaos {
    /// Creates the Chaos runtime on the opted-in pods of `namespaces`.
    pub fn new(actuator: Actuator, namespaces: Vec<String>, chaos: ChaosState) -> Self {
        Self {
            actuator,
            namespaces,
            chaos,
            seen: Mutex::default(),
        }
    }

    /// Lists the opted-in pods of every namespace, with their namespace.
    async fn pods(&self) -> Result<Vec<(String, Pod)>, aro_kube::Error> {
        let mut all = Vec::new();
        for namespace in &self.namespaces {
            for pod in self.actuator.opted_in_pods(namespace).await? {
                all.push((namespace.clone(), pod));
            }
        }
        let mut seen = self.seen.lock().expect("pod namespace map poisoned");
        for (namespace, pod) in &all {
            seen.insert(pod.name_any(), namespace.clone());
        }
        Ok(all)
    }

    /// Namespaces in which pod `name` may be: the one it was seen in, else every one.
    fn namespaces_of(&self, name: &str) -> Vec<String> {
        let seen = self.seen.lock().expect("pod namespace map poisoned");
        match seen.get(name) {
            Some(namespace) => vec![namespace.clone()],
            None => self.namespaces.clone(),
        }
    }

    /// Reads pod `name`, looking in the namespaces it may be in.
    async fn find_pod(&self, name: &str) -> Result<Pod, ChaosError> {
        for namespace in self.namespaces_of(name) {
            match self.actuator.get_pod(&namespace, name).await {
                Ok(pod) => return Ok(pod),
                Err(aro_kube::Error::NotFound { .. }) => {}
                Err(error) => return Err(ChaosError::Internal(error.to_string())),
            }
        }
        Err(ChaosError::NotFound(format!(
            "pod {name} is gone from namespaces {}",
            self.namespaces.join(", ")
        )))
    }

    /// Removes the partitions that an earlier deployer run left in every namespace. Returns
    /// how many policies and labels were removed.
    ///
    /// # Errors
    ///
    /// Returns the first API error.
    pub async fn clean_leftovers(&self) -> Result<usize, aro_kube::Error> {
        let mut removed = 0;
        for namespace in &self.namespaces {
            let cleaned = self.actuator.clean_partitions(namespace, |_| false).await?;
            if !cleaned.pods.is_empty() || !cleaned.policies.is_empty() {
                info!(%namespace, pods = ?cleaned.pods, policies = ?cleaned.policies, "removed the partitions of an earlier deployer run");
            }
            removed += cleaned.pods.len() + cleaned.policies.len();
        }
        Ok(removed)
    }

    async fn undo_partition(&self, injection: &Injection) -> String {
        let mut sentences = Vec::new();
        let mut namespaces = BTreeSet::new();
        for target in injection.targets.iter().filter(|t| t.active) {
            for namespace in self.namespaces_of(&target.instance) {
                let reconnected = self
                    .actuator
                    .reconnect_pod(&namespace, &target.instance, &injection.id)
                    .await;
                sentences.push(match reconnected {
                    Ok(()) => format!("{} reconnected", target.instance),
                    Err(error) => {
                        warn!(injection = %injection.id, pod = %target.instance, %error, "reconnecting a pod failed");
                        format!("reconnecting {} failed: {error}", target.instance)
                    }
                });
                namespaces.insert(namespace);
            }
        }
        for namespace in namespaces {
            if let Err(error) = self
                .actuator
                .delete_partition_policy(&namespace, &injection.id)
                .await
            {
                warn!(injection = %injection.id, %namespace, %error, "deleting a partition policy failed");
                sentences.push(format!(
                    "deleting the partition policy in {namespace} failed: {error}"
                ));
            }
        }
        sentences.join("; ")
    }
}

/// Maps an error of `aro-kube` to the Chaos API's.
fn chaos_error(error: aro_kube::Error) -> ChaosError {
    match error {
        aro_kube::Error::NotFound { .. } => ChaosError::NotFound(error.to_string()),
        aro_kube::Error::LeaseHeld { .. }
        | aro_kube::Error::LeaseLost { .. }
        | aro_kube::Error::Invalid { .. } => ChaosError::FailedPrecondition(error.to_string()),
        other => ChaosError::Internal(other.to_string()),
    }
}

/// Describes the state of a pod for messages, and whether it runs and serves.
fn pod_state(pod: &Pod) -> (&'static str, bool, bool) {
    if pods::is_terminating(pod) {
        ("terminating", false, false)
    } else if pods::is_quarantined(pod) {
        ("isolated", false, false)
    } else if pods::is_serving(pod) {
        ("serving", true, true)
    } else {
        ("starting", true, false)
    }
}

impl ChaosRuntime for KubeChaos {
    fn chaos(&self) -> &ChaosState {
        &self.chaos
    }

    fn runtime_name(&self) -> &str {
        RUNTIME
    }

    /// Selects among the opted-in pods. Each distinct label set of a workload's pods is one
    /// entry of the workloads, so that a label selector matches a workload when one of its
    /// pods carries the labels, and the instances are then narrowed to those pods.
    async fn fleet_view(&self) -> Result<FleetView, ChaosError> {
        let pods = self.pods().await.map_err(chaos_error)?;
        let mut workloads = Vec::new();
        let mut candidates = Vec::new();
        let mut instance_labels = HashMap::new();
        for (_, pod) in &pods {
            let Some(workload) = pods::workload(pod) else {
                continue;
            };
            let labels: BTreeMap<String, String> = pod.labels().clone();
            let entry = (workload.clone(), labels.clone());
            if !workloads.contains(&entry) {
                workloads.push(entry);
            }
            let (state, running, serving) = pod_state(pod);
            instance_labels.insert((workload.clone(), pod.name_any()), labels);
            candidates.push(Candidate {
                workload,
                instance: pod.name_any(),
                generation: POD_GENERATION,
                serving,
                running,
                state,
            });
        }
        Ok(FleetView {
            workloads,
            candidates,
            instance_labels,
        })
    }

    fn check(
        &self,
        kind: ChaosKind,
        _params: &Params,
        _targets: &[Candidate],
    ) -> Result<(), ChaosError> {
        match kind {
            ChaosKind::Kill | ChaosKind::Partition => Ok(()),
            other => Err(ChaosError::FailedPrecondition(format!(
                "kubernetes runtime cannot inject {}: it would have to run a command inside the \
                 pod's containers, which the deployer does not do; use KILL or PARTITION",
                kind_name(other)
            ))),
        }
    }

    async fn apply(
        &self,
        injection: &mut Injection,
        _store: &InjectionStore,
    ) -> Result<(), ChaosError> {
        let mut applied = injection.clone();
        applied.targets.clear();
        let mut failure = None;
        for target in &injection.targets {
            let pod = match self.find_pod(&target.instance).await {
                Ok(pod) => pod,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            let result = match injection.kind {
                ChaosKind::Kill => self.actuator.kill_pod(&pod, &injection.id).await,
                _ => self.actuator.partition_pod(&pod, &injection.id).await,
            };
            if let Err(error) = result {
                failure = Some(chaos_error(error));
                break;
            }
            applied.targets.push(Target {
                active: true,
                ..target.clone()
            });
        }
        if let Some(error) = failure {
            if injection.kind == ChaosKind::Partition && !applied.targets.is_empty() {
                let undone = self.undo_partition(&applied).await;
                info!(kind = kind_name(injection.kind), %undone, %error, "injection failed part way, undid the applied part");
            }
            return Err(error);
        }
        applied.injected_at = SystemTime::now();
        applied.message = format!(
            "{} into {}",
            kind_name(injection.kind),
            target_names(&applied.targets)
        );
        *injection = applied;
        Ok(())
    }

    async fn undo(&self, injection: &Injection) -> String {
        match injection.kind {
            ChaosKind::Partition => self.undo_partition(injection).await,
            _ => String::new(),
        }
    }

    /// Reports every active target as current, without an API call.
    /// NOTE: a pod that the engine replaced during a partition is not noticed. The injection
    /// stays active until it expires or is cancelled or halted, and its undo then finds the pod
    /// gone, which needs nothing.
    async fn target_statuses(&self) -> TargetStatuses {
        self.chaos
            .book()
            .active()
            .into_iter()
            .flat_map(|injection| injection.targets)
            .map(|target| {
                let status = TargetStatus::Current {
                    generation: target.generation,
                };
                ((target.workload, target.instance), status)
            })
            .collect()
    }
}
