use std::net::SocketAddr;
use std::time::Duration;

/// Flags that every service takes, each with an environment-variable twin.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// NATS server URL.
    #[arg(long, env = "ARO_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "ARO_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// OTLP/gRPC endpoint that traces are exported to, for example `http://127.0.0.1:4317`.
    /// Traces are not exported when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format: `text` or `json`. The level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "ARO_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Name of this replica, used in consumer names and logs. Defaults to `<service>-<pid>`.
    #[arg(long, env = "ARO_REPLICA")]
    pub replica: Option<String>,

    /// Time that in-flight work has to finish after a shutdown signal.
    #[arg(long, env = "ARO_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime_duration)]
    pub shutdown_grace: Duration,
}

impl CommonArgs {
    /// Returns the replica name, or `<service>-<pid>` when none was given.
    pub fn replica_name(&self, service: &str) -> String {
        self.replica
            .clone()
            .unwrap_or_else(|| format!("{service}-{}", std::process::id()))
    }
}

/// Parses a duration such as `250ms`, `10s` or `1m`.
///
/// # Errors
///
/// Returns a message naming the value when it is not a duration with a unit.
pub fn humantime_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!("invalid duration {value:?}: expected a number and a unit, like 250ms")
    })?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {value:?}: unit must be ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|error| format!("invalid duration {value:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(humantime_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(humantime_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(humantime_duration("2m"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn durations_without_unit_are_rejected() {
        let error = humantime_duration("250").expect_err("a bare number has no unit");
        assert!(error.contains("\"250\""), "{error}");
    }
}
