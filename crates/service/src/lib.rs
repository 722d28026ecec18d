//! What every service shares: common flags, telemetry, metrics, gRPC serving and shutdown.
