//! Fault injection on pods: a kill deletes the pod at once, a partition labels the pod and
//! cuts all its traffic with a NetworkPolicy that allows nothing. Each injection holds the
//! workload's lease and re-reads it right before the destructive call, as the recovery
//! actions do, so that chaos and recovery never act on one workload from two deployers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::Actuator;
use crate::error::is_status;
use crate::lease::LeaseKey;
use crate::{Error, Result, labels, pods};

/// Prefix of the name of a partition's NetworkPolicy, followed by the injection id.
pub const PARTITION_POLICY_PREFIX: &str = "aro-partition-";

/// Name of the NetworkPolicy that partitions the pods of `injection`.
pub fn partition_policy_name(injection: &str) -> String {
    format!("{PARTITION_POLICY_PREFIX}{injection}")
}

/// Builds the NetworkPolicy of a partition: it selects the pods labelled
/// [`labels::PARTITIONED`]`=<injection>` and, with both policy types and no rule, denies all
/// their ingress and egress traffic.
pub fn partition_policy(namespace: &str, injection: &str) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(partition_policy_name(injection)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED.to_owned(), "true".to_owned()),
                (labels::INJECTION.to_owned(), injection.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    labels::PARTITIONED.to_owned(),
                    injection.to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Partitions and labels that [`Actuator::clean_partitions`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Names of the deleted NetworkPolicies.
    pub policies: Vec<String>,
    /// Names of the pods whose partition label was removed.
    pub pods: Vec<String>,
}

impl Actuator {
    fn network_policies(&self, namespace: &str) -> Api<NetworkPolicy> {
        Api::namespaced(self.client(), namespace)
    }

    /// Lists the opted-in pods of `namespace`, among which fault injections select.
    ///
    /// # Errors
    ///
    /// Returns the API error of the listing.
    pub async fn opted_in_pods(&self, namespace: &str) -> Result<Vec<Pod>> {
        let params = ListParams::default().labels(&labels::opt_in_selector());
        let listed = self.pods(namespace).list(&params).await.map_err(|source| {
            Error::api("list", format!("opted-in pods in {namespace}"), source)
        })?;
        Ok(listed.items)
    }

    /// Acquires the lease of `pod`'s workload and checks it again, right before the
    /// destructive `operation`. Returns the workload.
    async fn hold_workload_lease(&self, pod: &Pod, operation: &'static str) -> Result<String> {
        let namespace = pod.namespace().unwrap_or_default();
        let workload = pods::workload(pod).ok_or_else(|| {
            Error::invalid(
                format!("pod {namespace}/{}", pod.name_any()),
                "no Deployment owns it and it has no aro.io/workload label",
            )
        })?;
        let lease = LeaseKey::workload(&namespace, &workload);
        self.leases.acquire(&lease).await?;
        self.leases.check(&lease, operation).await?;
        Ok(workload)
    }

    /// Deletes `pod` with a grace period of 0 for injection `injection`, under its workload's
    /// lease, and records a `FaultInjected` Event on it. Its ReplicaSet starts a replacement,
    /// so there is nothing to undo.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LeaseHeld`] or [`Error::LeaseLost`] (the pod was not deleted),
    /// [`Error::NotFound`] for a pod that is gone, or the API error.
    pub async fn kill_pod(&self, pod: &Pod, injection: &str) -> Result<()> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let workload = self.hold_workload_lease(pod, "fault injection").await?;
        self.pods(&namespace)
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .map_err(|source| Error::api("delete", format!("pod {namespace}/{name}"), source))?;
        info!(%namespace, pod = %name, %workload, %injection, "pod killed by fault injection");
        let note = format!(
            "Killed by {} for fault injection {injection}",
            self.settings.identity
        );
        self.record(
            &pod.object_ref(&()),
            EventType::Warning,
            "FaultInjected",
            "Kill",
            note,
        )
        .await;
        Ok(())
    }

    /// Partitions `pod` for injection `injection`, under its workload's lease: labels it
    /// [`labels::PARTITIONED`]`=<injection>` and creates the injection's NetworkPolicy in its
    /// namespace unless it exists, then records a `FaultInjected` Event on the pod. A cluster
    /// whose network plugin does not enforce NetworkPolicies accepts the policy and the pod
    /// keeps its traffic.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LeaseHeld`] or [`Error::LeaseLost`] (nothing was changed),
    /// [`Error::NotFound`] for a pod that is gone, or the API error. When the policy cannot be
    /// created, the label is removed again.
    pub async fn partition_pod(&self, pod: &Pod, injection: &str) -> Result<()> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let object = format!("pod {namespace}/{name}");
        let workload = self.hold_workload_lease(pod, "fault injection").await?;
        self.pods(&namespace)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(label_patch(json!(injection))),
            )
            .await
            .map_err(|source| Error::api("patch", &object, source))?;
        let policy = partition_policy(&namespace, injection);
        match self
            .network_policies(&namespace)
            .create(&PostParams::default(), &policy)
            .await
        {
            Ok(_) => {}
            // Another target of the injection in this namespace created it already.
            Err(source) if is_status(&source, 409) => {}
            Err(source) => {
                let error = Error::api(
                    "create",
                    format!(
                        "networkpolicy {namespace}/{}",
                        partition_policy_name(injection)
                    ),
                    source,
                );
                if let Err(undo) = self.unlabel(&namespace, &name).await {
                    warn!(%namespace, pod = %name, error = %undo, "removing the partition label failed");
                }
                return Err(error);
            }
        }
        info!(%namespace, pod = %name, %workload, %injection, "pod partitioned by fault injection");
        let note = format!(
            "Partitioned by {} for fault injection {injection}: NetworkPolicy {} denies all its \
             traffic",
            self.settings.identity,
            partition_policy_name(injection)
        );
        self.record(
            &pod.object_ref(&()),
            EventType::Warning,
            "FaultInjected",
            "Partition",
            note,
        )
        .await;
        Ok(())
    }

    /// Reconnects pod `name` of `namespace` after injection `injection`: removes its
    /// partition label, so that the injection's NetworkPolicy no longer selects it, and
    /// records a `FaultReverted` Event. A pod that is gone needs nothing.
    ///
    /// # Errors
    ///
    /// Returns the API error of the patch.
    pub async fn reconnect_pod(&self, namespace: &str, name: &str, injection: &str) -> Result<()> {
        let pod = match self.unlabel(namespace, name).await {
            Ok(pod) => pod,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        info!(namespace, pod = name, injection, "pod reconnected");
        let note = format!(
            "Reconnected by {}: fault injection {injection} ended",
            self.settings.identity
        );
        self.record(
            &pod.object_ref(&()),
            EventType::Normal,
            "FaultReverted",
            "Reconnect",
            note,
        )
        .await;
        Ok(())
    }

    /// Deletes the NetworkPolicy of injection `injection` in `namespace`; one that is gone
    /// needs nothing.
    ///
    /// # Errors
    ///
    /// Returns the API error of the deletion.
    pub async fn delete_partition_policy(&self, namespace: &str, injection: &str) -> Result<()> {
        let name = partition_policy_name(injection);
        match self
            .network_policies(namespace)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                info!(namespace, policy = %name, injection, "partition policy deleted");
                Ok(())
            }
            Err(source) if is_status(&source, 404) => Ok(()),
            Err(source) => Err(Error::api(
                "delete",
                format!("networkpolicy {namespace}/{name}"),
                source,
            )),
        }
    }

    /// Removes the partitions that a deployer left in `namespace` and that `keep` does not
    /// name by injection id: deletes their NetworkPolicies and the partition label of their
    /// pods. Used at start-up, when no partition of an earlier run is kept.
    ///
    /// # Errors
    ///
    /// Returns the first API error; what was removed before it stays removed.
    pub async fn clean_partitions(
        &self,
        namespace: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Cleaned> {
        let mut cleaned = Cleaned::default();
        let params = ListParams::default().labels(&labels::partitioned_selector());
        let partitioned = self.pods(namespace).list(&params).await.map_err(|source| {
            Error::api("list", format!("partitioned pods in {namespace}"), source)
        })?;
        for pod in partitioned.items {
            let injection = pod
                .labels()
                .get(labels::PARTITIONED)
                .cloned()
                .unwrap_or_default();
            if keep(&injection) {
                continue;
            }
            self.reconnect_pod(namespace, &pod.name_any(), &injection)
                .await?;
            cleaned.pods.push(pod.name_any());
        }
        let params = ListParams::default().labels(&labels::injection_selector());
        let policies = self
            .network_policies(namespace)
            .list(&params)
            .await
            .map_err(|source| {
                Error::api("list", format!("networkpolicies in {namespace}"), source)
            })?;
        for policy in policies.items {
            let injection = policy
                .labels()
                .get(labels::INJECTION)
                .cloned()
                .unwrap_or_default();
            if keep(&injection) {
                continue;
            }
            self.delete_partition_policy(namespace, &injection).await?;
            cleaned.policies.push(policy.name_any());
        }
        Ok(cleaned)
    }

    /// Removes the partition label of pod `name`. Returns the pod as patched.
    async fn unlabel(&self, namespace: &str, name: &str) -> Result<Pod> {
        self.pods(namespace)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(label_patch(Value::Null)),
            )
            .await
            .map_err(|source| Error::api("patch", format!("pod {namespace}/{name}"), source))
    }
}

/// JSON merge patch that sets the partition label to `value`, or removes it for null.
fn label_patch(value: Value) -> Value {
    json!({ "metadata": { "labels": { labels::PARTITIONED: value } } })
}
