use std::time::Duration;

use aro_proto::v1::{HealthCheck, health_check};

/// What a probe contacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    /// Connect to this TCP port on 127.0.0.1.
    Tcp { port: u16 },
    /// `GET` this `http://` URL; a 2xx status passes.
    Http { uri: http::Uri },
    /// Call `grpc.health.v1.Health/Check` at this `http://host:port` URI.
    Grpc { uri: http::Uri },
    /// Run this command; exit status 0 passes.
    Exec { argv: Vec<String> },
}

/// A validated health check: what to probe, how often and how long to wait for an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub target: ProbeTarget,
    pub interval: Duration,
    pub timeout: Duration,
}

impl ProbeSpec {
    /// Validates a registry health check. Returns `Ok(None)` when the entry sets no check.
    /// A zero or missing interval or timeout takes the default.
    ///
    /// # Errors
    ///
    /// Returns a message naming the field and value when the check cannot be probed.
    pub fn from_check(
        check: &HealthCheck,
        default_interval: Duration,
        default_timeout: Duration,
    ) -> Result<Option<Self>, String> {
        let Some(kind) = check.check.as_ref() else {
            return Ok(None);
        };
        let target = match kind {
            health_check::Check::TcpPort(port) => match u16::try_from(*port) {
                Ok(port) if port != 0 => ProbeTarget::Tcp { port },
                _ => return Err(format!("invalid tcp_port {port}: must be 1 to 65535")),
            },
            health_check::Check::HttpUrl(url) => ProbeTarget::Http {
                uri: parse_http_uri(url)
                    .map_err(|error| format!("invalid http_url {url:?}: {error}"))?,
            },
            health_check::Check::GrpcAddress(address) => ProbeTarget::Grpc {
                uri: parse_http_uri(&format!("http://{address}"))
                    .map_err(|error| format!("invalid grpc_address {address:?}: {error}"))?,
            },
            health_check::Check::Exec(exec) => {
                if exec.argv.first().is_none_or(String::is_empty) {
                    return Err("invalid exec check: argv is empty".to_owned());
                }
                ProbeTarget::Exec {
                    argv: exec.argv.clone(),
                }
            }
        };
        let positive = |duration: Option<&prost_types::Duration>, default: Duration| {
            let duration = aro_proto::time::std_duration(duration, default);
            if duration.is_zero() {
                default
            } else {
                duration
            }
        };
        Ok(Some(Self {
            target,
            interval: positive(check.interval.as_ref(), default_interval),
            timeout: positive(check.timeout.as_ref(), default_timeout),
        }))
    }

    /// Name of the probe kind, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self.target {
            ProbeTarget::Tcp { .. } => "tcp",
            ProbeTarget::Http { .. } => "http",
            ProbeTarget::Grpc { .. } => "grpc",
            ProbeTarget::Exec { .. } => "exec",
        }
    }
}

/// Parses an `http://host[:port]/path` URI. Other schemes are not probed.
fn parse_http_uri(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| error.to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err("the scheme must be http".to_owned());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the host is missing".to_owned());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use aro_proto::v1::ExecCheck;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(1);
    const TIMEOUT: Duration = Duration::from_millis(500);

    fn check(kind: health_check::Check) -> HealthCheck {
        HealthCheck {
            check: Some(kind),
            interval: Some(aro_proto::time::duration(Duration::from_millis(200))),
            timeout: None,
        }
    }

    #[test]
    fn http_check_parses_with_defaults() {
        let spec = ProbeSpec::from_check(
            &check(health_check::Check::HttpUrl(
                "http://127.0.0.1:8080/healthz".to_owned(),
            )),
            INTERVAL,
            TIMEOUT,
        )
        .expect("valid check")
        .expect("a check is set");
        assert_eq!(spec.kind(), "http");
        assert_eq!(spec.interval, Duration::from_millis(200));
        assert_eq!(spec.timeout, TIMEOUT);
    }

    #[test]
    fn https_url_is_rejected() {
        let error = ProbeSpec::from_check(
            &check(health_check::Check::HttpUrl(
                "https://127.0.0.1/".to_owned(),
            )),
            INTERVAL,
            TIMEOUT,
        )
        .expect_err("https is not probed");
        assert!(error.contains("http_url"), "{error}");
        assert!(error.contains("https://127.0.0.1/"), "{error}");
    }

    #[test]
    fn port_zero_is_rejected() {
        let error =
            ProbeSpec::from_check(&check(health_check::Check::TcpPort(0)), INTERVAL, TIMEOUT)
                .expect_err("port 0 cannot be probed");
        assert!(error.contains("tcp_port 0"), "{error}");
    }

    #[test]
    fn empty_exec_is_rejected() {
        let result = ProbeSpec::from_check(
            &check(health_check::Check::Exec(ExecCheck { argv: Vec::new() })),
            INTERVAL,
            TIMEOUT,
        );
        assert!(result.is_err());
    }

    #[test]
    fn missing_check_is_none() {
        let result = ProbeSpec::from_check(&HealthCheck::default(), INTERVAL, TIMEOUT);
        assert_eq!(result, Ok(None));
    }
}
