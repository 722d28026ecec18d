//! The workload's resident memory, which heartbeats report, and memory growth on purpose.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::info;

const MIB: usize = 1 << 20;

/// Time between two allocations of a memory growth.
const GROWTH_TICK: Duration = Duration::from_millis(100);

/// Resident memory of this process in bytes, from `VmRSS` in `/proc/self/status`, which the
/// kernel gives in kB (KiB). `None` where there is no such file.
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
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

/// Memory allocated on purpose, and the task that allocates more.
#[derive(Debug, Default)]
pub(crate) struct Growth {
    blocks: Arc<Mutex<Vec<Vec<u8>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Growth {
    /// Starts allocating `mib_per_sec` MiB per second, in steps of a tenth of that, until
    /// `max_mib` MiB are allocated in all. Every page is written, so the memory is resident
    /// at once. Replaces a growth that is already running; what it allocated stays.
    pub(crate) fn start(&self, mib_per_sec: usize, max_mib: usize) {
        let blocks = Arc::clone(&self.blocks);
        let step = (mib_per_sec * MIB / 10).max(1);
        let max_bytes = max_mib * MIB;
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(GROWTH_TICK);
            loop {
                ticker.tick().await;
                let mut blocks = blocks.lock().expect("growth lock poisoned");
                let grown: usize = blocks.iter().map(Vec::len).sum();
                if grown >= max_bytes {
                    info!(grown_bytes = grown, "memory growth reached its maximum");
                    return;
                }
                blocks.push(vec![0xA5; step.min(max_bytes - grown)]);
            }
        });
        if let Some(previous) = self.task().replace(task) {
            previous.abort();
        }
    }

    /// Stops growing and frees what was allocated.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task().take() {
            task.abort();
        }
        let mut blocks = self.blocks.lock().expect("growth lock poisoned");
        blocks.clear();
        blocks.shrink_to_fit();
    }

    /// Bytes allocated on purpose so far.
    pub(crate) fn grown_bytes(&self) -> usize {
        self.blocks
            .lock()
            .expect("growth lock poisoned")
            .iter()
            .map(Vec::len)
            .sum()
    }

    fn task(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.task.lock().expect("growth task lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_resident_memory_is_known() {
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
    }

    #[tokio::test(start_paused = true)]
    async fn growth_stops_at_its_maximum_and_is_freed() {
        let growth = Growth::default();
        growth.start(10, 3);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(growth.grown_bytes(), 2 * MIB);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(growth.grown_bytes(), 3 * MIB);
        growth.stop();
        assert_eq!(growth.grown_bytes(), 0);
    }
}
