//! Leases (coordination.k8s.io/v1) that let one deployer at a time act on a workload or a
//! node. A lease is held while its holder renews it within its duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::{debug, info};

use crate::conflict::retry_on_conflict;
use crate::{Clock, Error, Result};

/// Namespace and name of one lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub namespace: String,
    pub name: String,
}

impl LeaseKey {
    /// Names the lease of a workload, in the workload's namespace: `aro-<workload>`.
    pub fn workload(namespace: &str, workload: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: format!("aro-{workload}"),
        }
    }

    /// Names the lease of a node, `aro-node-<node>`, in `namespace` because nodes have none.
    pub fn node(namespace: &str, node: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: format!("aro-node-{node}"),
        }
    }
}

impl std::fmt::Display for LeaseKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "lease {}/{}", self.namespace, self.name)
    }
}

/// Acquires, renews and checks leases under one holder identity.
#[derive(Clone)]
pub struct Leases {
    client: Client,
    identity: String,
    duration: Duration,
    conflict_attempts: u32,
    clock: Clock,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Leases")
            .field("identity", &self.identity)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Creates a lease client for `identity` (unique per deployer replica) with leases of
    /// `duration`, retrying a conflicting write `conflict_attempts` times.
    pub fn new(
        client: Client,
        identity: impl Into<String>,
        duration: Duration,
        conflict_attempts: u32,
        clock: Clock,
    ) -> Self {
        Self {
            client,
            identity: identity.into(),
            duration,
            conflict_attempts,
            clock,
        }
    }

    /// Returns the lease duration this deployer writes into its leases.
    pub fn duration(&self) -> std::time::Duration {
        self.duration
    }

    /// Holder identity this deployer writes into its leases.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn api(&self, key: &LeaseKey) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &key.namespace)
    }

    /// Acquires the lease when it is free or expired, or renews it when this deployer holds
    /// it. A conflicting write (another deployer took or renewed it in between) is re-read and
    /// tried again.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LeaseHeld`] when another holder's lease has not expired,
    /// [`Error::ConflictExhausted`] when every write conflicted, or the API error.
    pub async fn acquire(&self, key: &LeaseKey) -> Result<()> {
        retry_on_conflict(&key.to_string(), self.conflict_attempts, || {
            self.acquire_once(key)
        })
        .await
    }

    async fn acquire_once(&self, key: &LeaseKey) -> Result<()> {
        let api = self.api(key);
        let now = self.clock.now();
        let current = match api.get(&key.name).await {
            Ok(lease) => lease,
            Err(source) if crate::error::is_status(&source, 404) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(key.name.clone()),
                        namespace: Some(key.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(now, now, 0)),
                };
                api.create(&PostParams::default(), &lease)
                    .await
                    .map_err(|source| Error::api("create", key.to_string(), source))?;
                info!(lease = %key.name, namespace = %key.namespace, identity = %self.identity, "lease acquired");
                return Ok(());
            }
            Err(source) => return Err(Error::api("get", key.to_string(), source)),
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mut next = current;
        if holder == self.identity {
            let acquired = spec.acquire_time.map_or(now, |time| time.0);
            let transitions = spec.lease_transitions.unwrap_or(0);
            next.spec = Some(self.held_spec(acquired, now, transitions));
            debug!(lease = %key.name, "lease renewed");
        } else if let Some(until) = expiry(&spec).filter(|until| *until > now)
            && !holder.is_empty()
        {
            return Err(Error::LeaseHeld {
                lease: key.to_string(),
                holder,
                identity: self.identity.clone(),
                until: until.to_string(),
            });
        } else {
            let transitions = spec.lease_transitions.unwrap_or(0) + 1;
            next.spec = Some(self.held_spec(now, now, transitions));
            info!(lease = %key.name, previous = %holder, identity = %self.identity, "expired lease taken over");
        }
        api.replace(&key.name, &PostParams::default(), &next)
            .await
            .map_err(|source| Error::api("update", key.to_string(), source))?;
        Ok(())
    }

    fn held_spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Re-reads the lease right before a destructive call and checks that this deployer still
    /// holds it and that it has not expired.
    ///
    /// # Errors
    ///
    /// Returns [`Error::LeaseLost`] naming the `operation` that was not made when the lease
    /// is gone, held by another deployer or expired, or the API error.
    pub async fn check(&self, key: &LeaseKey, operation: &'static str) -> Result<()> {
        let lost = |holder: String| Error::LeaseLost {
            lease: key.to_string(),
            operation,
            holder,
        };
        let lease = match self.api(key).get(&key.name).await {
            Ok(lease) => lease,
            Err(source) if crate::error::is_status(&source, 404) => {
                return Err(lost(String::new()));
            }
            Err(source) => return Err(Error::api("get", key.to_string(), source)),
        };
        let spec = lease.spec.unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let live = expiry(&spec).is_some_and(|until| until > self.clock.now());
        if holder != self.identity || !live {
            return Err(lost(holder));
        }
        Ok(())
    }
}

/// End of the lease's current term, or `None` when it records no renewal or duration.
fn expiry(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec.renew_time.as_ref()?.0;
    let seconds = spec.lease_duration_seconds?;
    renewed
        .checked_add(SignedDuration::from_secs(i64::from(seconds)))
        .ok()
}
