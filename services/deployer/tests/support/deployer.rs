//! The real `aro-deployer` binary, run against a workload file for one test. Its log goes to
//! a file that is printed when the test fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::nats_server::free_port;

/// Flags of one deployer run.
#[derive(Clone, Debug)]
pub struct Options {
    pub enable_chaos: bool,
    pub isolation_retention: &'static str,
    pub stop_grace: &'static str,
    /// Files written beside the workload file before start, as (name, content).
    pub files: Vec<(&'static str, &'static str)>,
    /// Further flags, such as `--runtime docker`.
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            enable_chaos: true,
            isolation_retention: "5m",
            stop_grace: "2s",
            files: Vec::new(),
            extra_args: Vec::new(),
        }
    }
}

/// A running deployer.
#[derive(Debug)]
pub struct Deployer {
    child: Child,
    grpc_addr: SocketAddr,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Deployer {
    /// Writes `fleet` to a workload file and starts the deployer on it.
    pub fn start(nats_url: &str, fleet: &str, options: &Options) -> Self {
        let dir = tempfile::tempdir().expect("creating the deployer's directory");
        let workloads = dir.path().join("fleet.toml");
        std::fs::write(&workloads, fleet).expect("writing the workload file");
        for (name, content) in &options.files {
            std::fs::write(dir.path().join(name), content).expect("writing a file");
        }
        let log = dir.path().join("deployer.log");
        let log_file = std::fs::File::create(&log).expect("creating the log file");

        let grpc_addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("a valid address");
        let mut command = Command::new(env!("CARGO_BIN_EXE_aro-deployer"));
        command
            .arg("--workloads")
            .arg(&workloads)
            .args(["--nats-url", nats_url])
            .args(["--grpc-addr", &grpc_addr.to_string()])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--detector-addr", "127.0.0.1:1"])
            .args(["--isolation-retention", options.isolation_retention])
            .args(["--observe-period", "1s"])
            .args(["--stop-grace", options.stop_grace])
            .args(["--shutdown-grace", "5s"])
            .env("RUST_LOG", "info,aro_deployer=debug")
            .env_remove("ARO_ENABLE_CHAOS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if options.enable_chaos {
            command.arg("--enable-chaos");
        }
        command.args(&options.extra_args);
        let child = command.spawn().expect("starting aro-deployer");
        Self {
            child,
            grpc_addr,
            log,
            dir,
        }
    }

    /// Path of a file beside the workload file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `http://` URL of the gRPC server.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Sends `signal` to the deployer.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"));
        kill(pid, signal).expect("signalling the deployer");
    }

    /// Waits for the deployer to exit.
    ///
    /// # Panics
    ///
    /// Panics when it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the deployer") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the deployer did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the deployer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Deployer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- aro-deployer log ---\n{}", self.log());
        }
    }
}
