//! The brain service: consumes fault events, decides a recovery with the ONNX policy behind
//! safety guards, publishes commands and follows their outcomes.

mod convert;
mod domain;
mod grpc;
mod handler;
mod incidents;
mod metrics;
pub mod onnx;
pub mod runtime;
