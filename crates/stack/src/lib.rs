//! Starts and stops a local AI-Resilience-Orchestrator on loopback: a `nats-server` with
//! JetStream on a free port, then the detector, the brain and the deployer as processes. The
//! `aro demo` and `aro bench` commands and the end-to-end tests all run on it.

pub mod audit;
mod docker;
mod engine;
mod error;
mod locate;
mod nats;
mod process;
mod stack;
pub mod timeline;

pub use docker::{docker, docker_fleet_containers, remove_docker_fleet};
pub use engine::Engine;
pub use error::{Error, Result};
pub use locate::{find_nats_server, find_onnxruntime, repository_root};
pub use nats::NatsServer;
pub use process::{free_port, wait_for_health};
pub use stack::{Service, Stack, StackConfig};
