//! Cordoning a node (spec.unschedulable = true) so no new pod is scheduled onto it.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::Actuator;
use crate::conflict::retry_on_conflict;
use crate::lease::LeaseKey;
use crate::{Error, Result};

impl Actuator {
    /// Marks `node` unschedulable under the node's lease. Returns false, changing nothing,
    /// when it already was.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LeaseHeld`], [`Error::LeaseLost`], [`Error::ConflictExhausted`] or
    /// the API error.
    pub async fn cordon(&self, node: &str) -> Result<bool> {
        let lease = LeaseKey::node(&self.settings.lease_namespace, node);
        self.leases.acquire(&lease).await?;
        let nodes: Api<Node> = Api::all(self.client());
        let object = format!("node {node}");
        let changed = retry_on_conflict(&object, self.settings.conflict_attempts, || async {
            let current = nodes
                .get(node)
                .await
                .map_err(|source| Error::api("get", &object, source))?;
            if current.spec.as_ref().and_then(|spec| spec.unschedulable) == Some(true) {
                return Ok(None);
            }
            self.leases.check(&lease, "cordon").await?;
            let patch = json!({
                "metadata": { "resourceVersion": current.resource_version() },
                "spec": { "unschedulable": true },
            });
            nodes
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|source| Error::api("patch", &object, source))?;
            Ok(Some(current))
        })
        .await?;
        let Some(cordoned) = changed else {
            return Ok(false);
        };
        info!(node, "node cordoned");
        let note = format!(
            "Cordoned by {}: no new pods are scheduled here",
            self.settings.identity
        );
        self.record(
            &cordoned.object_ref(&()),
            EventType::Normal,
            "Cordoned",
            "Cordon",
            note,
        )
        .await;
        Ok(true)
    }
}
