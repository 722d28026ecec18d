//! Bookkeeping of fault injections: which are still active, pending crash-loop kills,
//! backups of corrupted files, and idempotency keys.

use std::collections::HashMap;
use std::time::SystemTime;

use aro_proto::v1::ChaosKind;

use super::corruption::FileCorruption;

/// Injections kept for idempotency keys and listing; the oldest inactive ones are dropped
/// past this number.
const MAX_KEPT: usize = 1024;

/// Default number of restarts a crash loop kills after the first kill.
pub const DEFAULT_CRASH_LOOP_COUNT: u32 = 2;

/// Error lines one log storm writes.
pub const LOG_STORM_LINES: u32 = 2000;

/// Time in which injected memory growth reaches the instance's memory limit.
pub const GROWTH_TO_LIMIT_SECS: u64 = 16;

/// Memory growth rate for an instance without a memory limit, in MiB per second.
pub const UNLIMITED_GROWTH_MIB_PER_SEC: u64 = 16;

/// Total growth for an instance without a memory limit, in MiB.
pub const UNLIMITED_GROWTH_MAX_MIB: u64 = 1024;

/// Returns the memory growth to inject into an instance with memory limit `limit` bytes, as
/// (MiB per second, MiB in all). The growth reaches the limit in [`GROWTH_TO_LIMIT_SECS`]
/// seconds, slowly enough for a trend to show, and stops at one and a half times the limit,
/// past which the runtime ends the instance anyway.
pub fn memory_growth(limit: Option<u64>) -> (u64, u64) {
    const MIB: u64 = 1 << 20;
    match limit {
        Some(limit) => {
            let limit_mib = limit.div_ceil(MIB);
            let rate = limit_mib.div_ceil(GROWTH_TO_LIMIT_SECS).max(1);
            (rate, limit_mib + limit_mib.div_ceil(2))
        }
        None => (UNLIMITED_GROWTH_MIB_PER_SEC, UNLIMITED_GROWTH_MAX_MIB),
    }
}

/// One fault injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub id: String,
    pub kind: ChaosKind,
    pub workload: String,
    pub instance: String,
    /// Generation that was hit last.
    pub generation: u64,
    /// When the signal was sent.
    pub injected_at: SystemTime,
    /// Crash-loop kills still to come.
    pub remaining: u32,
    /// For file corruption: what was overwritten, so that it can be put back.
    pub file: Option<FileCorruption>,
    /// False once the injection is over: reverted, halted, or its target moved on.
    pub active: bool,
}

/// Returns whether a fault of `kind` lives in the target process, so that it ends when that
/// process is restarted, replaced or isolated: a hang, and the faults a workload injects
/// into itself through its chaos hooks.
pub fn lives_in_process(kind: ChaosKind) -> bool {
    matches!(
        kind,
        ChaosKind::Hang
            | ChaosKind::StopHeartbeats
            | ChaosKind::GrowMemory
            | ChaosKind::CorruptData
    )
}

/// Current status of an injection's target instance in the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetStatus {
    Current { generation: u64 },
    Isolated,
    Gone,
}

/// Every injection of this deployer run.
#[derive(Debug, Default)]
pub struct ChaosBook {
    injections: Vec<Injection>,
    keys: HashMap<String, String>,
}

impl ChaosBook {
    /// Returns the injection first made with idempotency key `key`.
    pub fn by_key(&self, key: &str) -> Option<&Injection> {
        let id = self.keys.get(key)?;
        self.injections.iter().find(|injection| &injection.id == id)
    }

    /// Records a new injection and returns it as recorded. A kill or a log storm is over as
    /// soon as it is sent. A fault that lives in the process, a corrupted file and a crash
    /// loop with kills to come stay active.
    pub fn insert(&mut self, mut injection: Injection, key: Option<&str>) -> Injection {
        injection.active = match injection.kind {
            ChaosKind::CorruptFile => true,
            ChaosKind::CrashLoop => injection.remaining > 0,
            kind => lives_in_process(kind),
        };
        if let Some(key) = key.filter(|key| !key.is_empty()) {
            self.keys.insert(key.to_owned(), injection.id.clone());
        }
        self.injections.push(injection.clone());
        self.trim();
        injection
    }

    /// Consumes one pending crash-loop kill of `instance`, which just started `generation`
    /// in place. Returns the injection, updated, when the new generation must be killed.
    pub fn take_crash_loop_kill(
        &mut self,
        workload: &str,
        instance: &str,
        generation: u64,
    ) -> Option<Injection> {
        let injection = self.injections.iter_mut().find(|injection| {
            injection.active
                && injection.kind == ChaosKind::CrashLoop
                && injection.workload == workload
                && injection.instance == instance
                && injection.generation < generation
        })?;
        injection.remaining = injection.remaining.saturating_sub(1);
        injection.generation = generation;
        injection.active = injection.remaining > 0;
        Some(injection.clone())
    }

    /// Ends an active injection (a hang that was resumed). Returns it when it was active.
    pub fn finish(&mut self, id: &str) -> Option<Injection> {
        let injection = self
            .injections
            .iter_mut()
            .find(|injection| injection.id == id && injection.active)?;
        injection.active = false;
        Some(injection.clone())
    }

    /// Returns whether injection `id` is active and its target is still at the hit
    /// generation and not isolated, the condition for resuming a hang.
    pub fn is_current(&self, id: &str, status: TargetStatus) -> bool {
        self.injections.iter().any(|injection| {
            injection.id == id
                && injection.active
                && status
                    == TargetStatus::Current {
                        generation: injection.generation,
                    }
        })
    }

    /// Active injections, after ending those whose target moved on: a fault that lives in
    /// the process ends when its generation is no longer current, a crash loop when its
    /// instance is isolated or gone. A corrupted file outlives its instance, so it stays
    /// active until it is halted.
    pub fn active(&mut self, status: impl Fn(&str, &str) -> TargetStatus) -> Vec<Injection> {
        for injection in self.injections.iter_mut().filter(|i| i.active) {
            let target = status(&injection.workload, &injection.instance);
            injection.active = match (injection.kind, target) {
                (ChaosKind::CorruptFile, _) => true,
                (ChaosKind::CrashLoop, TargetStatus::Current { .. }) => injection.remaining > 0,
                (kind, TargetStatus::Current { generation }) => {
                    lives_in_process(kind) && generation == injection.generation
                }
                _ => false,
            };
        }
        self.injections
            .iter()
            .filter(|injection| injection.active)
            .cloned()
            .collect()
    }

    /// Ends every active injection and returns them, so the caller can revert each.
    pub fn halt_all(&mut self, status: impl Fn(&str, &str) -> TargetStatus) -> Vec<Injection> {
        let halted = self.active(status);
        for injection in &mut self.injections {
            injection.active = false;
        }
        halted
    }

    /// Ends every active file corruption and returns them, newest first, so that undoing
    /// them in that order restores overlapping ranges correctly.
    pub fn end_file_corruptions(&mut self) -> Vec<Injection> {
        let mut ended: Vec<Injection> = self
            .injections
            .iter_mut()
            .filter(|injection| injection.active && injection.kind == ChaosKind::CorruptFile)
            .map(|injection| {
                injection.active = false;
                injection.clone()
            })
            .collect();
        ended.reverse();
        ended
    }

    fn trim(&mut self) {
        while self.injections.len() > MAX_KEPT {
            let Some(position) = self.injections.iter().position(|i| !i.active) else {
                return;
            };
            let removed = self.injections.remove(position);
            self.keys.retain(|_, id| *id != removed.id);
        }
    }
}

#[cfg(test)]
mod tests;
