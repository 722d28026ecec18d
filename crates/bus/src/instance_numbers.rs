use async_nats::jetstream::kv;

use crate::registry::kv_error;
use crate::{Bus, Error, Result, subjects};

/// The instance-numbers bucket: per workload, the number its next fresh instance id takes.
/// The deployer keeps it beside the registry because registry entries go when their
/// instances go, and an instance id used again would repeat the ids of the signals and
/// faults stored for its first holder.
#[derive(Clone, Debug)]
pub struct InstanceNumbers {
    store: kv::Store,
}

impl InstanceNumbers {
    /// Opens the bucket, which [`Bus::connect_and_prepare`] created.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when the bucket does not exist.
    pub async fn open(bus: &Bus) -> Result<Self> {
        let store = bus
            .jetstream()
            .get_key_value(subjects::INSTANCE_NUMBERS_BUCKET)
            .await
            .map_err(|error| kv_error("open", subjects::INSTANCE_NUMBERS_BUCKET, error))?;
        Ok(Self { store })
    }

    /// Reads the number the next fresh instance of `workload` takes, if one was stored.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS fails, or [`Error::InvalidValue`] for an entry
    /// that is not a decimal number.
    pub async fn next(&self, workload: &str) -> Result<Option<u64>> {
        let Some(value) = self
            .store
            .get(workload)
            .await
            .map_err(|error| kv_error("get", workload, error))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        text.trim()
            .parse()
            .map(Some)
            .map_err(|error| Error::InvalidValue {
                key: workload.to_owned(),
                message: format!("instance number {text:?}: {error}"),
            })
    }

    /// Stores `next` as the number the next fresh instance of `workload` takes.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS rejects the write.
    pub async fn store(&self, workload: &str, next: u64) -> Result<()> {
        self.store
            .put(workload, next.to_string().into_bytes().into())
            .await
            .map(drop)
            .map_err(|error| kv_error("put", workload, error))
    }
}
