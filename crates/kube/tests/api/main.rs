//! Tests of the Kubernetes runtime against a scripted mock API server.

mod actions;
mod chaos;
mod commands;
mod fixtures;
mod lease;
mod logs;
mod scenario;
mod watch;
