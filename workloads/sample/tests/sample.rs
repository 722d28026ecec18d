//! The sample workload as a process: HTTP, heartbeats to a stand-in detector, and shutdown.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
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

fn start(port: u16, detector: Option<SocketAddr>) -> Workload {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aro-sample-workload"));
    command
        .env("ARO_PORT", port.to_string())
        .env("ARO_WORKLOAD", "web")
        .env("ARO_INSTANCE", "web-1")
        .env("ARO_HEARTBEAT_INTERVAL_MS", "50")
        .env_remove("ARO_DETECTOR_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(detector) = detector {
        command.env("ARO_DETECTOR_ADDR", detector.to_string());
    }
    Workload(command.spawn().expect("starting the sample workload"))
}

async fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: sample\r\n\r\n");
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
