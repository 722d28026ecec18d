use std::time::Duration;

use super::*;
use crate::domain::workload::{CheckSpec, ProgramSpec, TcpPort};

const FILE: &str = "fleet.toml";

fn parse_ok(text: &str) -> Vec<WorkloadSpec> {
    parse(FILE, text).expect("the workload file is valid")
}

fn parse_err(text: &str) -> String {
    parse(FILE, text)
        .expect_err("the workload file is invalid")
        .to_string()
}

/// Asserts that `message` contains each of `parts`, one assert per part.
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

/// Builds a valid workload with `extra` lines added to its table and `health` as its health table.
fn workload(extra: &str, health: &str) -> String {
    format!(
        "[[workload]]\nname = \"web\"\ncommand = \"python3\"\n{extra}\n[workload.health]\n{health}\n"
    )
}

const HTTP: &str = "http = \"http://127.0.0.1:{port}/\"";

#[test]
fn valid_file_parses_with_defaults() {
    let specs = parse_ok(&workload("", "tcp = \"{port}\""));
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.name, "web");
    assert_eq!(spec.program, ProgramSpec::Command("python3".to_owned()));
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.start_timeout, Duration::from_secs(10));
    assert_eq!(spec.health.interval, Duration::from_millis(250));
    assert_eq!(spec.health.timeout, Duration::from_millis(200));
    assert_eq!(spec.health.check, CheckSpec::Tcp(TcpPort::Allocated));
    assert_eq!(spec.heartbeat_interval, None);
}

#[test]
fn full_workload_parses_every_field() {
    let text = r#"
[[workload]]
name = "beat"
command = "aro-sample-workload"
args = ["--port", "{port}"]
env = { RUST_LOG = "debug", TAG = "{instance}" }
labels = { tier = "web", "app.example.com/team" = "sre", empty = "" }
replicas = 3
start_timeout = "5s"
checksum_files = ["/etc/hostname"]
memory_limit = "256MiB"
artifact_digest = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"

[workload.health]
grpc = "127.0.0.1:{port}"
interval = "100ms"
timeout = "50ms"

[workload.heartbeat]
interval = "250ms"

[[workload]]
name = "probe"
command = "sleep"
args = ["1000"]

[workload.health]
exec = ["true"]
"#;
    let specs = parse_ok(text);
    assert_eq!(specs.len(), 2);
    let beat = &specs[0];
    assert_eq!(beat.args.len(), 2);
    assert_eq!(beat.env.len(), 2);
    assert_eq!(beat.env[1].0, "TAG");
    assert_eq!(beat.replicas, 3);
    let labels: Vec<(&str, &str)> = beat
        .labels
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("app.example.com/team", "sre"),
            ("empty", ""),
            ("tier", "web")
        ]
    );
    assert!(specs[1].labels.is_empty());
    assert_eq!(beat.start_timeout, Duration::from_secs(5));
    assert_eq!(beat.checksum_files, [PathBuf::from("/etc/hostname")]);
    assert_eq!(beat.memory_limit, Some(256 << 20));
    assert_eq!(
        beat.artifact_digest.as_deref(),
        Some("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(specs[1].memory_limit, None);
    assert_eq!(specs[1].artifact_digest, None);
    assert!(matches!(beat.health.check, CheckSpec::Grpc(_)));
    assert_eq!(beat.health.interval, Duration::from_millis(100));
    assert_eq!(beat.health.timeout, Duration::from_millis(50));
    assert_eq!(beat.heartbeat_interval, Some(Duration::from_millis(250)));
    assert!(matches!(specs[1].health.check, CheckSpec::Exec(ref argv) if argv.len() == 1));
}

#[test]
fn demo_fleet_file_is_valid() {
    let text = include_str!("../../../../../deploy/local/fleet.toml");
    let specs = parse_ok(text);
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    assert_eq!(names, ["web", "beat"]);
    assert!(specs[1].heartbeat_interval.is_some());
    assert_eq!(specs[1].memory_limit, Some(256 << 20));
    assert_eq!(specs[1].checksum_files, [PathBuf::from("beat-data.txt")]);
}

#[test]
fn docker_demo_fleet_file_suits_the_docker_runtime() {
    let text = include_str!("../../../../../deploy/local/docker-fleet.toml");
    let specs = parse_ok(text);
    assert_eq!(
        specs[0].program,
        ProgramSpec::Image("aro-sample-workload:dev".to_owned())
    );
    assert_eq!(check_runtime(FILE, &specs, RuntimeKind::Docker), Ok(()));
    assert!(check_runtime(FILE, &specs, RuntimeKind::Process).is_err());
}

#[test]
fn end_to_end_fleet_file_is_valid() {
    let text = include_str!("../../../../../tests/e2e/fleet.toml");
    let specs = parse_ok(text);
    assert_eq!(specs[1].name, "beat");
    assert!(specs[1].memory_limit.is_some());
    assert_eq!(specs[1].checksum_files.len(), 1);
}

#[test]
fn syntax_error_names_the_file() {
    let message = parse_err("[[workload]\nname = ");
    assert_mentions(&message, &[FILE]);
}

#[test]
fn file_without_workloads_is_rejected() {
    let message = parse_err("");
    assert_mentions(&message, &[FILE, "no workloads"]);
}

#[test]
fn unknown_top_level_key_is_rejected() {
    let message = parse_err(&format!("workloads = 1\n{}", workload("", HTTP)));
    assert_mentions(&message, &[FILE, "workloads"]);
}

#[test]
fn unknown_workload_key_is_rejected() {
    let message = parse_err(&workload("replica = 2", HTTP));
    assert_mentions(&message, &[FILE, "\"web\"", "replica"]);
}

#[test]
fn unknown_health_key_is_rejected() {
    let message = parse_err(&workload(
        "",
        "http = \"http://127.0.0.1:{port}/\"\nretries = 3",
    ));
    assert_mentions(&message, &[FILE, "\"web\"", "retries"]);
}

#[test]
fn missing_command_is_rejected() {
    let text = format!("[[workload]]\nname = \"web\"\n[workload.health]\n{HTTP}\n");
    let message = parse_err(&text);
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field command", "missing", "image"],
    );
}

#[test]
fn empty_command_is_rejected() {
    let text =
        format!("[[workload]]\nname = \"web\"\ncommand = \" \"\n[workload.health]\n{HTTP}\n");
    let message = parse_err(&text);
    assert_mentions(&message, &[FILE, "\"web\"", "field command", "empty"]);
}

#[test]
fn missing_name_names_the_position() {
    let text = format!(
        "{}[[workload]]\ncommand = \"x\"\n[workload.health]\n{HTTP}\n",
        workload("", HTTP)
    );
    let message = parse_err(&text);
    assert_mentions(&message, &[FILE, "workload #2", "name"]);
}

#[test]
fn invalid_names_are_rejected() {
    for name in ["Web", "web.1", "1web", "web_1", ""] {
        let text = format!(
            "[[workload]]\nname = \"{name}\"\ncommand = \"x\"\n[workload.health]\n{HTTP}\n"
        );
        let message = parse_err(&text);
        assert_mentions(&message, &[FILE, "field name", &format!("{name:?}")]);
    }
}

#[test]
fn overlong_name_is_rejected() {
    let name = "w".repeat(MAX_NAME_LEN + 1);
    let text =
        format!("[[workload]]\nname = \"{name}\"\ncommand = \"x\"\n[workload.health]\n{HTTP}\n");
    let message = parse_err(&text);
    assert_mentions(&message, &[FILE, "field name", "53 characters"]);
}

#[test]
fn duplicate_names_are_rejected() {
    let text = format!("{}{}", workload("", HTTP), workload("", HTTP));
    let message = parse_err(&text);
    assert_mentions(&message, &[FILE, "\"web\"", "field name", "workload #1"]);
}

#[test]
fn zero_replicas_are_rejected() {
    let message = parse_err(&workload("replicas = 0", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field replicas", "0 is out of range"],
    );
}

#[test]
fn too_many_replicas_are_rejected() {
    let message = parse_err(&workload("replicas = 65", HTTP));
    assert_mentions(&message, &[FILE, "\"web\"", "field replicas", "65"]);
}

#[test]
fn negative_replicas_are_rejected() {
    let message = parse_err(&workload("replicas = -1", HTTP));
    assert_mentions(&message, &[FILE, "field replicas", "-1"]);
}

#[test]
fn replicas_of_wrong_type_are_rejected() {
    let message = parse_err(&workload("replicas = \"two\"", HTTP));
    assert_mentions(&message, &[FILE, "\"web\"", "field replicas", "\"two\""]);
}

#[test]
fn duration_of_wrong_type_is_rejected() {
    let message = parse_err(&workload("start_timeout = 10", HTTP));
    assert_mentions(&message, &[FILE, "\"web\"", "field start_timeout", "10"]);
}

#[test]
fn health_field_of_wrong_type_is_rejected() {
    let message = parse_err(&workload("", "exec = \"true\""));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field health.exec", "\"true\""],
    );
}

#[test]
fn duration_without_unit_is_rejected() {
    let message = parse_err(&workload("start_timeout = \"10\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field start_timeout", "\"10\""],
    );
}

#[test]
fn duration_with_unknown_unit_is_rejected() {
    let message = parse_err(&workload("", &format!("{HTTP}\ninterval = \"5 parsecs\"")));
    assert_mentions(&message, &[FILE, "field health.interval", "\"5 parsecs\""]);
}

#[test]
fn zero_duration_is_rejected() {
    let message = parse_err(&workload("", &format!("{HTTP}\ntimeout = \"0ms\"")));
    assert_mentions(
        &message,
        &[FILE, "field health.timeout", "\"0ms\"", "greater than zero"],
    );
}

#[test]
fn bad_heartbeat_interval_is_rejected() {
    let text = format!(
        "{}[workload.heartbeat]\ninterval = \"fast\"\n",
        workload("", HTTP)
    );
    let message = parse_err(&text);
    assert_mentions(&message, &[FILE, "field heartbeat.interval", "\"fast\""]);
}

#[test]
fn two_health_checks_are_rejected() {
    let message = parse_err(&workload("", &format!("{HTTP}\ntcp = \"{{port}}\"")));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field health", "tcp and http are set"],
    );
}

#[test]
fn empty_health_table_is_rejected() {
    let message = parse_err(&workload("", "interval = \"1s\""));
    assert_mentions(&message, &[FILE, "\"web\"", "field health", "none is set"]);
}

#[test]
fn missing_health_table_is_rejected() {
    let message = parse_err("[[workload]]\nname = \"web\"\ncommand = \"x\"\n");
    assert_mentions(&message, &[FILE, "\"web\"", "health"]);
}

#[test]
fn tcp_check_needs_a_port() {
    let message = parse_err(&workload("", "tcp = \"localhost\""));
    assert_mentions(&message, &[FILE, "field health.tcp", "\"localhost\""]);
    let fixed = parse_ok(&workload("", "tcp = \"8080\""));
    assert_eq!(fixed[0].health.check, CheckSpec::Tcp(TcpPort::Fixed(8080)));
}

#[test]
fn http_check_needs_an_http_url() {
    let message = parse_err(&workload("", "http = \"https://127.0.0.1:{port}/\""));
    assert_mentions(
        &message,
        &[FILE, "field health.http", "https://127.0.0.1:{port}/"],
    );
}

#[test]
fn grpc_check_needs_host_and_port() {
    let message = parse_err(&workload("", "grpc = \"{port}\""));
    assert_mentions(&message, &[FILE, "field health.grpc", "\"{port}\""]);
}

#[test]
fn empty_exec_check_is_rejected() {
    let message = parse_err(&workload("", "exec = []"));
    assert_mentions(&message, &[FILE, "field health.exec", "empty"]);
}

#[test]
fn unknown_placeholder_is_rejected() {
    let message = parse_err(&workload("args = [\"--port\", \"{prot}\"]", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field args[1]", "\"{prot}\"", "{prot}"],
    );
}

#[test]
fn reserved_environment_variable_is_rejected() {
    let message = parse_err(&workload("env = { ARO_PORT = \"1\" }", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field env.ARO_PORT", "set by the deployer"],
    );
}

#[test]
fn invalid_environment_name_is_rejected() {
    let message = parse_err(&workload("env = { \"A=B\" = \"1\" }", HTTP));
    assert_mentions(&message, &[FILE, "field env.A=B", "\"A=B\""]);
}

#[test]
fn empty_checksum_path_is_rejected() {
    let message = parse_err(&workload("checksum_files = [\"\"]", HTTP));
    assert_mentions(&message, &[FILE, "field checksum_files[0]", "empty path"]);
}

const DIGEST_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn memory_limit_without_unit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"268435456\"", HTTP));
    assert_mentions(
        &message,
        &[
            FILE,
            "\"web\"",
            "field memory_limit",
            "\"268435456\"",
            "no unit",
        ],
    );
}

#[test]
fn memory_limit_with_unknown_unit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"256 megs\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field memory_limit", "\"256 megs\"", "unknown unit"],
    );
}

#[test]
fn fractional_memory_limit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"1.5GiB\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field memory_limit", "\"1.5GiB\"", "whole number"],
    );
}

#[test]
fn memory_limit_without_number_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"MiB\"", HTTP));
    assert_mentions(&message, &[FILE, "field memory_limit", "\"MiB\""]);
}

#[test]
fn negative_memory_limit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"-256MiB\"", HTTP));
    assert_mentions(&message, &[FILE, "field memory_limit", "\"-256MiB\""]);
}

#[test]
fn zero_memory_limit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"0MiB\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field memory_limit", "\"0MiB\"", "below the minimum"],
    );
}

#[test]
fn memory_limit_below_minimum_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"512KiB\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field memory_limit", "\"512KiB\"", "1MiB"],
    );
}

#[test]
fn overlarge_memory_limit_is_rejected() {
    let message = parse_err(&workload("memory_limit = \"99999999TiB\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field memory_limit", "\"99999999TiB\"", "too large"],
    );
}

#[test]
fn memory_limit_of_wrong_type_is_rejected() {
    let message = parse_err(&workload("memory_limit = 268435456", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field memory_limit", "268435456"],
    );
}

#[test]
fn artifact_digest_without_prefix_is_rejected() {
    let message = parse_err(&workload(
        &format!("artifact_digest = \"{DIGEST_HEX}\""),
        HTTP,
    ));
    assert_mentions(
        &message,
        &[
            FILE,
            "\"web\"",
            "field artifact_digest",
            DIGEST_HEX,
            "\"sha256:\"",
        ],
    );
}

#[test]
fn artifact_digest_of_other_algorithm_is_rejected() {
    let message = parse_err(&workload(
        "artifact_digest = \"md5:900150983cd24fb0d6963f7d28e17f72\"",
        HTTP,
    ));
    assert_mentions(
        &message,
        &[
            FILE,
            "field artifact_digest",
            "md5:900150983cd24fb0d6963f7d28e17f72",
        ],
    );
}

#[test]
fn short_artifact_digest_is_rejected() {
    let message = parse_err(&workload("artifact_digest = \"sha256:abc\"", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field artifact_digest", "\"sha256:abc\"", "3 digits"],
    );
}

#[test]
fn artifact_digest_with_non_hex_digit_is_rejected() {
    let digest = format!("sha256:{}", DIGEST_HEX.replace('a', "g"));
    let message = parse_err(&workload(&format!("artifact_digest = \"{digest}\""), HTTP));
    assert_mentions(
        &message,
        &[
            FILE,
            "field artifact_digest",
            &digest,
            "not a hexadecimal digit",
        ],
    );
}

#[test]
fn empty_artifact_digest_is_rejected() {
    let message = parse_err(&workload("artifact_digest = \"\"", HTTP));
    assert_mentions(&message, &[FILE, "field artifact_digest", "\"\""]);
}

#[test]
fn artifact_digest_of_wrong_type_is_rejected() {
    let message = parse_err(&workload("artifact_digest = true", HTTP));
    assert_mentions(
        &message,
        &[FILE, "\"web\"", "field artifact_digest", "true"],
    );
}

#[test]
fn invalid_label_key_is_rejected() {
    let message = parse_err(&workload("labels = { \"-tier\" = \"web\" }", HTTP));
    assert_mentions(
        &message,
        &[
            FILE,
            "\"web\"",
            "field labels",
            "\"-tier\"",
            "letter or digit",
        ],
    );
    let message = parse_err(&workload(
        "labels = { \"Example.com/tier\" = \"web\" }",
        HTTP,
    ));
    assert_mentions(
        &message,
        &["field labels", "\"Example.com\"", "DNS subdomain"],
    );
}

#[test]
fn invalid_label_value_is_rejected() {
    let message = parse_err(&workload("labels = { tier = \"front end\" }", HTTP));
    assert_mentions(
        &message,
        &[FILE, "field labels.tier", "\"front end\"", "' '"],
    );
    let long = "v".repeat(64);
    let message = parse_err(&workload(
        &format!("labels = {{ tier = \"{long}\" }}"),
        HTTP,
    ));
    assert_mentions(
        &message,
        &["field labels.tier", "64 characters", "at most 63"],
    );
}

#[test]
fn labels_of_wrong_type_are_rejected() {
    let message = parse_err(&workload("labels = { tier = 3 }", HTTP));
    assert_mentions(&message, &[FILE, "field labels", "invalid type"]);
}

/// Builds a workload that runs `image`, with `extra` lines and an HTTP check on `{host}`.
fn image_workload(extra: &str) -> String {
    format!(
        "[[workload]]\nname = \"web\"\nimage = \"aro-sample-workload:dev\"\n{extra}\n\
         [workload.health]\nhttp = \"http://{{host}}:{{port}}/healthz\"\n"
    )
}

#[test]
fn image_workload_parses() {
    let specs = parse_ok(&image_workload(""));
    assert_eq!(
        specs[0].program,
        ProgramSpec::Image("aro-sample-workload:dev".to_owned())
    );
}

#[test]
fn command_and_image_together_are_rejected() {
    let message = parse_err(&image_workload("command = \"python3\""));
    assert_mentions(
        &message,
        &[
            FILE,
            "\"web\"",
            "field image",
            "aro-sample-workload:dev",
            "python3",
            "one of them",
        ],
    );
}

#[test]
fn image_with_spaces_is_rejected() {
    let message = parse_err(
        "[[workload]]\nname = \"web\"\nimage = \"aro sample\"\n[workload.health]\nexec = [\"true\"]\n",
    );
    assert_mentions(&message, &["field image", "\"aro sample\"", "' '"]);
}

#[test]
fn host_placeholder_is_rejected_outside_health_checks() {
    let message = parse_err(&workload("args = [\"--bind\", \"{host}\"]", HTTP));
    assert_mentions(&message, &["field args[1]", "\"{host}\"", "ARO_HOST"]);
    let message = parse_err(&workload("env = { BIND = \"{host}\" }", HTTP));
    assert_mentions(&message, &["field env.BIND", "{host}"]);
}

fn check(text: &str, runtime: RuntimeKind) -> Result<()> {
    check_runtime(FILE, &parse_ok(text), runtime)
}

#[test]
fn each_runtime_takes_its_own_workloads() {
    assert_eq!(check(&workload("", HTTP), RuntimeKind::Process), Ok(()));
    assert_eq!(check(&image_workload(""), RuntimeKind::Docker), Ok(()));
    let message = check(&image_workload(""), RuntimeKind::Process)
        .expect_err("the process runtime runs no image")
        .to_string();
    assert_mentions(
        &message,
        &[
            FILE,
            "\"web\"",
            "field image",
            "\"aro-sample-workload:dev\"",
            "--runtime docker",
        ],
    );
    let message = check(&workload("", HTTP), RuntimeKind::Docker)
        .expect_err("the docker runtime runs no command")
        .to_string();
    assert_mentions(
        &message,
        &[FILE, "field command", "\"python3\"", "set image"],
    );
}

#[test]
fn container_workload_needs_a_check_that_reaches_it() {
    let text = "[[workload]]\nname = \"web\"\nimage = \"aro-sample-workload:dev\"\n\
                [workload.health]\ntcp = \"{port}\"\n";
    let message = check(text, RuntimeKind::Docker)
        .expect_err("tcp checks stay on loopback")
        .to_string();
    assert_mentions(&message, &["field health.tcp", "\"{port}\"", "{host}"]);
}

#[test]
fn container_checksum_files_are_absolute() {
    let message = check(
        &image_workload("checksum_files = [\"beat-data.txt\"]"),
        RuntimeKind::Docker,
    )
    .expect_err("relative path")
    .to_string();
    assert_mentions(
        &message,
        &["field checksum_files[0]", "\"beat-data.txt\"", "absolute"],
    );
    assert_eq!(
        check(
            &image_workload("checksum_files = [\"/srv/aro/beat-data.txt\"]"),
            RuntimeKind::Docker
        ),
        Ok(())
    );
}

#[test]
fn container_memory_limit_has_the_engine_minimum() {
    let message = check(
        &image_workload("memory_limit = \"2MiB\""),
        RuntimeKind::Docker,
    )
    .expect_err("below the engine minimum")
    .to_string();
    assert_mentions(&message, &["field memory_limit", "2097152 bytes", "6MiB"]);
}
