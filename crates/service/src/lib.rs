//! Code shared by every service: common flags, telemetry, Prometheus metrics, gRPC serving with
//! health and reflection, and graceful shutdown.

mod args;
mod metrics;
mod serve;
mod shutdown;
mod telemetry;

pub use args::{CommonArgs, humantime_duration};
pub use metrics::{MetricsServer, serve_metrics};
pub use serve::{GrpcServer, HealthReporter};
pub use shutdown::shutdown_on_signal;
pub use telemetry::{Telemetry, TelemetryError};
