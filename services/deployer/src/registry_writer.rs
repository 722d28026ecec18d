//! Registry writes in the order they were decided. Writers queue a write while they hold the
//! lock under which they changed the fleet, and one task applies the writes one after the
//! other, so a later state of an instance is never overwritten by an earlier one. The numbers
//! of fresh instance ids go through the same queue, ahead of the entries that use them.

use std::time::Duration;

use aro_bus::{InstanceNumbers, Registry};
use aro_proto::v1::Instance;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, error, info_span, warn};

/// How long one write is retried while NATS is unreachable.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// The buckets the deployer writes instances to.
#[derive(Clone, Debug)]
pub struct Stores {
    pub registry: Registry,
    pub instance_numbers: InstanceNumbers,
}

#[derive(Debug)]
enum Operation {
    Put(Box<Instance>),
    Delete { workload: String, instance: String },
    NextNumber { workload: String, next: u64 },
}

#[derive(Debug)]
struct Write {
    operation: Operation,
    done: oneshot::Sender<bool>,
}

/// Handle that queues registry writes.
#[derive(Clone, Debug)]
pub struct RegistryWriter {
    queue: mpsc::UnboundedSender<Write>,
}

impl RegistryWriter {
    /// Starts the task that applies writes to `stores`. The task ends when every handle is
    /// dropped.
    pub fn spawn(stores: Stores) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(apply(stores, receiver).instrument(info_span!("deployer.registry_writer")));
        Self { queue }
    }

    /// Queues storing `instance`. The write takes its place in the order when this is
    /// called; await [`PendingWrite::stored`] to know that it landed.
    pub fn put(&self, instance: Instance) -> PendingWrite {
        self.queue_write(Operation::Put(Box::new(instance)))
    }

    /// Queues removing an instance, like [`RegistryWriter::put`].
    pub fn delete(&self, workload: &str, instance: &str) -> PendingWrite {
        self.queue_write(Operation::Delete {
            workload: workload.to_owned(),
            instance: instance.to_owned(),
        })
    }

    /// Queues storing `next` as the number of the next fresh instance of `workload`.
    pub fn next_number(&self, workload: &str, next: u64) -> PendingWrite {
        self.queue_write(Operation::NextNumber {
            workload: workload.to_owned(),
            next,
        })
    }

    fn queue_write(&self, operation: Operation) -> PendingWrite {
        let (done, stored) = oneshot::channel();
        let queued = self.queue.send(Write { operation, done }).is_ok();
        PendingWrite { queued, stored }
    }
}

/// A queued registry write.
#[derive(Debug)]
#[must_use = "a write may still be queued; await `stored` when the order of effects matters"]
pub struct PendingWrite {
    queued: bool,
    stored: oneshot::Receiver<bool>,
}

impl PendingWrite {
    /// Waits until the write is applied. Returns `false` when it failed (already logged).
    pub async fn stored(self) -> bool {
        self.queued && self.stored.await.unwrap_or(false)
    }
}

async fn apply(stores: Stores, mut receiver: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
        let mut delay = Duration::from_millis(50);
        let stored = loop {
            let result = match &write.operation {
                Operation::Put(instance) => stores.registry.put(instance).await.map(drop),
                Operation::Delete { workload, instance } => {
                    stores.registry.delete(workload, instance).await
                }
                Operation::NextNumber { workload, next } => {
                    stores.instance_numbers.store(workload, *next).await
                }
            };
            match result {
                Ok(()) => break true,
                Err(error) if tokio::time::Instant::now() + delay < deadline => {
                    warn!(%error, retry_in = ?delay, "registry write failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(error) => {
                    error!(%error, "registry write failed, giving up");
                    break false;
                }
            }
        };
        let _ = write.done.send(stored);
    }
}
