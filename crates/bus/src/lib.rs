//! NATS JetStream wiring shared by the services: the streams and buckets, publishing events
//! with deduplication ids and trace context, and durable consumers.

mod consume;
mod error;
mod injections;
mod instance_numbers;
mod publish;
mod registry;
pub mod subjects;
mod topology;
mod trace;

pub use consume::{Delivery, Disposition, consume};
pub use error::{Error, Result};
pub use injections::InjectionStore;
pub use instance_numbers::InstanceNumbers;
pub use publish::Bus;
pub use registry::{Registry, RegistryChange};
pub use topology::ConsumerSpec;
pub use trace::{extract_context, inject_context};

pub use async_nats;
