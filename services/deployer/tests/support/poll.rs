//! Waiting for conditions of processes and of the deployer's effects.

use std::future::Future;
use std::time::Duration;

/// Maximum wait for anything a test expects.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` until it returns a value.
///
/// # Panics
///
/// Panics naming `description` when nothing came within [`WAIT`].
pub async fn eventually<T, F, Fut>(description: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {description}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scheduler state of a process (`R`, `S`, `T`, `Z`…), or `None` when it does not exist.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    after_name.chars().next()
}

/// Returns true when the process exists and has not exited.
pub fn is_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| state != 'Z' && state != 'X')
}

/// Returns true when the process is stopped (SIGSTOP).
pub fn is_stopped(pid: u32) -> bool {
    process_state(pid) == Some('T')
}

/// Waits until the process is stopped (`T`), or running again when `stopped` is false.
/// Signals take effect once the process is scheduled, shortly after `kill` returns.
pub async fn wait_stopped(pid: u32, stopped: bool) {
    eventually(&format!("process {pid} stopped: {stopped}"), || async {
        (is_stopped(pid) == stopped).then_some(())
    })
    .await;
}
