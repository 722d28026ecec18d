//! Validated description of a workload, as read from the workload file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::template::{Placeholders, Template};

/// Environment variables that the deployer sets for every instance; a workload may not set
/// them itself. `ARO_HOST` is the address the instance should listen on, which the runtime
/// sets: `127.0.0.1` for a local process, `0.0.0.0` in a container.
pub const RESERVED_ENV: [&str; 6] = [
    "ARO_WORKLOAD",
    "ARO_INSTANCE",
    "ARO_PORT",
    "ARO_HOST",
    "ARO_DETECTOR_ADDR",
    "ARO_HEARTBEAT_INTERVAL_MS",
];

/// Program of a workload: a command or an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramSpec {
    /// Program name (looked up on `PATH`) or path, as written in the file; the process
    /// runtime runs it.
    Command(String),
    /// Container image reference, such as `aro-sample-workload:dev`; the Docker runtime runs
    /// it.
    Image(String),
}

impl ProgramSpec {
    /// Name of the workload-file field that declares it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Command(_) => "command",
            Self::Image(_) => "image",
        }
    }

    /// Returns the command or image as written in the workload file.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Command(value) | Self::Image(value) => value,
        }
    }
}

/// A workload: the program to run, how many copies, and how to tell that a copy serves.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub name: String,
    /// The command or the image the instances run.
    pub program: ProgramSpec,
    /// Labels that select the workload (chaos targets, for one), with Kubernetes-style keys
    /// and values, in key order.
    pub labels: BTreeMap<String, String>,
    pub args: Vec<Template>,
    /// Environment variables in name order.
    pub env: Vec<(String, Template)>,
    pub replicas: u32,
    /// Time a fresh or restarted instance has to pass its first health check.
    pub start_timeout: Duration,
    /// Files whose sha256 must stay the same as when the deployer started.
    pub checksum_files: Vec<PathBuf>,
    /// Resident memory an instance may use, in bytes.
    pub memory_limit: Option<u64>,
    /// sha256 the executable must have, as `sha256:<hex>` in lowercase.
    pub artifact_digest: Option<String>,
    pub health: HealthSpec,
    /// Set when the program pushes heartbeats to the detector itself, at this interval.
    pub heartbeat_interval: Option<Duration>,
}

/// Health check of a workload, before per-instance substitution.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSpec {
    pub check: CheckSpec,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Kind of health check, with its target as a template.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckSpec {
    /// Connect to a loopback port: the instance's own (`{port}`) or a fixed one.
    Tcp(TcpPort),
    /// GET the URL; any 2xx status passes.
    Http(Template),
    /// `grpc.health.v1.Health/Check` on `host:port`.
    Grpc(Template),
    /// Run the command; exit status 0 passes.
    Exec(Vec<Template>),
}

/// Port of a TCP check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPort {
    /// The port the deployer allocated for the instance.
    Allocated,
    Fixed(u16),
}

/// Health check of one instance, with every placeholder filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthProbe {
    pub check: ProbeTarget,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Target that a probe connects to or runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    Tcp { port: u16 },
    Http { url: String },
    Grpc { address: String },
    Exec { argv: Vec<String> },
}

impl HealthSpec {
    /// Fills in the placeholders for one instance.
    pub fn render(&self, values: &Placeholders<'_>) -> HealthProbe {
        let check = match &self.check {
            CheckSpec::Tcp(TcpPort::Allocated) => ProbeTarget::Tcp { port: values.port },
            CheckSpec::Tcp(TcpPort::Fixed(port)) => ProbeTarget::Tcp { port: *port },
            CheckSpec::Http(url) => ProbeTarget::Http {
                url: url.render(values),
            },
            CheckSpec::Grpc(address) => ProbeTarget::Grpc {
                address: address.render(values),
            },
            CheckSpec::Exec(argv) => ProbeTarget::Exec {
                argv: argv.iter().map(|arg| arg.render(values)).collect(),
            },
        };
        HealthProbe {
            check,
            interval: self.interval,
            timeout: self.timeout,
        }
    }
}

impl WorkloadSpec {
    /// Arguments of one instance.
    pub fn render_args(&self, values: &Placeholders<'_>) -> Vec<String> {
        self.args.iter().map(|arg| arg.render(values)).collect()
    }

    /// Environment of one instance: the workload's variables, then the deployer's own.
    pub fn render_env(&self, values: &Placeholders<'_>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(name, value)| (name.clone(), value.render(values)))
            .collect();
        env.push(("ARO_WORKLOAD".to_owned(), values.workload.to_owned()));
        env.push(("ARO_INSTANCE".to_owned(), values.instance.to_owned()));
        env.push(("ARO_PORT".to_owned(), values.port.to_string()));
        env.push(("ARO_DETECTOR_ADDR".to_owned(), values.detector.to_owned()));
        if let Some(interval) = self.heartbeat_interval {
            env.push((
                "ARO_HEARTBEAT_INTERVAL_MS".to_owned(),
                interval.as_millis().to_string(),
            ));
        }
        env
    }
}

/// Maximum length of the name part of a label key, and of a label value.
pub const MAX_LABEL_NAME_LEN: usize = 63;

/// Longest prefix of a label key (a DNS subdomain).
pub const MAX_LABEL_PREFIX_LEN: usize = 253;

/// Checks a label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters that starts and ends with a letter or digit and has only letters, digits, `-`,
/// `_` and `.` in between.
///
/// # Errors
///
/// Returns what is wrong with the key.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        validate_label_prefix(prefix).map_err(|problem| format!("prefix {prefix:?} {problem}"))?;
    }
    if name.is_empty() {
        return Err("has an empty name".to_owned());
    }
    validate_label_word(name).map_err(|problem| format!("name {name:?} {problem}"))
}

/// Checks a label value: empty, or at most 63 characters that start and end with a letter or
/// digit and have only letters, digits, `-`, `_` and `.` in between.
///
/// # Errors
///
/// Returns what is wrong with the value.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    validate_label_word(value)
}

fn validate_label_word(word: &str) -> Result<(), String> {
    if word.len() > MAX_LABEL_NAME_LEN {
        return Err(format!(
            "is {} characters long: at most {MAX_LABEL_NAME_LEN}",
            word.len()
        ));
    }
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    if !word.starts_with(alphanumeric) || !word.ends_with(alphanumeric) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    if let Some(bad) = word
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {bad:?}: only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    Ok(())
}

fn validate_label_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("is empty".to_owned());
    }
    if prefix.len() > MAX_LABEL_PREFIX_LEN {
        return Err(format!(
            "is {} characters long: at most {MAX_LABEL_PREFIX_LEN}",
            prefix.len()
        ));
    }
    for part in prefix.split('.') {
        let valid = !part.is_empty()
            && part.len() <= MAX_LABEL_NAME_LEN
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !part.starts_with('-')
            && !part.ends_with('-');
        if !valid {
            return Err(
                "is not a DNS subdomain: dot-separated parts of lowercase letters, digits and '-'"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> Template {
        Template::parse(source).expect("the template is valid")
    }

    fn spec(check: CheckSpec) -> WorkloadSpec {
        WorkloadSpec {
            name: "web".to_owned(),
            program: ProgramSpec::Command("python3".to_owned()),
            labels: BTreeMap::new(),
            args: vec![template("-m"), template("http.server"), template("{port}")],
            env: vec![("MODE".to_owned(), template("{workload}-{instance}"))],
            replicas: 2,
            start_timeout: Duration::from_secs(10),
            checksum_files: Vec::new(),
            memory_limit: None,
            artifact_digest: None,
            health: HealthSpec {
                check,
                interval: Duration::from_millis(250),
                timeout: Duration::from_millis(200),
            },
            heartbeat_interval: Some(Duration::from_millis(250)),
        }
    }

    const VALUES: Placeholders<'static> = Placeholders {
        port: 4100,
        instance: "web-1",
        workload: "web",
        detector: "127.0.0.1:7401",
        host: "127.0.0.1",
    };

    #[test]
    fn arguments_get_the_instance_port() {
        let spec = spec(CheckSpec::Tcp(TcpPort::Allocated));
        assert_eq!(spec.render_args(&VALUES), ["-m", "http.server", "4100"]);
    }

    #[test]
    fn environment_carries_workload_and_deployer_variables() {
        let env = spec(CheckSpec::Tcp(TcpPort::Allocated)).render_env(&VALUES);
        let get = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("MODE"), Some("web-web-1"));
        assert_eq!(get("ARO_WORKLOAD"), Some("web"));
        assert_eq!(get("ARO_INSTANCE"), Some("web-1"));
        assert_eq!(get("ARO_PORT"), Some("4100"));
        assert_eq!(get("ARO_DETECTOR_ADDR"), Some("127.0.0.1:7401"));
        assert_eq!(get("ARO_HEARTBEAT_INTERVAL_MS"), Some("250"));
    }

    #[test]
    fn tcp_check_uses_allocated_or_fixed_port() {
        let allocated = spec(CheckSpec::Tcp(TcpPort::Allocated))
            .health
            .render(&VALUES);
        let fixed = spec(CheckSpec::Tcp(TcpPort::Fixed(9000)))
            .health
            .render(&VALUES);
        assert_eq!(allocated.check, ProbeTarget::Tcp { port: 4100 });
        assert_eq!(fixed.check, ProbeTarget::Tcp { port: 9000 });
    }

    #[test]
    fn http_and_exec_checks_are_rendered() {
        let http = spec(CheckSpec::Http(template("http://127.0.0.1:{port}/healthz")))
            .health
            .render(&VALUES);
        let exec = spec(CheckSpec::Exec(vec![
            template("probe"),
            template("{instance}"),
        ]))
        .health
        .render(&VALUES);
        assert_eq!(
            http.check,
            ProbeTarget::Http {
                url: "http://127.0.0.1:4100/healthz".to_owned()
            }
        );
        assert_eq!(
            exec.check,
            ProbeTarget::Exec {
                argv: vec!["probe".to_owned(), "web-1".to_owned()]
            }
        );
    }

    #[test]
    fn label_keys_follow_kubernetes_rules() {
        for key in [
            "tier",
            "app.kubernetes.io/name",
            "a",
            "x_y-z.1",
            "example.com/Tier",
        ] {
            assert_eq!(validate_label_key(key), Ok(()), "{key}");
        }
        for key in [
            "",
            "-tier",
            "tier-",
            "ti er",
            "/tier",
            "Example.com/tier",
            "a/",
            "a/b/c",
        ] {
            assert!(validate_label_key(key).is_err(), "{key} should be rejected");
        }
        assert!(validate_label_key(&"a".repeat(64)).is_err());
        assert_eq!(validate_label_key(&"a".repeat(63)), Ok(()));
    }

    #[test]
    fn label_values_may_be_empty() {
        for value in ["", "web", "v1.2_3-x"] {
            assert_eq!(validate_label_value(value), Ok(()), "{value}");
        }
        for value in ["-web", "web.", "a b", "a/b"] {
            assert!(
                validate_label_value(value).is_err(),
                "{value} should be rejected"
            );
        }
    }
}
