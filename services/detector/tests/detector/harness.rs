//! The pieces a component test runs: the detector binary, workload processes, and a client
//! that acts as the deployer (registry entries, runtime signals) and reads the faults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aro_bus::async_nats::Subscriber;
use aro_bus::{Bus, Registry, subjects};
use aro_proto::v1::detector_client::DetectorClient;
use aro_proto::v1::{
    Exited, FaultEvent, HealthCheck, Instance, InstanceRef, InstanceState, ListWatchedRequest,
    Signal, health_check, signal,
};
use futures::StreamExt;
use nix::sys::signal::{Signal as UnixSignal, kill};
use nix::unistd::Pid;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::nats_server::{NatsServer, free_port};

/// Heartbeat interval of the sample workloads in these tests.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(250);

/// A child process that is killed when dropped. Its output goes to a log file whose content
/// is printed when a test fails while the process runs.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `command` with its output in a log file of its own.
    pub(crate) fn spawn(name: &str, command: &mut Command) -> Self {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        Self::spawn_in(name, dir, command)
    }

    /// Spawns the process with its log in `dir`, which lives as long as the process.
    fn spawn_in(name: &str, dir: tempfile::TempDir, command: &mut Command) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let stdout = std::fs::File::create(&log).expect("creating a process log");
        let stderr = stdout.try_clone().expect("cloning the log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {name} failed: {error}"));
        Self {
            name: name.to_owned(),
            child,
            log,
            _dir: dir,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a Unix signal to the process.
    pub(crate) fn signal(&self, signal: UnixSignal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"));
        kill(pid, signal)
            .unwrap_or_else(|error| panic!("sending {signal} to {} failed: {error}", self.name));
    }

    /// Waits at most `timeout` for the process to exit and returns its exit status.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("polling a child process") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, self.log());
        }
    }
}

/// The detector binary, running against `nats`.
#[derive(Debug)]
pub(crate) struct Detector {
    pub(crate) process: Process,
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) metrics_addr: SocketAddr,
}

impl Detector {
    /// Starts the detector on free ports and waits until its gRPC health check serves.
    pub(crate) async fn start(nats: &NatsServer) -> Self {
        Self::start_on(nats, free_port()).await
    }

    /// Starts the detector with its gRPC server on `grpc_port`.
    pub(crate) async fn start_on(nats: &NatsServer, grpc_port: u16) -> Self {
        Self::start_with(nats, grpc_port, &[]).await
    }

    /// Starts the detector on node `local` (the node of the test entries) with its gRPC
    /// server on `grpc_port` and the extra flags `args`.
    pub(crate) async fn start_with(nats: &NatsServer, grpc_port: u16, args: &[&str]) -> Self {
        let grpc_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, grpc_port));
        let metrics_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_aro-detector"));
        command
            .arg("--nats-url")
            .arg(nats.url())
            .arg("--grpc-addr")
            .arg(grpc_addr.to_string())
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .args(["--node", "local", "--poll-interval", "200ms"])
            .args(args)
            .env("RUST_LOG", "info,aro_detector=debug");
        let detector = Self {
            process: Process::spawn("aro-detector", &mut command),
            grpc_addr,
            metrics_addr,
        };
        detector.wait_serving().await;
        detector
    }

    async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let endpoint = format!("http://{}", self.grpc_addr);
        while Instant::now() < deadline {
            if let Ok(channel) = Channel::from_shared(endpoint.clone())
                .expect("valid endpoint")
                .connect()
                .await
            {
                let request = HealthCheckRequest {
                    service: "aro.v1.Detector".to_owned(),
                };
                let status = HealthClient::new(channel)
                    .check(request)
                    .await
                    .map(|response| response.into_inner().status())
                    .ok();
                if status == Some(ServingStatus::Serving) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the detector did not serve within 20 s; log:\n{}",
            self.process.log()
        );
    }

    pub(crate) async fn client(&self) -> DetectorClient<Channel> {
        DetectorClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("connecting to the detector")
    }

    /// Returns the resident memory of the detector process in bytes.
    pub(crate) fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.pid()))
            .expect("reading the detector's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse().ok())
            .expect("VmRSS in the detector's /proc status");
        kib * 1024
    }

    /// Waits at most `timeout` until the metric sample starting with `prefix` reaches
    /// `minimum`, and returns its last value.
    pub(crate) async fn wait_metric(&self, prefix: &str, minimum: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let value = metric_value(&self.metrics().await, prefix).unwrap_or(0.0);
            if value >= minimum || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the text of the `/metrics` endpoint.
    pub(crate) async fn metrics(&self) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .expect("connecting to the metrics endpoint");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: detector\r\n\r\n")
            .await
            .expect("sending the metrics request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("reading the metrics response");
        response
    }
}

/// Returns the value of the metric sample whose line starts with `prefix`, if any.
pub(crate) fn metric_value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The test's side of the bus: it writes the registry and publishes signals as the deployer
/// does, and reads the faults the detector publishes.
#[derive(Debug)]
pub(crate) struct Deployer {
    pub(crate) bus: Bus,
    pub(crate) registry: Registry,
    faults: Subscriber,
}

impl Deployer {
    pub(crate) async fn connect(nats: &NatsServer) -> Self {
        let bus = Bus::connect_and_prepare(&nats.url(), "test-deployer")
            .await
            .expect("connecting to NATS");
        let registry = Registry::open(&bus).await.expect("opening the registry");
        let faults = bus
            .client()
            .subscribe("aro.faults.>")
            .await
            .expect("subscribing to faults");
        bus.client()
            .flush()
            .await
            .expect("flushing the subscription");
        Self {
            bus,
            registry,
            faults,
        }
    }

    pub(crate) async fn register(&self, instance: &Instance) {
        self.registry
            .put(instance)
            .await
            .expect("writing a registry entry");
    }

    /// Publishes an exit signal observed now and returns when the publish started.
    pub(crate) async fn publish_exit(&self, reference: &InstanceRef, expected: bool) -> Instant {
        let started = Instant::now();
        let signal = Signal {
            id: format!(
                "sig-{}-g{}-exited",
                reference.instance, reference.generation
            ),
            instance: Some(reference.clone()),
            at: Some(aro_proto::time::now()),
            kind: Some(signal::Kind::Exited(Exited {
                signal: Some(9),
                expected,
                ..Exited::default()
            })),
        };
        self.bus
            .publish(
                subjects::signal(&reference.workload, &reference.instance),
                &signal.id,
                &signal,
            )
            .await
            .expect("publishing a signal");
        started
    }

    /// Publishes one log line of `instance` on core NATS, as the deployer does.
    pub(crate) async fn publish_log(
        &self,
        workload: &str,
        instance: &str,
        line: impl Into<bytes::Bytes>,
    ) {
        self.bus
            .client()
            .publish(format!("aro.logs.{workload}.{instance}"), line.into())
            .await
            .expect("publishing a log line");
    }

    /// Waits until every published message reached the server.
    pub(crate) async fn flush(&self) {
        self.bus
            .client()
            .flush()
            .await
            .expect("flushing the NATS client");
    }

    /// Waits at most `timeout` for the next fault and returns it with its arrival time.
    pub(crate) async fn next_fault(&mut self, timeout: Duration) -> Option<(FaultEvent, Instant)> {
        let message = tokio::time::timeout(timeout, self.faults.next())
            .await
            .ok()??;
        let received = Instant::now();
        let fault = FaultEvent::decode(message.payload).expect("a fault event payload");
        Some((fault, received))
    }
}

/// Registry entry of an instance that pushes heartbeats every `HEARTBEAT`.
pub(crate) fn heartbeating(
    workload: &str,
    instance: &str,
    generation: u64,
    state: InstanceState,
) -> Instance {
    Instance {
        r#ref: Some(InstanceRef {
            workload: workload.to_owned(),
            instance: instance.to_owned(),
            generation,
            node: "local".to_owned(),
        }),
        state: state.into(),
        pushes_heartbeats: true,
        heartbeat_interval: Some(aro_proto::time::duration(HEARTBEAT)),
        replicas: 2,
        started_at: Some(aro_proto::time::now()),
        updated_at: Some(aro_proto::time::now()),
        ..Instance::default()
    }
}

/// Registry entry of a serving instance that runs as process `pid` on node `local`, with
/// neither heartbeats nor a health check. Spawn the process first: the detector takes a pid
/// only from a process that started no earlier than the entry's `started_at`.
pub(crate) fn local_process(workload: &str, instance: &str, pid: u32) -> Instance {
    Instance {
        pid,
        pushes_heartbeats: false,
        heartbeat_interval: None,
        ..heartbeating(workload, instance, 1, InstanceState::Serving)
    }
}

/// Starts `sleep 300` as a stand-in for an instance.
pub(crate) fn sleeper(name: &str) -> Process {
    Process::spawn(name, Command::new("sleep").arg("300"))
}

/// Returns the digest `sha256:<hex>` of `content`.
pub(crate) fn sha256(content: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(content);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// Waits until the detector watches `instance`.
pub(crate) async fn wait_watched(detector: &Detector, instance: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if watched_ids(detector).await.iter().any(|id| id == instance) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the detector did not watch {instance} within 10 s");
}

/// Registry entry of an instance that is only probed over HTTP at `url`.
pub(crate) fn http_probed(
    workload: &str,
    instance: &str,
    url: String,
    interval: Duration,
) -> Instance {
    Instance {
        pushes_heartbeats: false,
        heartbeat_interval: None,
        health_check: Some(HealthCheck {
            check: Some(health_check::Check::HttpUrl(url)),
            interval: Some(aro_proto::time::duration(interval)),
            timeout: Some(aro_proto::time::duration(interval)),
        }),
        ..heartbeating(workload, instance, 1, InstanceState::Serving)
    }
}

/// Starts the sample workload on `port`, pushing heartbeats to `detector` every `HEARTBEAT`.
pub(crate) fn sample_workload(
    port: u16,
    detector: SocketAddr,
    workload: &str,
    instance: &str,
) -> Process {
    let mut command = Command::new(sample_workload_binary());
    command
        .env("ARO_PORT", port.to_string())
        .env("ARO_DETECTOR_ADDR", detector.to_string())
        .env(
            "ARO_HEARTBEAT_INTERVAL_MS",
            HEARTBEAT.as_millis().to_string(),
        )
        .env("ARO_WORKLOAD", workload)
        .env("ARO_INSTANCE", instance);
    Process::spawn(instance, &mut command)
}

/// Starts `python3 -m http.server` on `port`. It serves a listing of a temporary directory
/// that contains only its own log, and returns 404 for any other path.
pub(crate) fn python_http_server(port: u16) -> Process {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let mut command = Command::new("python3");
    command
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(dir.path())
        .arg(port.to_string());
    Process::spawn_in("http.server", dir, &mut command)
}

/// Waits until something accepts TCP connections on `port`.
pub(crate) async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// Path of the sample workload binary, built once per test run. It belongs to another
/// package, so Cargo does not build it for these tests by itself.
fn sample_workload_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let output = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "aro-sample-workload"])
                .current_dir(workspace)
                .output()
                .expect("running cargo build for the sample workload");
            assert!(
                output.status.success(),
                "building aro-sample-workload failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Path::new(env!("CARGO_BIN_EXE_aro-detector")).with_file_name("aro-sample-workload")
        })
        .clone()
}

/// Waits until the detector watches `instance` and has seen an arrival from it.
pub(crate) async fn wait_seen(detector: &Detector, instance: &str) {
    let mut client = detector.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let listed = client
            .list_watched(ListWatchedRequest::default())
            .await
            .expect("listing watched instances")
            .into_inner();
        let seen = listed.instances.iter().any(|watched| {
            watched.last_seen.is_some()
                && watched
                    .instance
                    .as_ref()
                    .and_then(|entry| entry.r#ref.as_ref())
                    .is_some_and(|reference| reference.instance == instance)
        });
        if seen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the detector saw no heartbeat or probe of {instance} within 10 s");
}

/// Returns the instance ids that the detector watches.
pub(crate) async fn watched_ids(detector: &Detector) -> Vec<String> {
    detector
        .client()
        .await
        .list_watched(ListWatchedRequest::default())
        .await
        .expect("listing watched instances")
        .into_inner()
        .instances
        .into_iter()
        .filter_map(|watched| Some(watched.instance?.r#ref?.instance))
        .collect()
}

/// Milliseconds from `observed_at` to `detected_at` of a fault.
pub(crate) fn time_to_detect(fault: &FaultEvent) -> Duration {
    let millis =
        aro_proto::time::millis_between(fault.observed_at.as_ref(), fault.detected_at.as_ref())
            .expect("a fault carries both timestamps");
    Duration::from_secs_f64(millis.max(0.0) / 1e3)
}
