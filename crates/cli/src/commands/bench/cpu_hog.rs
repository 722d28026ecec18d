//! Processes that keep every core busy, to measure the detector on a loaded machine.

use std::process::Stdio;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tracing::warn;

/// Busy-loop shell processes, one per core asked for. They are killed when [`CpuHog::stop`]
/// runs, or when the hog is dropped.
#[derive(Debug)]
pub(super) struct CpuHog {
    children: Vec<Child>,
}

impl CpuHog {
    /// Starts `count` processes that each spin on one core.
    ///
    /// # Errors
    ///
    /// Fails when `sh` cannot be started; the processes already started are killed.
    pub(super) fn start(count: usize) -> anyhow::Result<Self> {
        let mut hog = Self {
            children: Vec::with_capacity(count),
        };
        for _ in 0..count {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting a busy-loop process with sh")?;
            hog.children.push(child);
        }
        Ok(hog)
    }

    /// Kills every process and waits for each.
    pub(super) async fn stop(mut self) {
        for child in &mut self.children {
            if let Err(error) = child.kill().await {
                warn!(pid = ?child.id(), %error, "killing a busy-loop process failed");
            }
        }
    }
}
