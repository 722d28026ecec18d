//! Online log-template mining and log anomaly scoring.
