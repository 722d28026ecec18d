//! Fault kinds beyond kills and hangs: corrupted declared files, and the faults the sample
//! workload injects into itself through its chaos hooks. The hook tests run the real
//! `aro-sample-workload` binary, built by `cargo build -p aro-sample-workload`.

use std::path::PathBuf;

use super::*;
use aro_proto::v1::CorruptFileParams;

/// Content of the declared file in these tests: long enough that a corruption lands inside.
const PRISTINE: &str = "sku-0001 bolt-m6 57\nsku-0002 bolt-m8 94\nsku-0003 nut-m6 131\n";

/// Two replicas of Python's HTTP server that declare `data.txt`.
fn web_with_data_file() -> (String, Options) {
    let fleet = WEB.replace(
        "replicas = 2",
        "replicas = 2\nchecksum_files = [\"data.txt\"]",
    );
    let options = Options {
        files: vec![("data.txt", PRISTINE)],
        ..Options::default()
    };
    (fleet, options)
}

/// Path of the sample workload binary beside this test's target directory.
fn sample_workload() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps")
        .join("aro-sample-workload");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p aro-sample-workload` first",
        path.display()
    );
    path
}

/// Returns a workload file with one replica of the sample workload with a memory limit,
/// checked over HTTP.
fn beat(memory_limit: &str) -> String {
    format!(
        r#"
[[workload]]
name = "beat"
command = "{}"
replicas = 1
memory_limit = "{memory_limit}"

[workload.health]
http = "http://127.0.0.1:{{port}}/healthz"
interval = "100ms"
timeout = "1s"
"#,
        sample_workload().display()
    )
}

/// Port of an instance, from the URL of its HTTP health check.
fn http_port(instance: &Instance) -> u16 {
    let url = match instance
        .health_check
        .as_ref()
        .and_then(|c| c.check.as_ref())
    {
        Some(health_check::Check::HttpUrl(url)) => url.clone(),
        other => panic!("expected an HTTP check, got {other:?}"),
    };
    let uri: http::Uri = url.parse().expect("a valid URL");
    uri.port_u16().expect("the URL names a port")
}

/// Value of `name` in the sample workload's `GET /chaos` state.
async fn hook_state(port: u16, name: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connecting to the sample workload");
    stream
        .write_all(b"GET /chaos HTTP/1.0\r\nHost: sample\r\n\r\n")
        .await
        .expect("sending the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("reading the response");
    let prefix = format!("{name}: ");
    response
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from {response:?}"))
        .to_owned()
}

#[tokio::test]
async fn corrupt_file_overwrites_declared_file_until_halted() {
    let (fleet, options) = web_with_data_file();
    let harness = Harness::start(&fleet, &options).await;
    harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;
    let mut chaos_events = harness.subscribe(subjects::chaos("web")).await;
    let data = harness.deployer.file("data.txt");

    let injection = chaos
        .inject_fault(inject(ChaosKind::CorruptFile, "web", "web-1"))
        .await
        .expect("corrupting the declared file")
        .into_inner()
        .injection
        .expect("the injection is returned");
    assert_eq!(injection.kind, ChaosKind::CorruptFile as i32);
    let corrupted = std::fs::read(&data).expect("reading the data file");
    assert_eq!(corrupted.len(), PRISTINE.len());
    assert_ne!(corrupted, PRISTINE.as_bytes());
    let injected: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(injected.phase, "injected");
    assert!(
        injected.message.contains("data.txt"),
        "{}",
        injected.message
    );

    assert_eq!(active_injections(&mut chaos).await, 1);
    assert_eq!(halt_all(&mut chaos).await, 1);
    let restored = std::fs::read_to_string(&data).expect("reading the data file");
    assert_eq!(restored, PRISTINE);
    let halted_event: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(halted_event.phase, "halted");
    assert!(
        halted_event.message.starts_with("restored 16 bytes"),
        "{}",
        halted_event.message
    );
}

fn corrupt_file_params(path: &str) -> Option<FaultParams> {
    Some(FaultParams {
        kind: Some(fault_params::Kind::CorruptFile(CorruptFileParams {
            path: path.to_owned(),
        })),
    })
}

#[tokio::test]
async fn corrupt_file_takes_only_declared_paths() {
    let (fleet, options) = web_with_data_file();
    let harness = Harness::start(&fleet, &options).await;
    let web = harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;
    let registered = web[0].declared_files[0].path.clone();

    for path in ["data.txt".to_owned(), registered] {
        let request = InjectFaultRequest {
            params: corrupt_file_params(&path),
            ..inject(ChaosKind::CorruptFile, "web", "web-2")
        };
        chaos
            .inject_fault(request)
            .await
            .unwrap_or_else(|status| panic!("corrupting {path:?} failed: {status}"));
        halt_all(&mut chaos).await;
    }
    let restored = std::fs::read_to_string(harness.deployer.file("data.txt")).expect("reading");
    assert_eq!(restored, PRISTINE);

    let outside = harness.deployer.file("fleet.toml");
    let before = std::fs::read(&outside).expect("reading the workload file");
    let request = InjectFaultRequest {
        params: corrupt_file_params(&outside.display().to_string()),
        ..inject(ChaosKind::CorruptFile, "web", "web-2")
    };
    let error = chaos
        .inject_fault(request)
        .await
        .expect_err("an undeclared path is refused");
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        error
            .message()
            .contains("is not a declared file of instance web-2"),
        "{}",
        error.message()
    );
    assert_eq!(std::fs::read(&outside).expect("reading"), before);
}

#[tokio::test]
async fn corrupted_file_is_restored_when_the_deployer_stops() {
    let (fleet, options) = web_with_data_file();
    let mut harness = Harness::start(&fleet, &options).await;
    harness.wait_serving("web", 2).await;
    harness
        .chaos()
        .await
        .inject_fault(inject(ChaosKind::CorruptFile, "web", ""))
        .await
        .expect("corrupting the declared file");
    let data = harness.deployer.file("data.txt");
    assert_ne!(
        std::fs::read_to_string(&data).ok().as_deref(),
        Some(PRISTINE)
    );

    harness.deployer.signal(UnixSignal::SIGTERM);
    let status = harness.deployer.wait_exit(WAIT);
    assert!(status.success(), "{status}");
    assert_eq!(std::fs::read_to_string(&data).expect("reading"), PRISTINE);
}

#[tokio::test]
async fn replace_restores_a_corrupted_declared_file() {
    let (fleet, options) = web_with_data_file();
    let harness = Harness::start(&fleet, &options).await;
    harness.wait_serving("web", 2).await;
    let mut chaos = harness.chaos().await;
    chaos
        .inject_fault(inject(ChaosKind::CorruptFile, "web", "web-1"))
        .await
        .expect("corrupting the declared file");
    let mut outcomes = harness.subscribe(subjects::outcome("web")).await;
    let mut chaos_events = harness.subscribe(subjects::chaos("web")).await;

    harness
        .publish_command(&command("cmd-inc-web-1-g1-a1", Action::Replace, "web-1", 1))
        .await;
    let outcome: Outcome = next(&mut outcomes).await;
    assert_eq!(
        outcome.status(),
        OutcomeStatus::Recovered,
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("restored") && outcome.message.contains("data.txt"),
        "{}",
        outcome.message
    );
    let data = harness.deployer.file("data.txt");
    assert_eq!(std::fs::read_to_string(&data).expect("reading"), PRISTINE);

    // The file was replaced as a whole, so HaltAll finds other bytes and leaves it alone.
    halt_all(&mut chaos).await;
    let halted: ChaosEvent = next(&mut chaos_events).await;
    assert!(halted.message.contains("as it is"), "{}", halted.message);
    assert_eq!(std::fs::read_to_string(&data).expect("reading"), PRISTINE);
}

#[tokio::test]
async fn registry_carries_memory_limit_and_declared_digest() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let fleet = WEB.replace(
        "replicas = 2",
        &format!("replicas = 2\nmemory_limit = \"512MiB\"\nartifact_digest = \"{digest}\""),
    );
    let harness = Harness::start(&fleet, &Options::default()).await;
    let web = harness.wait_serving("web", 2).await;
    for instance in &web {
        assert_eq!(instance.memory_limit_bytes, 512 << 20);
        assert_eq!(instance.expected_artifact_digest, digest);
        assert_ne!(instance.artifact_digest, digest);
    }
}

#[tokio::test]
async fn memory_limit_ends_an_instance_that_exceeds_it() {
    let fleet = r#"
[[workload]]
name = "hog"
command = "python3"
args = ["-c", "import time; block = b'a' * (64 << 20); time.sleep(600)"]
replicas = 1
memory_limit = "32MiB"

[workload.health]
exec = ["true"]
"#;
    let harness = Harness::start(fleet, &Options::default()).await;
    let mut signals = harness.subscribe(subjects::signal("hog", "hog-1")).await;
    let exit = next_signal(&mut signals, true).await;
    let exited = exited(&exit);
    assert!(exited.oom_killed, "{exit:?}");
    assert!(!exited.expected, "{exit:?}");
    assert_eq!(exited.signal, Some(UnixSignal::SIGKILL as i32));
}

#[tokio::test]
async fn instances_run_in_the_workload_file_directory() {
    let fleet = r#"
[[workload]]
name = "where"
command = "sh"
args = ["-c", "while true; do pwd; cat marker.txt; echo; sleep 0.1; done"]
replicas = 1

[workload.health]
exec = ["true"]
"#;
    let options = Options {
        files: vec![("marker.txt", "beside the workload file")],
        ..Options::default()
    };
    let harness = Harness::start(fleet, &options).await;
    let mut logs = harness.subscribe("aro.logs.where.where-1".to_owned()).await;
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let message = tokio::time::timeout(WAIT, logs.next())
            .await
            .expect("timed out waiting for a log line")
            .expect("the subscription is open");
        lines.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    let marker = harness.deployer.file("marker.txt");
    let directory = std::fs::canonicalize(marker.parent().expect("a directory"))
        .expect("an existing directory");
    let printed: Vec<PathBuf> = lines
        .iter()
        .filter(|line| line.starts_with('/'))
        .filter_map(|line| std::fs::canonicalize(line).ok())
        .collect();
    assert!(printed.contains(&directory), "{lines:?}");
    assert!(
        lines.iter().any(|line| line == "beside the workload file"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn log_storm_writes_error_lines() {
    let harness = Harness::start(&beat("256MiB"), &Options::default()).await;
    harness.wait_serving("beat", 1).await;
    let mut logs = harness.subscribe("aro.logs.beat.beat-1".to_owned()).await;
    let mut chaos_events = harness.subscribe(subjects::chaos("beat")).await;
    harness
        .chaos()
        .await
        .inject_fault(inject(ChaosKind::LogStorm, "beat", "beat-1"))
        .await
        .expect("injecting a log storm");
    let injected: ChaosEvent = next(&mut chaos_events).await;
    assert_eq!(injected.kind, ChaosKind::LogStorm as i32);

    let mut errors = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while errors < 1000 {
        let message = tokio::time::timeout_at(deadline, logs.next())
            .await
            .expect("timed out before 1000 error lines")
            .expect("the subscription is open");
        if message.payload.starts_with(b"ERROR ") {
            errors += 1;
        }
    }
    assert_eq!(errors, 1000);
}

#[tokio::test]
async fn hook_faults_last_until_halted() {
    let harness = Harness::start(&beat("256MiB"), &Options::default()).await;
    let beat = harness.wait_serving("beat", 1).await;
    let port = http_port(&beat[0]);
    let mut chaos = harness.chaos().await;
    let intact = hook_state(port, "data_checksum").await;

    for kind in [ChaosKind::StopHeartbeats, ChaosKind::CorruptData] {
        chaos
            .inject_fault(inject(kind, "beat", "beat-1"))
            .await
            .unwrap_or_else(|status| panic!("injecting {kind:?} failed: {status}"));
    }
    assert_eq!(hook_state(port, "heartbeats").await, "stopped");
    assert_eq!(hook_state(port, "data_corrupt").await, "true");
    assert_ne!(hook_state(port, "data_checksum").await, intact);
    assert_eq!(active_injections(&mut chaos).await, 2);

    assert_eq!(halt_all(&mut chaos).await, 2);
    assert_eq!(hook_state(port, "heartbeats").await, "sending");
    assert_eq!(hook_state(port, "data_checksum").await, intact);
}

#[tokio::test]
async fn grown_memory_ends_at_the_memory_limit() {
    let harness = Harness::start(&beat("24MiB"), &Options::default()).await;
    let beat = harness.wait_serving("beat", 1).await;
    let port = http_port(&beat[0]);
    let mut signals = harness.subscribe(subjects::signal("beat", "beat-1")).await;
    harness
        .chaos()
        .await
        .inject_fault(inject(ChaosKind::GrowMemory, "beat", "beat-1"))
        .await
        .expect("injecting memory growth");
    eventually("the sample workload to allocate memory", || async {
        let grown: u64 = hook_state(port, "grown_bytes").await.parse().ok()?;
        (grown > 0).then_some(())
    })
    .await;

    let exit = next_signal(&mut signals, true).await;
    let exited = exited(&exit);
    assert!(exited.oom_killed, "{exit:?}");
    assert!(!exited.expected, "{exit:?}");
}
