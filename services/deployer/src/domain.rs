//! Domain logic of the deployer, free of NATS, gRPC and the runtime: the workload file, the
//! fleet's slots and ids, command planning, fault-injection bookkeeping and file corruption.

pub mod byte_size;
pub mod chaos;
pub mod corruption;
pub mod fleet;
pub mod ids;
pub mod plan;
pub mod template;
pub mod workload;
pub mod workload_file;
