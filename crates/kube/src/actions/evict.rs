//! Removing a pod through the Eviction API (policy/v1), so the ReplicaSet replaces it and
//! PodDisruptionBudgets hold.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Status;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::{Actuator, PodContext};
use crate::{Error, Result};

/// A pod the Eviction API accepted to remove.
#[derive(Debug)]
pub struct Evicted {
    pub namespace: String,
    pub pod: String,
    pub workload: String,
    /// Serving pods of the workload other than the evicted one, right before the eviction.
    pub serving_before: Vec<String>,
    pub(crate) context: PodContext,
}

impl Actuator {
    /// Evicts `pod` after checking that it is not the last ready pod of its workload and that
    /// this deployer holds the workload's lease. Its ReplicaSet then starts a replacement.
    ///
    /// # Errors
    ///
    /// Returns [`Error::EvictionBlocked`] with the delay to wait when the API returns 429
    /// because a PodDisruptionBudget allows no disruption now (the pod is left alone), and
    /// [`Error::LastReadyPod`], [`Error::LeaseHeld`], [`Error::LeaseLost`],
    /// [`Error::Superseded`] or the API error otherwise; in each case nothing was evicted.
    pub async fn evict(&self, pod: &Pod) -> Result<Evicted> {
        Self::check_not_handled(pod)?;
        let context = self.prepare_pod_action(pod).await?;
        let name = pod.name_any();
        let serving_before = self.guard_last_ready(&context, pod).await?;
        self.leases.check(&context.lease, "eviction").await?;
        let reference = pod.object_ref(&());
        match self.post_eviction(&context.namespace, &name).await {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 429 => {
                let retry_after = match status
                    .details
                    .as_ref()
                    .map(|details| details.retry_after_seconds)
                {
                    Some(seconds) if seconds > 0 => Duration::from_secs(u64::from(seconds)),
                    _ => self.settings.eviction_backoff,
                };
                let note = format!(
                    "Eviction refused by a disruption budget, retrying in {}s: {}",
                    retry_after.as_secs(),
                    status.message
                );
                self.record(
                    &reference,
                    EventType::Warning,
                    "EvictionBlocked",
                    "Evict",
                    note,
                )
                .await;
                return Err(Error::EvictionBlocked {
                    pod: name,
                    retry_after,
                    message: status.message,
                });
            }
            Err(source) => {
                return Err(Error::api(
                    "evict",
                    format!("pod {}/{name}", context.namespace),
                    source,
                ));
            }
        }
        info!(namespace = %context.namespace, pod = %name, workload = %context.workload, "pod evicted");
        let note = format!(
            "Evicted by {} so that its ReplicaSet replaces it",
            self.settings.identity
        );
        self.record(&reference, EventType::Normal, "Evicted", "Evict", note)
            .await;
        Ok(Evicted {
            namespace: context.namespace.clone(),
            pod: name,
            workload: context.workload.clone(),
            serving_before,
            context,
        })
    }

    async fn post_eviction(&self, namespace: &str, name: &str) -> kube::Result<()> {
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            delete_options: None,
        };
        // k8s-openapi writes apiVersion policy/v1 and kind Eviction into the body.
        let body = serde_json::to_vec(&eviction).map_err(kube::Error::SerdeError)?;
        let request = http::Request::post(format!(
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction"
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
        self.client().request::<Status>(request).await?;
        Ok(())
    }
}
