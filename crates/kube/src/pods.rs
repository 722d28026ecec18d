//! Pod properties the runtime reads: readiness, generation, workload and selector.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::ListParams;
use kube::core::Selector;

use crate::{Error, Result, labels};

/// True when the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// True when the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// True when the pod was isolated.
pub fn is_quarantined(pod: &Pod) -> bool {
    pod.labels()
        .get(labels::QUARANTINED)
        .is_some_and(|value| value == "true")
}

/// True when the pod counts as serving its workload: ready, not being deleted, not isolated.
pub fn is_serving(pod: &Pod) -> bool {
    is_ready(pod) && !is_terminating(pod) && !is_quarantined(pod)
}

/// Generation of the pod as an instance: 1, plus one for every container restart. A
/// container restart in place is a new generation of the same instance, as a process
/// restart in place is.
pub fn generation(pod: &Pod) -> u64 {
    let restarts: i64 = pod
        .status
        .as_ref()
        .and_then(|status| status.container_statuses.as_ref())
        .map_or(0, |statuses| {
            statuses
                .iter()
                .map(|status| i64::from(status.restart_count.max(0)))
                .sum()
        });
    1 + u64::try_from(restarts).unwrap_or(0)
}

/// Name of the pod's workload: the `aro.io/workload` label, the workload recorded at
/// isolation, or else the Deployment that owns the pod. `None` for a pod without any.
pub fn workload(pod: &Pod) -> Option<String> {
    pod.labels()
        .get(labels::WORKLOAD)
        .or_else(|| pod.annotations().get(labels::QUARANTINED_WORKLOAD))
        .cloned()
        .or_else(|| deployment_name(pod))
}

/// Name of the Deployment that owns the pod's ReplicaSet, found by removing the
/// `-<pod-template-hash>` suffix from the ReplicaSet's name. `None` for a pod that no
/// ReplicaSet controls.
pub fn deployment_name(pod: &Pod) -> Option<String> {
    let owner = pod
        .owner_references()
        .iter()
        .find(|owner| owner.kind == "ReplicaSet" && owner.controller == Some(true))?;
    let hash = pod.labels().get(labels::POD_TEMPLATE_HASH)?;
    owner
        .name
        .strip_suffix(hash.as_str())?
        .strip_suffix('-')
        .map(str::to_owned)
}

/// List parameters that select the pods of `deployment`.
///
/// # Errors
///
/// Returns [`Error::Invalid`] when the Deployment's selector cannot be expressed as a query.
pub fn deployment_pods(deployment: &Deployment) -> Result<ListParams> {
    let object = format!("deployment {}", deployment.name_any());
    let selector = Selector::try_from(deployment.spec.selector.clone())
        .map_err(|error| Error::invalid(&object, format!("its selector is unusable: {error}")))?;
    Ok(ListParams::default().labels_from(&selector))
}
