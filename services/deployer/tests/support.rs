//! Test support: a real `nats-server` and the real deployer binary, each started per test.
#![allow(
    unreachable_pub,
    reason = "public so that the module can move into a shared test-support crate unchanged"
)]

pub mod deployer;
pub mod nats_server;
pub mod poll;
