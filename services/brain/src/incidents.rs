//! The incidents bucket: one entry per incident, updated with compare-and-set on the entry's
//! revision so replicas of the brain never act on a stale view.

use aro_bus::async_nats::jetstream::kv;
use aro_bus::{Bus, subjects};
use aro_proto::v1::Incident;
use futures::StreamExt;
use prost::Message;

/// Errors of the incidents bucket.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IncidentError {
    #[error("incidents bucket unavailable: {0}")]
    Open(String),
    #[error("reading incident {id} failed: {message}")]
    Read { id: String, message: String },
    #[error("writing incident {id} failed: {message}")]
    Write { id: String, message: String },
    /// Another writer changed the entry since it was read.
    #[error("incident {id} changed concurrently")]
    Conflict { id: String },
}

/// An incident and the revision it was read at.
#[derive(Clone, Debug)]
pub(crate) struct Versioned {
    pub(crate) incident: Incident,
    /// 0 for an incident that is not stored yet.
    pub(crate) revision: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct IncidentStore {
    store: kv::Store,
}

impl IncidentStore {
    pub(crate) async fn open(bus: &Bus) -> Result<Self, IncidentError> {
        let store = bus
            .jetstream()
            .get_key_value(subjects::INCIDENTS_BUCKET)
            .await
            .map_err(|error| IncidentError::Open(error.to_string()))?;
        Ok(Self { store })
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Versioned>, IncidentError> {
        let read = |message: String| IncidentError::Read {
            id: id.to_owned(),
            message,
        };
        let Some(entry) = self
            .store
            .entry(id)
            .await
            .map_err(|error| read(error.to_string()))?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let incident = Incident::decode(entry.value).map_err(|error| read(error.to_string()))?;
        Ok(Some(Versioned {
            incident,
            revision: entry.revision,
        }))
    }

    /// Stores `incident` if its entry is still at `revision` (0: if it does not exist yet).
    pub(crate) async fn save(
        &self,
        incident: &Incident,
        revision: u64,
    ) -> Result<u64, IncidentError> {
        let id = incident.id.as_str();
        let value = incident.encode_to_vec().into();
        if revision == 0 {
            self.store.create(id, value).await.map_err(|error| {
                if error.kind() == kv::CreateErrorKind::AlreadyExists {
                    IncidentError::Conflict { id: id.to_owned() }
                } else {
                    IncidentError::Write {
                        id: id.to_owned(),
                        message: error.to_string(),
                    }
                }
            })
        } else {
            self.store
                .update(id, value, revision)
                .await
                .map_err(|error| {
                    if error.kind() == kv::UpdateErrorKind::WrongLastRevision {
                        IncidentError::Conflict { id: id.to_owned() }
                    } else {
                        IncidentError::Write {
                            id: id.to_owned(),
                            message: error.to_string(),
                        }
                    }
                })
        }
    }

    /// Lists stored incidents, newest first, optionally of one workload.
    pub(crate) async fn list(
        &self,
        workload: &str,
        limit: usize,
    ) -> Result<Vec<Incident>, IncidentError> {
        let read = |message: String| IncidentError::Read {
            id: ">".to_owned(),
            message,
        };
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|error| read(error.to_string()))?;
        let mut incidents = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|error| read(error.to_string()))?;
            if let Some(versioned) = self.get(&key).await? {
                let matches = workload.is_empty()
                    || versioned
                        .incident
                        .target
                        .as_ref()
                        .is_some_and(|t| t.workload == workload);
                if matches {
                    incidents.push(versioned.incident);
                }
            }
        }
        incidents.sort_by_key(|incident| {
            std::cmp::Reverse(aro_proto::time::micros(incident.opened_at.as_ref()))
        });
        incidents.truncate(limit);
        Ok(incidents)
    }
}
