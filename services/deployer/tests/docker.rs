//! Tests of the Docker runtime against the local Docker engine: real containers of the sample
//! workload's image on a network of their own, a real `nats-server` and the real
//! `aro-deployer` binary. Every container and network a test creates carries the label
//! `io.aro.managed=true` and is removed when the test ends, passed or failed.
//!
//! The image is `$ARO_TEST_IMAGE`, by default `aro-sample-workload:dev` from `make images`.

mod docker {
    pub(crate) mod deployer;
    pub(crate) mod fixture;
    pub(crate) mod runtime;
}
#[allow(
    dead_code,
    reason = "the support modules serve several test targets, each using part of them"
)]
mod support;
