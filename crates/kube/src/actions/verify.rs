//! Verification after an action: the workload serves with its desired replicas again.

use std::time::Duration;

use kube::ResourceExt;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{Actuator, PodContext};
use crate::Result;
use crate::lease::{LeaseKey, Leases};

/// Keeps a lease renewed while a verification waits, so that no other deployer acts on the
/// workload before its outcome is known. It renews once half the lease duration has passed
/// since the action, and stops renewing after a failed renewal.
struct Renewal<'a> {
    leases: &'a Leases,
    key: &'a LeaseKey,
    renewed_at: Instant,
    active: bool,
}

impl<'a> Renewal<'a> {
    fn new(leases: &'a Leases, key: &'a LeaseKey) -> Self {
        Self {
            leases,
            key,
            renewed_at: Instant::now(),
            active: true,
        }
    }

    async fn keep(&mut self) {
        if !self.active || self.renewed_at.elapsed() < self.leases.duration() / 2 {
            return;
        }
        match self.leases.acquire(self.key).await {
            Ok(()) => self.renewed_at = Instant::now(),
            Err(error) => {
                warn!(lease = %self.key, %error, "renewing the lease during verification failed");
                self.active = false;
            }
        }
    }
}

/// Serving pods of a workload when its desired replica count was reached, or when time ran
/// out.
#[derive(Debug, PartialEq, Eq)]
pub struct Serving {
    pub desired: u32,
    /// Replicas that serve: ready pods for a pod action, available replicas for a rollback.
    pub serving: u32,
    /// Names of the serving pods; empty after a rollback.
    pub pods: Vec<String>,
    /// Time from the start of the verification.
    pub after: Duration,
    pub reached: bool,
}

impl Actuator {
    /// Lists the workload's pods every verification interval until as many serve as the
    /// Deployment desires, or until the verification timeout. Pods being deleted and isolated
    /// pods do not count.
    ///
    /// # Errors
    ///
    /// Returns the API error of a listing.
    pub(crate) async fn wait_serving(&self, context: &PodContext) -> Result<Serving> {
        let desired = context.deployment.spec.replicas.unwrap_or(1);
        let desired = u32::try_from(desired).unwrap_or(0);
        let start = Instant::now();
        let deadline = start + self.settings.verify_timeout;
        let mut renewal = Renewal::new(&self.leases, &context.lease);
        loop {
            let pods = self.serving_pods(context).await?;
            let serving = u32::try_from(pods.len()).unwrap_or(u32::MAX);
            let after = start.elapsed();
            if serving >= desired || Instant::now() + self.settings.verify_interval > deadline {
                return Ok(Serving {
                    desired,
                    serving,
                    pods,
                    after,
                    reached: serving >= desired,
                });
            }
            debug!(deployment = %context.deployment.name_any(), serving, desired, "waiting for the workload to serve");
            renewal.keep().await;
            tokio::time::sleep(self.settings.verify_interval).await;
        }
    }
}

impl Actuator {
    /// Reads the Deployment every verification interval until its controller has seen the
    /// latest spec and all desired replicas run the new template and are available, or until
    /// the verification timeout. Returns whether that was reached and the replicas available.
    ///
    /// # Errors
    ///
    /// Returns the API error of a read.
    pub(crate) async fn wait_rolled_out(
        &self,
        namespace: &str,
        deployment: &str,
        lease: &LeaseKey,
    ) -> Result<Serving> {
        let start = Instant::now();
        let deadline = start + self.settings.verify_timeout;
        let mut renewal = Renewal::new(&self.leases, lease);
        loop {
            let current = self.get_deployment(namespace, deployment).await?;
            let desired = current.spec.replicas.unwrap_or(1);
            let status = current.status.clone().unwrap_or_default();
            let observed =
                status.observed_generation.unwrap_or(0) >= current.metadata.generation.unwrap_or(0);
            let updated = status.updated_replicas.unwrap_or(0);
            let available = status.available_replicas.unwrap_or(0);
            let reached = observed && updated >= desired && available >= desired;
            if reached || Instant::now() + self.settings.verify_interval > deadline {
                return Ok(Serving {
                    desired: u32::try_from(desired).unwrap_or(0),
                    serving: u32::try_from(available).unwrap_or(0),
                    pods: Vec::new(),
                    after: start.elapsed(),
                    reached,
                });
            }
            debug!(
                deployment,
                updated, available, desired, "waiting for the rollback to roll out"
            );
            renewal.keep().await;
            tokio::time::sleep(self.settings.verify_interval).await;
        }
    }
}
