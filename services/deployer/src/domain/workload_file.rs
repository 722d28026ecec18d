//! Parsing and validation of the workload file (TOML).
//!
//! ```toml
//! [[workload]]
//! name = "web"
//! command = "python3"
//! args = ["-m", "http.server", "{port}", "--bind", "127.0.0.1"]
//! replicas = 2
//! start_timeout = "10s"
//!
//! [workload.health]
//! http = "http://127.0.0.1:{port}/"
//! interval = "250ms"
//! timeout = "200ms"
//! ```
//!
//! A workload runs either a `command` (the process runtime) or an `image`, such as
//! `image = "aro-sample-workload:dev"` (the Docker runtime). Health checks may use `{host}`,
//! the instance's address.
//!
//! Optional fields of a workload: `args`, `env`, `labels` (`{ tier = "web" }`, with
//! Kubernetes-style keys and values), `replicas`, `start_timeout`,
//! `checksum_files`, `memory_limit` (`"256MiB"`), `artifact_digest` (`"sha256:<hex>"`) and a
//! `[workload.heartbeat]` table with its `interval`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::byte_size;
use super::template::{Placeholders, Template};
use super::workload::{
    CheckSpec, HealthSpec, ProgramSpec, RESERVED_ENV, TcpPort, WorkloadSpec, validate_label_key,
    validate_label_value,
};

/// Maximum replicas of one workload.
pub const MAX_REPLICAS: i64 = 64;

/// Maximum length of a workload name, so that instance ids `<name>-<n>` stay within the 63
/// characters of a subject token for any `n` up to ten digits.
pub const MAX_NAME_LEN: usize = 52;

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(250);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Smallest memory limit accepted: no process runs in less.
pub const MIN_MEMORY_LIMIT: u64 = 1 << 20;

/// Prefix of an artifact digest; sha256 is the one algorithm the deployer computes.
const DIGEST_PREFIX: &str = "sha256:";

/// Error in a workload file. Every message names the file; errors about one workload name
/// it (or its position when it has no name) and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid workload file {file}: {message}")]
    File { file: String, message: String },
    #[error("invalid workload file {file}: workload {workload}: {message}")]
    Workload {
        file: String,
        workload: String,
        message: String,
    },
    #[error("invalid workload file {file}: workload {workload}: field {field}: {message}")]
    Field {
        file: String,
        workload: String,
        field: String,
        message: String,
    },
}

/// Result of parsing a workload file.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    workload: Vec<toml::Table>,
}

/// Defines a function for `deserialize_with` that reads a `$type` and names the field in
/// the error, which serde leaves out of type errors ("invalid type: string, expected i64").
macro_rules! named_field {
    ($function:ident, $field:literal, $type:ty) => {
        fn $function<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
            <$type as Deserialize>::deserialize(deserializer).map_err(|error| {
                serde::de::Error::custom(format_args!("field {}: {error}", $field))
            })
        }
    };
}

named_field!(name_field, "name", String);
named_field!(command_field, "command", Option<String>);
named_field!(image_field, "image", Option<String>);
named_field!(args_field, "args", Vec<String>);
named_field!(env_field, "env", BTreeMap<String, String>);
named_field!(labels_field, "labels", BTreeMap<String, String>);
named_field!(replicas_field, "replicas", i64);
named_field!(start_timeout_field, "start_timeout", Option<String>);
named_field!(checksum_files_field, "checksum_files", Vec<String>);
named_field!(memory_limit_field, "memory_limit", Option<String>);
named_field!(artifact_digest_field, "artifact_digest", Option<String>);
named_field!(tcp_field, "health.tcp", Option<String>);
named_field!(http_field, "health.http", Option<String>);
named_field!(grpc_field, "health.grpc", Option<String>);
named_field!(exec_field, "health.exec", Option<Vec<String>>);
named_field!(interval_field, "health.interval", Option<String>);
named_field!(timeout_field, "health.timeout", Option<String>);
named_field!(heartbeat_interval_field, "heartbeat.interval", String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    #[serde(deserialize_with = "name_field")]
    name: String,
    #[serde(default, deserialize_with = "command_field")]
    command: Option<String>,
    #[serde(default, deserialize_with = "image_field")]
    image: Option<String>,
    #[serde(default, deserialize_with = "args_field")]
    args: Vec<String>,
    #[serde(default, deserialize_with = "env_field")]
    env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "labels_field")]
    labels: BTreeMap<String, String>,
    #[serde(default = "one", deserialize_with = "replicas_field")]
    replicas: i64,
    #[serde(default, deserialize_with = "start_timeout_field")]
    start_timeout: Option<String>,
    #[serde(default, deserialize_with = "checksum_files_field")]
    checksum_files: Vec<String>,
    #[serde(default, deserialize_with = "memory_limit_field")]
    memory_limit: Option<String>,
    #[serde(default, deserialize_with = "artifact_digest_field")]
    artifact_digest: Option<String>,
    health: RawHealth,
    heartbeat: Option<RawHeartbeat>,
}

fn one() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default, deserialize_with = "tcp_field")]
    tcp: Option<String>,
    #[serde(default, deserialize_with = "http_field")]
    http: Option<String>,
    #[serde(default, deserialize_with = "grpc_field")]
    grpc: Option<String>,
    #[serde(default, deserialize_with = "exec_field")]
    exec: Option<Vec<String>>,
    #[serde(default, deserialize_with = "interval_field")]
    interval: Option<String>,
    #[serde(default, deserialize_with = "timeout_field")]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    #[serde(deserialize_with = "heartbeat_interval_field")]
    interval: String,
}

/// Sample values used to check that a health check renders into a usable target.
const SAMPLE: Placeholders<'static> = Placeholders {
    port: 1,
    instance: "sample-1",
    workload: "sample",
    detector: "127.0.0.1:1",
    host: "127.0.0.1",
};

/// Runtime on which a deployer runs its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Local child processes: workloads declare a `command`.
    Process,
    /// Containers of the local Docker engine: workloads declare an `image`.
    Docker,
}

impl RuntimeKind {
    /// Name as `--runtime` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
        }
    }
}

/// Lowest memory limit the Docker engine accepts.
pub const MIN_CONTAINER_MEMORY_LIMIT: u64 = 6 << 20;

/// Checks that every workload suits `runtime`. The process runtime runs commands. The Docker
/// runtime runs images, names checksum files by absolute paths inside the container, and needs
/// a health check that reaches the container and a memory limit that the engine accepts.
///
/// # Errors
///
/// Returns the first workload that does not suit, naming the file, the workload, the field
/// and the value.
pub fn check_runtime(file: &str, specs: &[WorkloadSpec], runtime: RuntimeKind) -> Result<()> {
    for spec in specs {
        let context = Context {
            file,
            label: format!("{:?}", spec.name),
        };
        match (runtime, &spec.program) {
            (RuntimeKind::Process, ProgramSpec::Command(_))
            | (RuntimeKind::Docker, ProgramSpec::Image(_)) => {}
            (RuntimeKind::Process, ProgramSpec::Image(image)) => {
                return Err(context.field(
                    "image",
                    format!(
                        "{image:?} is a container image, which the process runtime cannot run: \
                         start the deployer with --runtime docker, or set command"
                    ),
                ));
            }
            (RuntimeKind::Docker, ProgramSpec::Command(command)) => {
                return Err(context.field(
                    "command",
                    format!(
                        "{command:?} is a program of this host, which the docker runtime cannot \
                         run: set image, or start the deployer with --runtime process"
                    ),
                ));
            }
        }
        if runtime == RuntimeKind::Docker {
            context.check_container(spec)?;
        }
    }
    Ok(())
}

/// Parses and validates the text of a workload file; `file` names it in errors.
///
/// # Errors
///
/// Returns the first problem found, naming the file, the workload, the field and the value.
pub fn parse(file: &str, text: &str) -> Result<Vec<WorkloadSpec>> {
    let raw: RawFile = toml::from_str(text).map_err(|error| Error::File {
        file: file.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    if raw.workload.is_empty() {
        return Err(Error::File {
            file: file.to_owned(),
            message: "no workloads: declare at least one [[workload]] table".to_owned(),
        });
    }

    let mut specs = Vec::with_capacity(raw.workload.len());
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (index, table) in raw.workload.into_iter().enumerate() {
        let label = match table.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("{name:?}"),
            None => format!("#{}", index + 1),
        };
        let context = Context { file, label };
        let raw: RawWorkload = toml::Value::Table(table)
            .try_into()
            .map_err(|error: toml::de::Error| context.workload(error.message()))?;
        let spec = context.validate(raw)?;
        if let Some(first) = positions.insert(spec.name.clone(), index + 1) {
            return Err(context.field(
                "name",
                format!(
                    "{:?} is already the name of workload #{first}: names must be unique",
                    spec.name
                ),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Location of an error (file and workload), for its message.
struct Context<'a> {
    file: &'a str,
    label: String,
}

impl Context<'_> {
    fn check_container(&self, spec: &WorkloadSpec) -> Result<()> {
        if let CheckSpec::Tcp(port) = &spec.health.check {
            let value = match port {
                TcpPort::Allocated => "{port}".to_owned(),
                TcpPort::Fixed(port) => port.to_string(),
            };
            return Err(self.field(
                "health.tcp",
                format!(
                    "{value:?}: a tcp check connects to 127.0.0.1, which does not reach a \
                     container: use http = \"http://{{host}}:{{port}}/healthz\" or grpc = \
                     \"{{host}}:{{port}}\""
                ),
            ));
        }
        for (index, path) in spec.checksum_files.iter().enumerate() {
            if !path.is_absolute() {
                return Err(self.field(
                    &format!("checksum_files[{index}]"),
                    format!(
                        "{:?} is relative: name a container's file by its absolute path inside \
                         the container",
                        path.display().to_string()
                    ),
                ));
            }
        }
        if let Some(limit) = spec.memory_limit
            && limit < MIN_CONTAINER_MEMORY_LIMIT
        {
            return Err(self.field(
                "memory_limit",
                format!(
                    "{limit} bytes is below the 6MiB that the Docker engine accepts for a container"
                ),
            ));
        }
        Ok(())
    }

    fn workload(&self, message: &str) -> Error {
        Error::Workload {
            file: self.file.to_owned(),
            workload: self.label.clone(),
            message: message.trim_end().to_owned(),
        }
    }

    fn field(&self, field: &str, message: String) -> Error {
        Error::Field {
            file: self.file.to_owned(),
            workload: self.label.clone(),
            field: field.to_owned(),
            message,
        }
    }

    fn validate(&self, raw: RawWorkload) -> Result<WorkloadSpec> {
        let name = self.name(raw.name)?;
        let program = self.program(raw.command, raw.image)?;
        let args = raw
            .args
            .iter()
            .enumerate()
            .map(|(i, arg)| self.instance_template(&format!("args[{i}]"), arg))
            .collect::<Result<_>>()?;
        let env = self.env(raw.env)?;
        let labels = self.labels(raw.labels)?;

        let replicas = self.replicas(raw.replicas)?;
        let start_timeout =
            self.duration("start_timeout", raw.start_timeout, DEFAULT_START_TIMEOUT)?;
        let checksum_files = raw
            .checksum_files
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                if path.is_empty() {
                    Err(self.field(&format!("checksum_files[{i}]"), "empty path".to_owned()))
                } else {
                    Ok(PathBuf::from(path))
                }
            })
            .collect::<Result<_>>()?;

        let memory_limit = raw
            .memory_limit
            .map(|value| self.memory_limit(&value))
            .transpose()?;
        let artifact_digest = raw
            .artifact_digest
            .map(|value| self.artifact_digest(&value))
            .transpose()?;

        let health = self.health(raw.health)?;
        let heartbeat_interval = match raw.heartbeat {
            Some(heartbeat) => Some(self.duration(
                "heartbeat.interval",
                Some(heartbeat.interval),
                Duration::ZERO,
            )?),
            None => None,
        };
        Ok(WorkloadSpec {
            name,
            program,
            labels,
            args,
            env,
            replicas,
            start_timeout,
            checksum_files,
            memory_limit,
            artifact_digest,
            health,
            heartbeat_interval,
        })
    }

    fn program(&self, command: Option<String>, image: Option<String>) -> Result<ProgramSpec> {
        let program = match (command, image) {
            (Some(command), None) => ProgramSpec::Command(command),
            (None, Some(image)) => ProgramSpec::Image(image),
            (None, None) => {
                return Err(self.field(
                    "command",
                    "missing: set command (a program, for the process runtime) or image (for \
                     the Docker runtime)"
                        .to_owned(),
                ));
            }
            (Some(command), Some(image)) => {
                return Err(self.field(
                    "image",
                    format!("{image:?} is set together with command {command:?}: set one of them"),
                ));
            }
        };
        let value = program.as_str();
        if value.trim().is_empty() {
            return Err(self.field(program.field(), "must not be empty".to_owned()));
        }
        if let ProgramSpec::Image(image) = &program
            && let Some(bad) = image.chars().find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.field(
                "image",
                format!("{image:?} contains {bad:?}: expected an image reference such as \"aro-sample-workload:dev\""),
            ));
        }
        Ok(program)
    }

    fn memory_limit(&self, value: &str) -> Result<u64> {
        let bytes =
            byte_size::parse(value).map_err(|message| self.field("memory_limit", message))?;
        if bytes < MIN_MEMORY_LIMIT {
            return Err(self.field(
                "memory_limit",
                format!("{value:?} is below the minimum of 1MiB"),
            ));
        }
        Ok(bytes)
    }

    /// Checks a `sha256:<hex>` digest and returns it in lowercase, the form the deployer
    /// computes.
    fn artifact_digest(&self, value: &str) -> Result<String> {
        let invalid = |problem: &str| {
            self.field(
                "artifact_digest",
                format!("{value:?} {problem}: expected \"sha256:\" and 64 hexadecimal digits"),
            )
        };
        let Some(hex) = value.strip_prefix(DIGEST_PREFIX) else {
            return Err(invalid("does not start with \"sha256:\""));
        };
        if hex.len() != 64 {
            return Err(invalid(&format!(
                "has {} digits after the prefix",
                hex.len()
            )));
        }
        if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                "contains a character that is not a hexadecimal digit",
            ));
        }
        Ok(format!("{DIGEST_PREFIX}{}", hex.to_ascii_lowercase()))
    }

    fn name(&self, name: String) -> Result<String> {
        aro_bus::subjects::validate_name(&name)
            .map_err(|message| self.field("name", format!("invalid name: {message}")))?;
        if name.len() > MAX_NAME_LEN {
            return Err(self.field(
                "name",
                format!(
                    "{name:?} is {} characters long: at most {MAX_NAME_LEN}, so that instance ids fit",
                    name.len()
                ),
            ));
        }
        Ok(name)
    }

    fn template(&self, field: &str, value: &str) -> Result<Template> {
        Template::parse(value).map_err(|error| self.field(field, format!("{value:?}: {error}")))
    }

    /// Parses a template of the instance's own arguments or environment, which are set before
    /// the instance has an address, so `{host}` is not available there.
    fn instance_template(&self, field: &str, value: &str) -> Result<Template> {
        let template = self.template(field, value)?;
        if template.uses_host() {
            return Err(self.field(
                field,
                format!(
                    "{value:?} uses {{host}}, which is known only once the instance runs: use it \
                     in health checks; an instance finds its listen address in ARO_HOST"
                ),
            ));
        }
        Ok(template)
    }

    fn env(&self, env: BTreeMap<String, String>) -> Result<Vec<(String, Template)>> {
        let mut out = Vec::with_capacity(env.len());
        for (key, value) in env {
            let field = format!("env.{key}");
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(self.field(
                    &field,
                    format!("invalid variable name {key:?}: must be non-empty, without '=' or NUL"),
                ));
            }
            if RESERVED_ENV.contains(&key.as_str()) {
                return Err(self.field(
                    &field,
                    format!(
                        "{key} is set by the deployer for every instance and cannot be overridden"
                    ),
                ));
            }
            let template = self.instance_template(&field, &value)?;
            out.push((key, template));
        }
        Ok(out)
    }

    fn labels(&self, labels: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
        for (key, value) in &labels {
            validate_label_key(key)
                .map_err(|problem| self.field("labels", format!("key {key:?} {problem}")))?;
            validate_label_value(value).map_err(|problem| {
                self.field(
                    &format!("labels.{key}"),
                    format!("value {value:?} {problem}"),
                )
            })?;
        }
        Ok(labels)
    }

    fn replicas(&self, replicas: i64) -> Result<u32> {
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(self.field(
                "replicas",
                format!("{replicas} is out of range: expected 1 to {MAX_REPLICAS}"),
            ));
        }
        Ok(u32::try_from(replicas).expect("1..=64 fits in u32"))
    }

    /// Parses a positive duration; `None` gives `default`.
    fn duration(&self, field: &str, value: Option<String>, default: Duration) -> Result<Duration> {
        let Some(value) = value else {
            return Ok(default);
        };
        let duration = aro_service::humantime_duration(&value)
            .map_err(|message| self.field(field, message))?;
        if duration.is_zero() {
            return Err(self.field(field, format!("{value:?} must be greater than zero")));
        }
        Ok(duration)
    }

    fn health(&self, raw: RawHealth) -> Result<HealthSpec> {
        let set: Vec<&str> = [
            ("tcp", raw.tcp.is_some()),
            ("http", raw.http.is_some()),
            ("grpc", raw.grpc.is_some()),
            ("exec", raw.exec.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        if set.len() != 1 {
            let found = if set.is_empty() {
                "none is set".to_owned()
            } else {
                format!("{} are set", set.join(" and "))
            };
            return Err(self.field(
                "health",
                format!("exactly one of tcp, http, grpc or exec must be set, but {found}"),
            ));
        }

        let check = if let Some(tcp) = raw.tcp {
            self.tcp(&tcp)?
        } else if let Some(url) = raw.http {
            self.http(&url)?
        } else if let Some(address) = raw.grpc {
            self.grpc(&address)?
        } else {
            let argv = raw.exec.unwrap_or_default();
            if argv.is_empty() {
                return Err(self.field(
                    "health.exec",
                    "[] is empty: give the command and its arguments".to_owned(),
                ));
            }
            let argv = argv
                .iter()
                .enumerate()
                .map(|(i, arg)| self.template(&format!("health.exec[{i}]"), arg))
                .collect::<Result<_>>()?;
            CheckSpec::Exec(argv)
        };
        Ok(HealthSpec {
            check,
            interval: self.duration("health.interval", raw.interval, DEFAULT_PROBE_INTERVAL)?,
            timeout: self.duration("health.timeout", raw.timeout, DEFAULT_PROBE_TIMEOUT)?,
        })
    }

    fn tcp(&self, value: &str) -> Result<CheckSpec> {
        if value == "{port}" {
            return Ok(CheckSpec::Tcp(TcpPort::Allocated));
        }
        match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(CheckSpec::Tcp(TcpPort::Fixed(port))),
            _ => Err(self.field(
                "health.tcp",
                format!(
                    "{value:?} is not a port: expected \"{{port}}\" or a number from 1 to 65535"
                ),
            )),
        }
    }

    fn http(&self, value: &str) -> Result<CheckSpec> {
        let template = self.template("health.http", value)?;
        let sample = template.render(&SAMPLE);
        let valid = sample.starts_with("http://")
            && sample
                .parse::<http::Uri>()
                .is_ok_and(|uri| uri.host().is_some());
        if !valid {
            return Err(self.field(
                "health.http",
                format!("{value:?} is not an http:// URL with a host, like \"http://127.0.0.1:{{port}}/healthz\""),
            ));
        }
        Ok(CheckSpec::Http(template))
    }

    fn grpc(&self, value: &str) -> Result<CheckSpec> {
        let template = self.template("health.grpc", value)?;
        let sample = template.render(&SAMPLE);
        let valid = sample
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(self.field(
                "health.grpc",
                format!("{value:?} is not host:port, like \"127.0.0.1:{{port}}\""),
            ));
        }
        Ok(CheckSpec::Grpc(template))
    }
}

#[cfg(test)]
mod tests;
