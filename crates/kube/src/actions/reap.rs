//! The reaper: deletes isolated pods once their retention has ended.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::Actuator;
use crate::lease::LeaseKey;
use crate::{Error, Result, labels, pods};

impl Actuator {
    /// Deletes the isolated pods of `namespace` whose `aro.io/quarantine-expires-at` has
    /// passed, each under its workload's lease, and returns their names. A pod without a
    /// readable expiry is kept and logged. A pod whose lease another deployer holds is left
    /// to that deployer.
    ///
    /// # Errors
    ///
    /// Returns the API error of the listing; the error of one pod is logged and the others
    /// are still reaped.
    pub async fn reap(&self, namespace: &str) -> Result<Vec<String>> {
        let params = ListParams::default().labels(&labels::quarantined_selector());
        let listed = self.pods(namespace).list(&params).await.map_err(|source| {
            Error::api("list", format!("isolated pods in {namespace}"), source)
        })?;
        let now = self.clock.now();
        let mut reaped = Vec::new();
        for pod in listed.items {
            let name = pod.name_any();
            let Some(expires_at) = expiry(&pod) else {
                warn!(namespace, pod = %name, annotation = labels::QUARANTINE_EXPIRES_AT, "isolated pod without a valid expiry kept");
                continue;
            };
            if expires_at > now || pods::is_terminating(&pod) {
                continue;
            }
            match self.delete_expired(namespace, &pod, expires_at).await {
                Ok(()) => reaped.push(name),
                Err(error) => {
                    warn!(namespace, pod = %name, %error, "deleting an expired isolated pod failed")
                }
            }
        }
        Ok(reaped)
    }

    async fn delete_expired(
        &self,
        namespace: &str,
        pod: &Pod,
        expires_at: Timestamp,
    ) -> Result<()> {
        let name = pod.name_any();
        let workload = pods::workload(pod).unwrap_or_else(|| name.clone());
        let lease = LeaseKey::workload(namespace, &workload);
        self.leases.acquire(&lease).await?;
        self.leases.check(&lease, "deletion").await?;
        match self
            .pods(namespace)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(source) if crate::error::is_status(&source, 404) => return Ok(()),
            Err(source) => {
                return Err(Error::api(
                    "delete",
                    format!("pod {namespace}/{name}"),
                    source,
                ));
            }
        }
        info!(namespace, pod = %name, %workload, %expires_at, "expired isolated pod deleted");
        let note = format!(
            "Deleted by {}: its quarantine ended at {expires_at}",
            self.settings.identity
        );
        self.record(
            &pod.object_ref(&()),
            EventType::Normal,
            "QuarantineEnded",
            "Delete",
            note,
        )
        .await;
        Ok(())
    }
}

fn expiry(pod: &Pod) -> Option<Timestamp> {
    pod.annotations()
        .get(labels::QUARANTINE_EXPIRES_AT)?
        .parse()
        .ok()
}
