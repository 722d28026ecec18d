use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tracing::info;

use crate::process::free_port;
use crate::{Error, Result};

/// A `nats-server` with JetStream on a loopback port, storing into a directory of its own.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `binary` on a free port with its JetStream store and log under `dir`, and waits
    /// until it accepts connections.
    ///
    /// # Errors
    ///
    /// Returns an error when it cannot be spawned or does not listen within 10 s.
    pub async fn start(binary: &Path, dir: &Path) -> Result<Self> {
        let mut server = Self {
            binary: binary.to_owned(),
            port: free_port(),
            store_dir: dir.join("jetstream"),
            log: dir.join("nats-server.log"),
            child: None,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// Client URL of the server.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<()> {
        let io = |operation: &str, source| Error::Io {
            operation: operation.to_owned(),
            source,
        };
        std::fs::create_dir_all(&self.store_dir)
            .map_err(|e| io("creating the JetStream store", e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io("opening the nats-server log", e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| io("opening the nats-server log", e))?;
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: self.binary.clone(),
                source,
            })?;
        self.child = Some(child);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                info!(port = self.port, "nats-server ready");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(Error::NotReady {
            what: "nats-server".to_owned(),
            seconds: 10,
            log: self.log.clone(),
        })
    }

    /// Stops the server with SIGTERM, or SIGKILL after 5 s.
    pub async fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::stack::terminate(child, Duration::from_secs(5)).await;
        }
    }

    /// Kills the server at once, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port with the same store, so JetStream recovers
    /// what it had stored.
    ///
    /// # Errors
    ///
    /// Returns an error when it does not listen again within 10 s.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.spawn().await
    }
}
