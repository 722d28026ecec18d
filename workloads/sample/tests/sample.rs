//! The sample workload as a process: HTTP, heartbeats to a stand-in detector, its chaos hooks
//! and shutdown.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aro_proto::v1::detector_server::{Detector, DetectorServer};
use aro_proto::v1::{HeartbeatRequest, HeartbeatResponse, ListWatchedRequest, ListWatchedResponse};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, Response, Status};

/// A detector stand-in that records the heartbeats it receives.
#[derive(Debug, Default, Clone)]
struct Recorder {
    heartbeats: Arc<Mutex<Vec<HeartbeatRequest>>>,
}

impl Recorder {
    fn received(&self) -> Vec<HeartbeatRequest> {
        self.heartbeats.lock().expect("recorder lock").clone()
    }
}

#[tonic::async_trait]
impl Detector for Recorder {
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.heartbeats
            .lock()
            .expect("recorder lock")
            .push(request.into_inner());
        Ok(Response::new(HeartbeatResponse { known: true }))
    }

    async fn list_watched(
        &self,
        _request: Request<ListWatchedRequest>,
    ) -> Result<Response<ListWatchedResponse>, Status> {
        Ok(Response::new(ListWatchedResponse::default()))
    }
}

/// The workload process, killed when dropped.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

fn command(port: u16, detector: Option<SocketAddr>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aro-sample-workload"));
    command
        .env("ARO_PORT", port.to_string())
        .env("ARO_WORKLOAD", "web")
        .env("ARO_INSTANCE", "web-1")
        .env("ARO_HEARTBEAT_INTERVAL_MS", "50")
        .env_remove("ARO_DETECTOR_ADDR")
        .env_remove("ARO_DATA_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(detector) = detector {
        command.env("ARO_DETECTOR_ADDR", detector.to_string());
    }
    command
}

fn start(port: u16, detector: Option<SocketAddr>) -> Workload {
    Workload(
        command(port, detector)
            .spawn()
            .expect("starting the sample workload"),
    )
}

async fn get(port: u16, path: &str) -> Option<String> {
    request(port, "GET", path).await
}

async fn post(port: u16, path: &str) -> String {
    request(port, "POST", path)
        .await
        .unwrap_or_else(|| panic!("POST {path} got no answer"))
}

async fn request(port: u16, method: &str, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    let request = format!("{method} {path} HTTP/1.0\r\nHost: sample\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

async fn wait_http(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(response) = get(port, "/healthz").await {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sample workload did not serve HTTP on port {port} within 10 s");
}

async fn serve_recorder(addr: SocketAddr, recorder: Recorder) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("binding the stand-in detector");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DetectorServer::new(recorder))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let port = free_port();
    let _workload = start(port, None);
    let response = wait_http(port).await;
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    assert!(response.ends_with("ok"), "{response}");
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let port = free_port();
    let mut workload = start(port, None);
    wait_http(port).await;
    let pid = Pid::from_raw(i32::try_from(workload.0.id()).expect("pids fit in i32"));
    kill(pid, Signal::SIGTERM).expect("sending SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = workload.0.try_wait().expect("polling the workload") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the workload did not exit within 5 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn heartbeats_reach_detector_started_later() {
    let port = free_port();
    let detector = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let _workload = start(port, Some(detector));
    wait_http(port).await;
    // Heartbeats fail while no detector listens, and the workload keeps trying.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let recorder = Recorder::default();
    serve_recorder(detector, recorder.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.received().len() < 5 {
        assert!(
            Instant::now() < deadline,
            "fewer than 5 heartbeats within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = recorder.received();
    assert!(received.iter().all(|h| h.workload == "web"));
    assert!(received.iter().all(|h| h.instance == "web-1"));
    assert!(received.iter().all(|h| h.sent_at.is_some()));
    let sequences: Vec<u64> = received.iter().map(|h| h.sequence).collect();
    assert!(
        sequences.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "sequences {sequences:?}"
    );
}

#[tokio::test]
async fn no_heartbeats_without_an_interval() {
    let port = free_port();
    let detector = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let recorder = Recorder::default();
    serve_recorder(detector, recorder.clone()).await;
    let mut command = command(port, Some(detector));
    command.env_remove("ARO_HEARTBEAT_INTERVAL_MS");
    let _workload = Workload(command.spawn().expect("starting the sample workload"));
    wait_http(port).await;

    // At the 50 ms interval of the other tests, this is ten heartbeats.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(recorder.received().is_empty());
}

/// Status code of an HTTP response.
fn status_code(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// Value of `name` in the workload's `GET /chaos` state.
async fn chaos_state(port: u16, name: &str) -> String {
    let response = get(port, "/chaos").await.expect("GET /chaos answers");
    let prefix = format!("{name}: ");
    response
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from {response:?}"))
        .to_owned()
}

/// Waits until the recorder contains `count` more heartbeats than `after`, and returns them
/// all.
async fn heartbeats_after(
    recorder: &Recorder,
    after: usize,
    count: usize,
) -> Vec<HeartbeatRequest> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let received = recorder.received();
        if received.len() >= after + count {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {count} heartbeats after the first {after} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a stand-in detector and a workload that sends heartbeats to it.
async fn start_with_recorder(data_file: Option<&Path>) -> (Workload, Recorder, u16) {
    let port = free_port();
    let detector = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let recorder = Recorder::default();
    serve_recorder(detector, recorder.clone()).await;
    let mut command = command(port, Some(detector));
    if let Some(path) = data_file {
        command.env("ARO_DATA_FILE", path);
    }
    let workload = Workload(command.spawn().expect("starting the sample workload"));
    wait_http(port).await;
    (workload, recorder, port)
}

/// sha256 of "pristine".
const PRISTINE_DIGEST: &str =
    "sha256:9f2235c7754a56a9f0bc89dc2eb821ba0e52189db6dba93ee03d22337ae9739c";

#[tokio::test]
async fn heartbeats_carry_data_checksum_and_memory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_file = dir.path().join("data.txt");
    std::fs::write(&data_file, "pristine").expect("writing the data file");
    let (_workload, recorder, port) = start_with_recorder(Some(&data_file)).await;
    let received = heartbeats_after(&recorder, 0, 3).await;
    for heartbeat in &received {
        assert_eq!(
            heartbeat.data_checksums.get("primary").map(String::as_str),
            Some(PRISTINE_DIGEST)
        );
        assert!(heartbeat.rss_bytes > 1 << 20, "rss {}", heartbeat.rss_bytes);
    }
    let data = get(port, "/data").await.expect("GET /data answers");
    assert!(data.ends_with("\r\n\r\npristine"), "{data:?}");
}

#[tokio::test]
async fn generated_data_checksum_is_stable() {
    let (_first, first_recorder, _) = start_with_recorder(None).await;
    let (_second, second_recorder, _) = start_with_recorder(None).await;
    let first = heartbeats_after(&first_recorder, 0, 1).await;
    let second = heartbeats_after(&second_recorder, 0, 1).await;
    let checksum = first[0].data_checksums.get("primary");
    assert!(checksum.is_some_and(|c| c.starts_with("sha256:")));
    assert_eq!(checksum, second[0].data_checksums.get("primary"));
}

#[tokio::test]
async fn stop_heartbeats_silences_them_until_reset() {
    let (_workload, recorder, port) = start_with_recorder(None).await;
    heartbeats_after(&recorder, 0, 2).await;
    let response = post(port, "/chaos/stop-heartbeats").await;
    assert_eq!(status_code(&response), 200, "{response}");
    // A heartbeat already on its way may still arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = recorder.received().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recorder.received().len(), stopped_at);
    assert_eq!(chaos_state(port, "heartbeats").await, "stopped");
    let health = get(port, "/healthz").await.expect("still serving HTTP");
    assert_eq!(status_code(&health), 200);

    post(port, "/chaos/reset").await;
    let resumed = heartbeats_after(&recorder, stopped_at, 2).await;
    let sequences: Vec<u64> = resumed.iter().map(|h| h.sequence).collect();
    assert!(
        sequences.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "sequences {sequences:?}"
    );
}

#[tokio::test]
async fn corrupt_data_changes_the_reported_checksum_until_reset() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_file = dir.path().join("data.txt");
    std::fs::write(&data_file, "pristine").expect("writing the data file");
    let (_workload, recorder, port) = start_with_recorder(Some(&data_file)).await;
    let response = post(port, "/chaos/corrupt-data").await;
    assert_eq!(status_code(&response), 200, "{response}");
    let after = recorder.received().len() + 1;
    let corrupt = heartbeats_after(&recorder, after, 1).await;
    let reported = corrupt.last().and_then(|h| h.data_checksums.get("primary"));
    assert!(
        reported.is_some_and(|c| c != PRISTINE_DIGEST),
        "{reported:?}"
    );
    let data = get(port, "/data").await.expect("GET /data answers");
    assert!(!data.ends_with("pristine"), "{data:?}");

    post(port, "/chaos/reset").await;
    let after = recorder.received().len() + 1;
    let intact = heartbeats_after(&recorder, after, 1).await;
    let reported = intact.last().and_then(|h| h.data_checksums.get("primary"));
    assert_eq!(reported.map(String::as_str), Some(PRISTINE_DIGEST));
}

#[tokio::test]
async fn log_storm_writes_error_lines_to_stderr() {
    let port = free_port();
    let mut child = command(port, None)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the sample workload");
    let stderr = child.stderr.take().expect("stderr is piped");
    let _workload = Workload(child);
    wait_http(port).await;
    let response = post(port, "/chaos/log-storm?lines=500").await;
    assert_eq!(status_code(&response), 202, "{response}");

    let errors = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.starts_with("ERROR "))
            .take(500)
            .collect::<Vec<_>>()
    });
    let errors = tokio::time::timeout(Duration::from_secs(10), errors)
        .await
        .expect("500 error lines within 10 s")
        .expect("reading stderr");
    assert_eq!(errors.len(), 500);
    assert_eq!(
        errors[0],
        "ERROR request 4711 failed: connection refused to db-1:5432"
    );
}

#[tokio::test]
async fn grow_memory_raises_resident_memory_until_reset() {
    let port = free_port();
    let _workload = start(port, None);
    wait_http(port).await;
    let before: u64 = chaos_state(port, "resident_bytes")
        .await
        .parse()
        .expect("a number");
    let response = post(port, "/chaos/grow-memory?mib_per_sec=64&max_mib=48").await;
    assert_eq!(status_code(&response), 200, "{response}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while chaos_state(port, "grown_bytes").await != (48 << 20).to_string() {
        assert!(
            Instant::now() < deadline,
            "the workload did not allocate 48 MiB within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resident: u64 = chaos_state(port, "resident_bytes")
        .await
        .parse()
        .expect("a number");
    assert!(
        resident >= before + (40 << 20),
        "resident memory {resident} did not grow by 40 MiB from {before}"
    );
    post(port, "/chaos/reset").await;
    assert_eq!(chaos_state(port, "grown_bytes").await, "0");
}

#[tokio::test]
async fn bad_hook_parameters_are_rejected() {
    let port = free_port();
    let _workload = start(port, None);
    wait_http(port).await;
    let cases = [
        ("/chaos/log-storm?lines=0", "invalid lines \"0\""),
        ("/chaos/log-storm?line=5", "unknown parameter \"line\""),
        (
            "/chaos/grow-memory?mib_per_sec=lots",
            "invalid mib_per_sec \"lots\"",
        ),
        ("/chaos/grow-memory?max_mib=0", "invalid max_mib \"0\""),
    ];
    for (path, mention) in cases {
        let response = post(port, path).await;
        assert_eq!(status_code(&response), 400, "{path}: {response}");
        assert!(response.contains(mention), "{path}: {response}");
    }
    assert_eq!(chaos_state(port, "grown_bytes").await, "0");
}

#[test]
fn missing_data_file_stops_start_up() {
    let output = command(free_port(), None)
        .env("ARO_DATA_FILE", "/nonexistent/aro/data.txt")
        .stderr(Stdio::piped())
        .output()
        .expect("running the sample workload");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/aro/data.txt"), "{stderr}");
}

#[test]
fn detector_address_requires_instance() {
    let output = Command::new(env!("CARGO_BIN_EXE_aro-sample-workload"))
        .env("ARO_PORT", "1")
        .env("ARO_DETECTOR_ADDR", "127.0.0.1:1")
        .env("ARO_WORKLOAD", "web")
        .env_remove("ARO_INSTANCE")
        .output()
        .expect("running the sample workload");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--instance"), "{stderr}");
}
