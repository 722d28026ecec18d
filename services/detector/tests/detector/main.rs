//! Component tests of the detector: a real `nats-server`, the real detector binary, real
//! workload processes, and the test acting as the deployer.

mod harness;
mod nats_server;

mod checksums;
mod exits;
mod hangs;
mod heartbeats;
mod logs;
mod memory;
mod probes;
