use std::time::Duration;

/// Errors of the Kubernetes runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server rejected a call or could not be reached.
    #[error("{operation} {object} failed: {source}")]
    Api {
        operation: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    /// The object acted on does not exist (any more).
    #[error("{object} not found")]
    NotFound { object: String },
    /// The Eviction API refused with 429 because a PodDisruptionBudget allows no disruption
    /// now. Nothing was deleted; the eviction may be tried again after `retry_after`.
    #[error(
        "evicting pod {pod} is blocked by a disruption budget, retry in {retry_after:?}: {message}"
    )]
    EvictionBlocked {
        pod: String,
        retry_after: Duration,
        message: String,
    },
    /// Every attempt of an update ended in 409 Conflict because another writer changed the
    /// object between the read and the write.
    #[error(
        "updating {object} failed after {attempts} attempts: the object kept changing (409 Conflict)"
    )]
    ConflictExhausted { object: String, attempts: u32 },
    /// Another deployer holds the workload's lease and it has not expired.
    #[error(
        "lease {lease} is held by {holder} until {until}; this deployer ({identity}) does not act"
    )]
    LeaseHeld {
        lease: String,
        holder: String,
        identity: String,
        until: String,
    },
    /// The lease this deployer acquired was taken over or expired before a destructive call,
    /// so the call was not made.
    #[error(
        "lease {lease} was lost before {operation} (holder now {holder:?}); nothing was changed"
    )]
    LeaseLost {
        lease: String,
        operation: &'static str,
        holder: String,
    },
    /// The action would leave the workload without a ready pod.
    #[error("pod {pod} is the last ready pod of {workload}; it is not touched")]
    LastReadyPod { pod: String, workload: String },
    /// The pod was already replaced: it is being deleted or was isolated earlier.
    #[error("pod {pod} was already handled: {reason}")]
    Superseded { pod: String, reason: String },
    /// An object lacks what the action needs (a selector, a revision, a previous revision).
    #[error("invalid {object}: {reason}")]
    Invalid { object: String, reason: String },
}

impl Error {
    pub(crate) fn api(
        operation: &'static str,
        object: impl Into<String>,
        source: kube::Error,
    ) -> Self {
        let object = object.into();
        if is_status(&source, 404) {
            return Self::NotFound { object };
        }
        Self::Api {
            operation,
            object,
            source,
        }
    }

    pub(crate) fn invalid(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// True for the 409 Conflict of an optimistic-concurrency write.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { source, .. } if is_status(source, 409))
    }
}

/// True when `error` is an API error with HTTP status `code`.
pub(crate) fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Result of Kubernetes runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
