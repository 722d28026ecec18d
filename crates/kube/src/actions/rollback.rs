//! Rolling a Deployment back to its previous ReplicaSet: the ReplicaSet with the highest
//! `deployment.kubernetes.io/revision` below the Deployment's own gives its pod template back.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::Actuator;
use crate::conflict::retry_on_conflict;
use crate::lease::LeaseKey;
use crate::{Error, Result, labels, pods};

/// A Deployment whose template was set back to an earlier revision.
#[derive(Debug)]
pub struct RolledBack {
    pub namespace: String,
    pub deployment: String,
    /// Revision the Deployment had before the rollback.
    pub from_revision: u64,
    /// Revision whose template it runs now.
    pub to_revision: u64,
    /// ReplicaSet that carried the restored template.
    pub replica_set: String,
}

impl Actuator {
    /// Rolls `deployment` in `namespace`, part of `workload`, back to its previous
    /// ReplicaSet's template, without that ReplicaSet's `pod-template-hash` label, which
    /// the Deployment controller sets itself. The Deployment controller then rolls the pods
    /// over as the Deployment's strategy allows.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Invalid`] when the Deployment has no revision or no earlier
    /// ReplicaSet, [`Error::LeaseHeld`], [`Error::LeaseLost`], [`Error::ConflictExhausted`]
    /// or the API error.
    pub async fn rollback(
        &self,
        namespace: &str,
        deployment: &str,
        workload: &str,
    ) -> Result<RolledBack> {
        let lease = LeaseKey::workload(namespace, workload);
        self.leases.acquire(&lease).await?;
        let object = format!("deployment {namespace}/{deployment}");
        let (updated, rolled_back) =
            retry_on_conflict(&object, self.settings.conflict_attempts, || async {
                let current = self.get_deployment(namespace, deployment).await?;
                let from_revision = revision(&current, &object)?;
                let previous = self.previous_replica_set(&current, from_revision).await?;
                let to_revision = revision(
                    &previous,
                    &format!("replicaset {namespace}/{}", previous.name_any()),
                )?;
                let template = restored_template(&previous, namespace)?;
                let mut next = current;
                next.annotations_mut()
                    .insert(labels::ROLLED_BACK_TO.to_owned(), to_revision.to_string());
                next.spec.template = template;
                self.leases.check(&lease, "rollback").await?;
                let updated = self
                    .deployments(namespace)
                    .replace(deployment, &PostParams::default(), &next)
                    .await
                    .map_err(|source| Error::api("update", &object, source))?;
                Ok((
                    updated,
                    RolledBack {
                        namespace: namespace.to_owned(),
                        deployment: deployment.to_owned(),
                        from_revision,
                        to_revision,
                        replica_set: previous.name_any(),
                    },
                ))
            })
            .await?;
        info!(
            namespace,
            deployment,
            from_revision = rolled_back.from_revision,
            to_revision = rolled_back.to_revision,
            "deployment rolled back"
        );
        let note = format!(
            "Rolled back by {} from revision {} to revision {} (template of ReplicaSet {})",
            self.settings.identity,
            rolled_back.from_revision,
            rolled_back.to_revision,
            rolled_back.replica_set
        );
        self.record(
            &updated.object_ref(&()),
            EventType::Normal,
            "RolledBack",
            "Rollback",
            note,
        )
        .await;
        Ok(rolled_back)
    }

    /// Finds the ReplicaSet owned by `deployment` with the highest revision below `current`.
    async fn previous_replica_set(
        &self,
        deployment: &Deployment,
        current: u64,
    ) -> Result<ReplicaSet> {
        let namespace = deployment.namespace().unwrap_or_default();
        let object = format!("deployment {namespace}/{}", deployment.name_any());
        let params = pods::deployment_pods(deployment)?;
        let uid = deployment.uid().unwrap_or_default();
        let listed = Api::<ReplicaSet>::namespaced(self.client(), &namespace)
            .list(&params)
            .await
            .map_err(|source| Error::api("list", format!("replicasets of {object}"), source))?;
        listed
            .items
            .into_iter()
            .filter(|replica_set| {
                replica_set
                    .owner_references()
                    .iter()
                    .any(|owner| owner.controller == Some(true) && owner.uid == uid)
            })
            .filter_map(|replica_set| {
                let revision = replica_set
                    .annotations()
                    .get(labels::REVISION)?
                    .parse::<u64>()
                    .ok()?;
                (revision < current).then_some((revision, replica_set))
            })
            .max_by_key(|(revision, _)| *revision)
            .map(|(_, replica_set)| replica_set)
            .ok_or_else(|| {
                Error::invalid(
                    &object,
                    format!("it has no ReplicaSet with a revision below {current} to roll back to"),
                )
            })
    }
}

fn revision<K: Resource>(object: &K, name: &str) -> Result<u64> {
    let value = object
        .meta()
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(labels::REVISION))
        .ok_or_else(|| {
            Error::invalid(name, format!("annotation {} is missing", labels::REVISION))
        })?;
    value.parse().map_err(|_| {
        Error::invalid(
            name,
            format!(
                "annotation {} is {value:?}, not a whole number",
                labels::REVISION
            ),
        )
    })
}

/// Returns the ReplicaSet's pod template without the `pod-template-hash` label.
fn restored_template(replica_set: &ReplicaSet, namespace: &str) -> Result<PodTemplateSpec> {
    let mut template = replica_set.spec.template.clone().ok_or_else(|| {
        Error::invalid(
            format!("replicaset {namespace}/{}", replica_set.name_any()),
            "it has no pod template",
        )
    })?;
    if let Some(metadata) = template.metadata.as_mut()
        && let Some(labels) = metadata.labels.as_mut()
    {
        labels.remove(labels::POD_TEMPLATE_HASH);
    }
    Ok(template)
}
