//! Isolating a pod by relabelling it: without the labels of its Deployment's selector, its
//! ReplicaSet releases it (and starts a fresh pod) and Services that select on those labels
//! stop sending it traffic. The pod keeps running for inspection until the reaper deletes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::info;

use super::{Actuator, PodContext};
use crate::conflict::retry_on_conflict;
use crate::{Error, Result, labels};

/// A pod taken out of its ReplicaSet and Services.
#[derive(Debug)]
pub struct Isolated {
    pub namespace: String,
    pub pod: String,
    pub workload: String,
    /// Serving pods of the workload other than the isolated one, right before the isolation.
    pub serving_before: Vec<String>,
    /// Time after which the reaper deletes the pod.
    pub expires_at: Timestamp,
    pub(crate) context: PodContext,
}

impl Actuator {
    /// Isolates `pod`: removes the labels its Deployment selects on, marks it quarantined
    /// until the retention ends, after checking that it is not the last ready pod of its
    /// workload and that this deployer holds the workload's lease. A 409 Conflict re-reads
    /// the pod and tries again, up to the configured attempts.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LastReadyPod`], [`Error::LeaseHeld`], [`Error::LeaseLost`],
    /// [`Error::Superseded`], [`Error::ConflictExhausted`] or the API error; in each case the
    /// pod kept its labels.
    pub async fn isolate(&self, pod: &Pod) -> Result<Isolated> {
        Self::check_not_handled(pod)?;
        let context = self.prepare_pod_action(pod).await?;
        let name = pod.name_any();
        let object = format!("pod {}/{name}", context.namespace);
        let selector_keys = selector_keys(&context);
        let expires_at = self
            .clock
            .now()
            .checked_add(
                SignedDuration::try_from(self.settings.quarantine_retention)
                    .unwrap_or(SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MAX);

        let (current, serving_before) =
            retry_on_conflict(&object, self.settings.conflict_attempts, || async {
                let current = self.get_pod(&context.namespace, &name).await?;
                Self::check_not_handled(&current)?;
                let serving_before = self.guard_last_ready(&context, &current).await?;
                self.leases.check(&context.lease, "isolation").await?;
                let patch =
                    isolation_patch(&current, &context.workload, &selector_keys, expires_at);
                self.pods(&context.namespace)
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| Error::api("patch", &object, source))?;
                Ok((current, serving_before))
            })
            .await?;

        info!(namespace = %context.namespace, pod = %name, workload = %context.workload, %expires_at, "pod isolated");
        let note = format!(
            "Isolated by {}: removed from its ReplicaSet and Services, deleted after {expires_at}",
            self.settings.identity
        );
        self.record(
            &current.object_ref(&()),
            EventType::Normal,
            "Isolated",
            "Isolate",
            note,
        )
        .await;
        Ok(Isolated {
            namespace: context.namespace.clone(),
            pod: name,
            workload: context.workload.clone(),
            serving_before,
            expires_at,
            context,
        })
    }
}

/// Label keys the pod must lose to leave its ReplicaSet and its Deployment's selector: the
/// selector's keys and `pod-template-hash`.
fn selector_keys(context: &PodContext) -> Vec<String> {
    let selector = &context.deployment.spec.selector;
    let mut keys: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, _)| key.clone())
        .collect();
    keys.extend(
        selector
            .match_expressions
            .iter()
            .flatten()
            .map(|expression| expression.key.clone()),
    );
    keys.push(labels::POD_TEMPLATE_HASH.to_owned());
    keys.sort();
    keys.dedup();
    keys
}

/// JSON merge patch that removes the selected labels the pod has, marks it quarantined and
/// records its workload and the removed labels. The resourceVersion makes the API server return 409 Conflict
/// when the pod changed since it was read.
fn isolation_patch(
    pod: &Pod,
    workload: &str,
    selector_keys: &[String],
    expires_at: Timestamp,
) -> Value {
    let current = pod.labels();
    let removed: BTreeMap<&String, &String> = selector_keys
        .iter()
        .filter_map(|key| current.get_key_value(key))
        .collect();
    let mut label_patch = Map::new();
    for key in removed.keys() {
        label_patch.insert((*key).clone(), Value::Null);
    }
    label_patch.insert(labels::QUARANTINED.to_owned(), json!("true"));
    let removed = serde_json::to_string(&removed).unwrap_or_default();
    json!({
        "metadata": {
            "resourceVersion": pod.resource_version(),
            "labels": label_patch,
            "annotations": {
                labels::QUARANTINE_EXPIRES_AT: expires_at.to_string(),
                labels::QUARANTINED_LABELS: removed,
                labels::QUARANTINED_WORKLOAD: workload,
            },
        },
    })
}
