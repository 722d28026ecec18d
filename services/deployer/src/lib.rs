//! The deployer service: runs the workloads' instances on a runtime, executes recovery
//! commands, verifies them and publishes their outcomes, and serves the fault-injection API.

pub mod backend;
pub mod chaos;
pub mod checksum_file;
pub mod command_consumer;
pub mod convert;
pub mod domain;
pub mod executable;
pub mod file_corruption;
pub mod grpc;
pub mod injections;
pub mod kubernetes;
pub mod logs;
pub mod metrics;
pub mod probe;
pub mod registry_writer;
pub mod runtime;
pub mod supervisor;
pub mod workload_hooks;
