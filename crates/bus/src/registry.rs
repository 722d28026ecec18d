use aro_proto::v1::Instance;
use async_nats::jetstream::kv;
use futures::{Stream, StreamExt};
use prost::Message;
use tracing::warn;

use crate::{Bus, Error, Result, subjects};

/// The instances bucket: one entry per instance, written by the deployer and watched by the
/// detector and the brain.
#[derive(Clone, Debug)]
pub struct Registry {
    store: kv::Store,
}

/// One change to the registry.
// A change is moved once from the watch to its handler, so boxing the larger variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum RegistryChange {
    Put(Instance),
    Delete { workload: String, instance: String },
}

pub(crate) fn kv_error(operation: &'static str, key: &str, error: impl ToString) -> Error {
    Error::KeyValue {
        operation,
        key: key.to_owned(),
        message: error.to_string(),
    }
}

impl Registry {
    /// Opens the instances bucket, which [`Bus::connect_and_prepare`] created.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when the bucket does not exist.
    pub async fn open(bus: &Bus) -> Result<Self> {
        let store = bus
            .jetstream()
            .get_key_value(subjects::INSTANCES_BUCKET)
            .await
            .map_err(|error| kv_error("open", subjects::INSTANCES_BUCKET, error))?;
        Ok(Self { store })
    }

    /// Stores `instance` under `<workload>.<instance>` and returns the entry's revision.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS rejects the write.
    pub async fn put(&self, instance: &Instance) -> Result<u64> {
        let reference = instance
            .r#ref
            .as_ref()
            .expect("registry entries always carry a reference");
        let key = subjects::instance_key(&reference.workload, &reference.instance);
        self.store
            .put(&key, instance.encode_to_vec().into())
            .await
            .map_err(|error| kv_error("put", &key, error))
    }

    /// Reads one instance.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS fails, or [`Error::Decode`] for a corrupt entry.
    pub async fn get(&self, workload: &str, instance: &str) -> Result<Option<Instance>> {
        let key = subjects::instance_key(workload, instance);
        let Some(value) = self
            .store
            .get(&key)
            .await
            .map_err(|error| kv_error("get", &key, error))?
        else {
            return Ok(None);
        };
        Instance::decode(value)
            .map(Some)
            .map_err(|source| Error::Decode {
                what: "instance",
                source,
            })
    }

    /// Removes one instance.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS rejects the deletion.
    pub async fn delete(&self, workload: &str, instance: &str) -> Result<()> {
        let key = subjects::instance_key(workload, instance);
        self.store
            .delete(&key)
            .await
            .map_err(|error| kv_error("delete", &key, error))
    }

    /// Lists every instance in the bucket.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when NATS fails.
    pub async fn list(&self) -> Result<Vec<Instance>> {
        list_values(&self.store, "registry").await
    }

    /// Streams the current value of every instance, then every later change.
    ///
    /// # Errors
    ///
    /// Returns [`Error::KeyValue`] when the watch cannot start.
    pub async fn watch(&self) -> Result<impl Stream<Item = RegistryChange> + Send + use<>> {
        let watch = self
            .store
            .watch_with_history(">")
            .await
            .map_err(|error| kv_error("watch", ">", error))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    warn!(%error, "registry watch error");
                    return None;
                }
            };
            match entry.operation {
                kv::Operation::Put => match Instance::decode(entry.value) {
                    Ok(instance) => Some(RegistryChange::Put(instance)),
                    Err(error) => {
                        warn!(key = %entry.key, %error, "corrupt registry entry skipped");
                        None
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    let (workload, instance) = entry.key.split_once('.')?;
                    Some(RegistryChange::Delete {
                        workload: workload.to_owned(),
                        instance: instance.to_owned(),
                    })
                }
            }
        }))
    }
}

/// Reads and decodes every value of `store`, skipping (with a warning naming `what`) values
/// that do not decode.
pub(crate) async fn list_values<M: Message + Default>(
    store: &kv::Store,
    what: &'static str,
) -> Result<Vec<M>> {
    let mut keys = store
        .keys()
        .await
        .map_err(|error| kv_error("keys", ">", error))?;
    let mut values = Vec::new();
    // The key listing goes on delivering keys written while it runs, so a key can come twice.
    let mut seen = std::collections::HashSet::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|error| kv_error("keys", ">", error))?;
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(value) = store
            .get(&key)
            .await
            .map_err(|error| kv_error("get", &key, error))?
        else {
            continue;
        };
        match M::decode(value) {
            Ok(value) => values.push(value),
            Err(error) => warn!(%key, %error, what, "corrupt key-value entry skipped"),
        }
    }
    Ok(values)
}
