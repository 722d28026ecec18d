//! Soft enforcement of an instance's memory limit: the runtime samples the process's
//! resident memory and kills the process once it exceeds the limit, the way a container
//! runtime's out-of-memory kill would, without needing cgroups.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tracing::{error, warn};

use super::send;
use crate::backend::{ExitWatch, InstanceKey};

/// Time between two samples of an instance's resident memory. A process that allocates
/// quickly overshoots its limit by what it allocates in one interval before it is killed.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Kills the process group of `pid` with SIGKILL once the process's resident memory exceeds
/// `limit` bytes, after setting `oom_killed`. Returns when the process exited or was killed.
///
/// NOTE: only the process the deployer started is measured. Memory of processes it starts
/// itself does not count against the limit, unlike in a cgroup.
pub(super) async fn enforce_limit(
    key: InstanceKey,
    pid: u32,
    limit: u64,
    oom_killed: Arc<AtomicBool>,
    mut exit: ExitWatch,
) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = exit.wait() => return,
            _ = ticker.tick() => {}
        }
        // The child is not reaped before its exit watch resolves, so `pid` still names it.
        let Some(resident) = resident_bytes(pid) else {
            continue;
        };
        if resident <= limit {
            continue;
        }
        oom_killed.store(true, Ordering::SeqCst);
        warn!(
            instance = %key.instance,
            generation = key.generation,
            resident_bytes = resident,
            limit_bytes = limit,
            "instance exceeded its memory limit, killing it"
        );
        if let Err(error) = send(&key, pid, Signal::SIGKILL) {
            error!(instance = %key.instance, %error, "killing an instance over its memory limit failed");
        }
        return;
    }
}

/// Resident memory of process `pid` in bytes, from `VmRSS` in `/proc/<pid>/status`. `None`
/// when the process is gone or the kernel does not report it (kernel threads, zombies).
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// Reads the `VmRSS:` line of a `/proc/<pid>/status` text, which the kernel gives in kB
/// (KiB).
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tsleep\nVmPeak:\t    8000 kB\nVmRSS:\t    1536 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1536 * 1024));
    }

    #[test]
    fn missing_vm_rss_is_none() {
        assert_eq!(
            parse_vm_rss("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            None
        );
    }

    #[test]
    fn own_process_has_resident_memory() {
        let resident = resident_bytes(std::process::id()).expect("this process has VmRSS");
        assert!(resident > 0);
    }
}
