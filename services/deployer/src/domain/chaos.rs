//! Bookkeeping of fault injections: their targets and states, pending crash-loop kills,
//! backups of corrupted files, deadlines and idempotency keys.

pub mod selection;

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use aro_proto::v1::ChaosKind;

use super::corruption::FileCorruption;

/// Ended injections kept for idempotency keys, GetFault and ListFaults; the oldest are
/// dropped past this number. Active injections are never dropped.
pub const MAX_KEPT: usize = 1024;

/// Default number of restarts a crash loop kills after the first kill.
pub const DEFAULT_CRASH_LOOP_COUNT: u32 = 2;

/// Error lines one log storm writes by default.
pub const LOG_STORM_LINES: u32 = 2000;

/// Time in which injected memory growth reaches the instance's memory limit.
pub const GROWTH_TO_LIMIT_SECS: u64 = 16;

/// Memory growth rate for an instance without a memory limit, in MiB per second.
pub const UNLIMITED_GROWTH_MIB_PER_SEC: u64 = 16;

/// Total growth for an instance without a memory limit, in MiB.
pub const UNLIMITED_GROWTH_MAX_MIB: u64 = 1024;

/// Maximum length of an idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

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

/// Parameters of an injection, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Params {
    None,
    /// Restarts in place to kill after the first kill.
    CrashLoop {
        restarts: u32,
    },
    /// Declared file to corrupt; empty for the first one.
    CorruptFile {
        path: String,
    },
    LogStorm {
        lines: u32,
    },
    /// 0 for either field means: derived from the memory limit.
    GrowMemory {
        mib_per_sec: u64,
        max_mib: u64,
    },
}

/// Most error lines one log storm may write.
pub const MAX_LOG_STORM_LINES: u32 = 1_000_000;

impl Params {
    /// Name of the parameters' field in the request.
    pub fn field(&self) -> &'static str {
        match self {
            Self::None => "params",
            Self::CrashLoop { .. } => "params.crash_loop",
            Self::CorruptFile { .. } => "params.corrupt_file",
            Self::LogStorm { .. } => "params.log_storm",
            Self::GrowMemory { .. } => "params.grow_memory",
        }
    }
}

/// Checks that `params` fit `kind` and fills in the defaults. Returns the field and the
/// reason of a mismatch.
pub fn resolve_params(kind: ChaosKind, params: Params) -> Result<Params, (&'static str, String)> {
    match (kind, params) {
        (ChaosKind::CrashLoop, Params::None | Params::CrashLoop { restarts: 0 }) => {
            Ok(Params::CrashLoop {
                restarts: DEFAULT_CRASH_LOOP_COUNT,
            })
        }
        (ChaosKind::CorruptFile, Params::None) => Ok(Params::CorruptFile {
            path: String::new(),
        }),
        (ChaosKind::LogStorm, Params::None | Params::LogStorm { lines: 0 }) => {
            Ok(Params::LogStorm {
                lines: LOG_STORM_LINES,
            })
        }
        (ChaosKind::LogStorm, Params::LogStorm { lines }) if lines > MAX_LOG_STORM_LINES => Err((
            "params.log_storm.lines",
            format!("{lines} is above the maximum of {MAX_LOG_STORM_LINES}"),
        )),
        (ChaosKind::GrowMemory, Params::None) => Ok(Params::GrowMemory {
            mib_per_sec: 0,
            max_mib: 0,
        }),
        (
            ChaosKind::GrowMemory,
            Params::GrowMemory {
                mib_per_sec,
                max_mib,
            },
        ) if max_mib != 0 && mib_per_sec > max_mib => Err((
            "params.grow_memory.mib_per_sec",
            format!("{mib_per_sec} is above max_mib {max_mib}"),
        )),
        (ChaosKind::CrashLoop, params @ Params::CrashLoop { .. })
        | (ChaosKind::CorruptFile, params @ Params::CorruptFile { .. })
        | (ChaosKind::LogStorm, params @ Params::LogStorm { .. })
        | (ChaosKind::GrowMemory, params @ Params::GrowMemory { .. })
        | (_, params @ Params::None) => Ok(params),
        (kind, params) => Err((
            params.field(),
            format!(
                "given for kind {}, which takes {}",
                kind.as_str_name(),
                match kind {
                    ChaosKind::CrashLoop => "params.crash_loop",
                    ChaosKind::CorruptFile => "params.corrupt_file",
                    ChaosKind::LogStorm => "params.log_storm",
                    ChaosKind::GrowMemory => "params.grow_memory",
                    _ => "no parameters",
                }
            ),
        )),
    }
}

/// State of an injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Active,
    /// Took effect, nothing to undo.
    Completed,
    /// Its duration ran out and it was undone.
    Expired,
    Cancelled,
    Halted,
    /// Undone or closed because the deployer stopped or found it left by its earlier run.
    Reverted,
    /// The engine recovered every target first.
    TargetRecovered,
}

impl State {
    /// Phase of the chaos event that reports a change to this state.
    pub fn phase(self) -> &'static str {
        match self {
            Self::Active => "injected",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Halted => "halted",
            Self::Reverted => "reverted",
            Self::TargetRecovered => "target-recovered",
        }
    }
}

/// Returns whether an injection of `kind` can be undone. A kill and a log storm are over as
/// soon as they are sent.
pub fn revertible(kind: ChaosKind) -> bool {
    !matches!(
        kind,
        ChaosKind::Kill | ChaosKind::LogStorm | ChaosKind::Unspecified
    )
}

/// Returns whether a fault of `kind` lives in the target process or container, so that it
/// ends when that instance is restarted, replaced or isolated.
pub fn lives_in_instance(kind: ChaosKind) -> bool {
    matches!(
        kind,
        ChaosKind::Hang
            | ChaosKind::Partition
            | ChaosKind::StopHeartbeats
            | ChaosKind::GrowMemory
            | ChaosKind::CorruptData
    )
}

/// Returns whether a fault of `kind` is made and undone through the workload's chaos hooks.
pub fn uses_hooks(kind: ChaosKind) -> bool {
    matches!(
        kind,
        ChaosKind::StopHeartbeats | ChaosKind::GrowMemory | ChaosKind::CorruptData
    )
}

/// One instance an injection hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub workload: String,
    pub instance: String,
    /// Generation that was hit last.
    pub generation: u64,
    /// False once the fault no longer affects this instance.
    pub active: bool,
    /// Crash-loop kills still to come.
    pub remaining: u32,
    /// Reason the fault ended for this instance.
    pub message: String,
}

/// One fault injection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub id: String,
    pub kind: ChaosKind,
    pub params: Params,
    pub targets: Vec<Target>,
    /// When the fault took effect.
    pub injected_at: SystemTime,
    /// When the deployer undoes the fault by itself.
    pub expires_at: Option<SystemTime>,
    pub state: State,
    pub ended_at: Option<SystemTime>,
    /// Description of the injection's effect, replaced by the reason it ended.
    pub message: String,
    pub idempotency_key: String,
    /// For file corruption: what was overwritten, in order, so that it can be put back.
    pub files: Vec<CorruptedFile>,
    /// Deployer run that made the injection.
    pub run_id: String,
    /// Name of the runtime that ran the targets.
    pub runtime: String,
}

/// A file corruption and the instance through whose runtime it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptedFile {
    pub workload: String,
    pub instance: String,
    pub generation: u64,
    pub corruption: FileCorruption,
}

impl Injection {
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// Workloads the injection hit, each once.
    pub fn workloads(&self) -> BTreeSet<&str> {
        self.targets
            .iter()
            .map(|target| target.workload.as_str())
            .collect()
    }

    pub fn hits_workload(&self, workload: &str) -> bool {
        self.targets
            .iter()
            .any(|target| target.workload == workload)
    }

    /// Sets the state a fresh injection starts in: active when it left something to undo,
    /// completed otherwise.
    pub fn start(&mut self) {
        let active = match self.kind {
            ChaosKind::CorruptFile => true,
            ChaosKind::CrashLoop => self.targets.iter().any(|t| t.remaining > 0),
            kind => lives_in_instance(kind),
        };
        for target in &mut self.targets {
            target.active = active && (self.kind != ChaosKind::CrashLoop || target.remaining > 0);
        }
        if active {
            self.state = State::Active;
        } else {
            self.state = State::Completed;
            self.ended_at = Some(self.injected_at);
        }
    }

    /// Builds a fresh injection of `kind` at the Unix epoch into generation 1 of `targets`
    /// of workload `web`, for tests.
    #[cfg(test)]
    pub(crate) fn example(id: &str, kind: ChaosKind, targets: &[(&str, u32)]) -> Self {
        let mut injection = Self {
            id: id.to_owned(),
            kind,
            params: Params::None,
            targets: targets
                .iter()
                .map(|(instance, remaining)| Target {
                    workload: "web".to_owned(),
                    instance: (*instance).to_owned(),
                    generation: 1,
                    active: false,
                    remaining: *remaining,
                    message: String::new(),
                })
                .collect(),
            injected_at: SystemTime::UNIX_EPOCH,
            expires_at: None,
            state: State::Active,
            ended_at: None,
            message: String::new(),
            idempotency_key: String::new(),
            files: Vec::new(),
            run_id: "run-1".to_owned(),
            runtime: "process".to_owned(),
        };
        injection.start();
        injection
    }

    /// Ends the injection in `state` at `at`, marking every target inactive.
    pub fn end(&mut self, state: State, at: SystemTime, message: String) {
        self.state = state;
        self.ended_at = Some(at);
        self.message = message;
        for target in &mut self.targets {
            target.active = false;
        }
    }
}

/// Current status of an injection's target instance in the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetStatus {
    Current { generation: u64 },
    Isolated,
    Gone,
}

/// A crash-loop kill due on a just-restarted instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashLoopKill {
    pub id: String,
    /// Kills still to come after this one.
    pub remaining: u32,
}

/// A change that [`ChaosBook::reconcile`] made, to be stored and published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// The injection after the change.
    pub injection: Injection,
    /// Phase of the change: `target-recovered` or `completed`; `None` for a change that is
    /// only stored (a crash-loop kill that left kills to come).
    pub phase: Option<&'static str>,
    /// Targets the change concerns.
    pub targets: Vec<Target>,
}

/// Filter of [`ChaosBook::list`].
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub active_only: bool,
    /// Empty for every workload.
    pub workload: String,
}

impl ListFilter {
    pub fn matches(&self, injection: &Injection) -> bool {
        (!self.active_only || injection.is_active())
            && (self.workload.is_empty() || injection.hits_workload(&self.workload))
    }
}

/// Every injection of this deployer and of its earlier runs that is still kept.
#[derive(Debug, Default)]
pub struct ChaosBook {
    /// Oldest first.
    injections: Vec<Injection>,
    keys: HashMap<String, String>,
    /// Ids of injections changed by crash-loop kills since the last reconciliation.
    changed: BTreeSet<String>,
}

impl ChaosBook {
    /// Returns the injection first made with idempotency key `key`.
    pub fn by_key(&self, key: &str) -> Option<&Injection> {
        let id = self.keys.get(key)?;
        self.get(id)
    }

    pub fn get(&self, id: &str) -> Option<&Injection> {
        self.injections.iter().find(|injection| injection.id == id)
    }

    /// Records an injection, new or loaded from the store. Returns the ids of ended
    /// injections dropped to keep the book bounded.
    pub fn insert(&mut self, injection: Injection) -> Vec<String> {
        if !injection.idempotency_key.is_empty() {
            self.keys
                .insert(injection.idempotency_key.clone(), injection.id.clone());
        }
        match self.injections.iter_mut().find(|i| i.id == injection.id) {
            Some(existing) => *existing = injection,
            None => self.injections.push(injection),
        }
        self.trim()
    }

    /// Replaces the recorded copy of `injection`.
    pub fn update(&mut self, injection: &Injection) {
        if let Some(existing) = self.injections.iter_mut().find(|i| i.id == injection.id) {
            existing.clone_from(injection);
        }
    }

    /// Injections that match `filter`, newest first.
    pub fn list(&self, filter: &ListFilter) -> Vec<Injection> {
        self.injections
            .iter()
            .rev()
            .filter(|injection| filter.matches(injection))
            .cloned()
            .collect()
    }

    /// Active injections, oldest first.
    pub fn active(&self) -> Vec<Injection> {
        self.injections
            .iter()
            .filter(|injection| injection.is_active())
            .cloned()
            .collect()
    }

    /// Number of active injections by kind.
    pub fn active_by_kind(&self) -> HashMap<ChaosKind, usize> {
        let mut counts = HashMap::new();
        for injection in self.injections.iter().filter(|i| i.is_active()) {
            *counts.entry(injection.kind).or_default() += 1;
        }
        counts
    }

    /// Ids of active injections whose deadline is at or before `now`.
    pub fn due(&self, now: SystemTime) -> Vec<String> {
        self.injections
            .iter()
            .filter(|injection| {
                injection.is_active() && injection.expires_at.is_some_and(|at| at <= now)
            })
            .map(|injection| injection.id.clone())
            .collect()
    }

    /// Consumes one pending crash-loop kill of `instance`, which just started `generation`
    /// in place. Returns the kill when the new generation must be killed.
    pub fn take_crash_loop_kill(
        &mut self,
        workload: &str,
        instance: &str,
        generation: u64,
    ) -> Option<CrashLoopKill> {
        let injection = self.injections.iter_mut().find(|injection| {
            injection.is_active()
                && injection.kind == ChaosKind::CrashLoop
                && injection.targets.iter().any(|target| {
                    target.active
                        && target.workload == workload
                        && target.instance == instance
                        && target.generation < generation
                })
        })?;
        let target = injection
            .targets
            .iter_mut()
            .find(|target| target.workload == workload && target.instance == instance)
            .expect("the injection was found by this target");
        target.remaining = target.remaining.saturating_sub(1);
        target.generation = generation;
        if target.remaining == 0 {
            target.active = false;
            target.message = format!("every crash-loop kill of {instance} happened");
        }
        self.changed.insert(injection.id.clone());
        Some(CrashLoopKill {
            id: injection.id.clone(),
            remaining: target.remaining,
        })
    }

    /// Ends the targets whose instance moved on, and the injections left without an active
    /// target: a fault that lives in the instance ends when its generation is no longer
    /// current or the instance is isolated, a crash loop when its instance is isolated or
    /// gone or its kills all happened. A corrupted file outlives its instances, so it stays
    /// active until it is undone. Returns every change to store and publish.
    pub fn reconcile(
        &mut self,
        status: impl Fn(&str, &str) -> TargetStatus,
        now: SystemTime,
    ) -> Vec<Reconciled> {
        let mut changes = Vec::new();
        for injection in self.injections.iter_mut().filter(|i| i.is_active()) {
            let kind = injection.kind;
            let mut recovered = Vec::new();
            for target in injection.targets.iter_mut().filter(|t| t.active) {
                let still = match (kind, status(&target.workload, &target.instance)) {
                    (ChaosKind::CorruptFile, _) => true,
                    (ChaosKind::CrashLoop, TargetStatus::Current { .. }) => target.remaining > 0,
                    (kind, TargetStatus::Current { generation }) => {
                        lives_in_instance(kind) && generation == target.generation
                    }
                    _ => false,
                };
                if !still {
                    target.active = false;
                    target.message = format!(
                        "{} generation {} was recovered by the engine",
                        target.instance, target.generation
                    );
                    recovered.push(target.clone());
                }
            }
            let crash_loop_changed = self.changed.remove(&injection.id);
            let any_active = injection.targets.iter().any(|t| t.active);
            if !any_active {
                let kills_done = kind == ChaosKind::CrashLoop
                    && injection.targets.iter().all(|t| t.remaining == 0);
                let (state, phase) = if kills_done {
                    (State::Completed, "every crash-loop kill happened")
                } else {
                    (
                        State::TargetRecovered,
                        "the engine recovered every target first",
                    )
                };
                injection.state = state;
                injection.ended_at = Some(now);
                injection.message = phase.to_owned();
                if state == State::Completed && recovered.is_empty() {
                    recovered = injection.targets.clone();
                }
            }
            if !recovered.is_empty() || crash_loop_changed || !any_active {
                let phase = if !any_active {
                    Some(injection.state.phase())
                } else if recovered.is_empty() {
                    None
                } else {
                    Some(State::TargetRecovered.phase())
                };
                changes.push(Reconciled {
                    injection: injection.clone(),
                    phase,
                    targets: recovered,
                });
            }
        }
        changes
    }

    /// Drops the oldest ended injections past [`MAX_KEPT`]. Returns their ids.
    fn trim(&mut self) -> Vec<String> {
        let mut dropped = Vec::new();
        while self.injections.len() > MAX_KEPT {
            let Some(position) = self.injections.iter().position(|i| !i.is_active()) else {
                break;
            };
            let removed = self.injections.remove(position);
            self.keys.retain(|_, id| *id != removed.id);
            dropped.push(removed.id);
        }
        dropped
    }
}

#[cfg(test)]
mod tests;
