use aro_proto::v1::InjectionRecord;
use async_nats::jetstream::kv;
use prost::Message;

use crate::registry::{kv_error, list_values};
use crate::{Bus, Result, subjects};

/// The injections bucket: one entry per fault injection, keyed by its id, written by the
/// deployer so that a restarted deployer can undo what its earlier run left active.
#[derive(Clone, Debug)]
pub struct InjectionStore {
    store: kv::Store,
}

impl InjectionStore {
    /// Opens the injections bucket, which [`Bus::connect_and_prepare`] created.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::KeyValue`] when the bucket does not exist.
    pub async fn open(bus: &Bus) -> Result<Self> {
        let store = bus
            .jetstream()
            .get_key_value(subjects::INJECTIONS_BUCKET)
            .await
            .map_err(|error| kv_error("open", subjects::INJECTIONS_BUCKET, error))?;
        Ok(Self { store })
    }

    /// Stores `record` under its injection's id and returns the entry's revision.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::KeyValue`] when NATS rejects the write.
    pub async fn put(&self, record: &InjectionRecord) -> Result<u64> {
        let id = record
            .injection
            .as_ref()
            .map(|injection| injection.id.as_str())
            .expect("stored injections always carry the injection");
        self.store
            .put(id, record.encode_to_vec().into())
            .await
            .map_err(|error| kv_error("put", id, error))
    }

    /// Removes one injection.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::KeyValue`] when NATS rejects the deletion.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.store
            .delete(id)
            .await
            .map_err(|error| kv_error("delete", id, error))
    }

    /// Lists every stored injection; entries that do not decode are skipped with a warning.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::KeyValue`] when NATS fails.
    pub async fn list(&self) -> Result<Vec<InjectionRecord>> {
        list_values(&self.store, "injection").await
    }
}
