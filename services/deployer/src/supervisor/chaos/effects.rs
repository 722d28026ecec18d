//! Effects of each kind of injection on one target, and how they are undone.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aro_proto::v1::ChaosKind;
use tracing::warn;

use super::{ChaosError, kind_name};
use crate::backend::{self, FaultSignal, InstanceKey, Runtime};
use crate::domain::chaos::{self, CorruptedFile, Injection, Params, Target, TargetStatus};
use crate::domain::fleet::InstanceRecord;
use crate::file_corruption::{self, CorruptionError};
use crate::supervisor::Supervisor;
use crate::workload_hooks::{self, Hook, HookError};

/// Result of applying an injection to one target.
#[derive(Debug)]
pub(super) struct Applied {
    /// When the fault took effect, or, for a hook, just before the call.
    pub(super) injected_at: SystemTime,
}

impl Applied {
    fn at(injected_at: SystemTime) -> Self {
        Self { injected_at }
    }
}

fn key_of(target: &Target) -> InstanceKey {
    InstanceKey {
        workload: target.workload.clone(),
        instance: target.instance.clone(),
        generation: target.generation,
    }
}

impl<R: Runtime> Supervisor<R> {
    /// Applies a fault of `kind` with `params` to `record`'s current generation. File
    /// corruption is applied per file, by [`Supervisor::corrupt_file`].
    pub(super) async fn apply(
        &self,
        kind: ChaosKind,
        record: &InstanceRecord,
        params: &Params,
    ) -> Result<Applied, ChaosError> {
        let key = InstanceKey {
            workload: record.workload.clone(),
            instance: record.id.clone(),
            generation: record.generation,
        };
        match kind {
            ChaosKind::Kill | ChaosKind::CrashLoop => {
                self.send_fault(&key, FaultSignal::Kill).await
            }
            ChaosKind::Hang => self.send_fault(&key, FaultSignal::Freeze).await,
            ChaosKind::Partition => self.send_fault(&key, FaultSignal::Disconnect).await,
            ChaosKind::LogStorm => {
                let lines = match params {
                    Params::LogStorm { lines } if *lines > 0 => *lines,
                    _ => chaos::LOG_STORM_LINES,
                };
                self.call_hook(kind, record, Hook::LogStorm { lines }).await
            }
            ChaosKind::StopHeartbeats => self.call_hook(kind, record, Hook::StopHeartbeats).await,
            ChaosKind::GrowMemory => {
                let limit = self
                    .fleet()
                    .spec(&record.workload)
                    .and_then(|spec| spec.memory_limit);
                let (default_rate, default_max) = chaos::memory_growth(limit);
                let (mib_per_sec, max_mib) = match params {
                    Params::GrowMemory {
                        mib_per_sec,
                        max_mib,
                    } => (
                        if *mib_per_sec == 0 {
                            default_rate
                        } else {
                            *mib_per_sec
                        },
                        if *max_mib == 0 { default_max } else { *max_mib },
                    ),
                    _ => (default_rate, default_max),
                };
                let hook = Hook::GrowMemory {
                    mib_per_sec,
                    max_mib,
                };
                self.call_hook(kind, record, hook).await
            }
            ChaosKind::CorruptData => self.call_hook(kind, record, Hook::CorruptData).await,
            ChaosKind::CorruptFile | ChaosKind::Unspecified => Err(ChaosError::Internal(format!(
                "{} is not applied per instance",
                kind_name(kind)
            ))),
        }
    }

    async fn send_fault(
        &self,
        key: &InstanceKey,
        signal: FaultSignal,
    ) -> Result<Applied, ChaosError> {
        let injected_at = self
            .runtime
            .inject(key, signal)
            .await
            .map_err(|error| match error {
                backend::Error::NotRunning(_) => ChaosError::FailedPrecondition(format!(
                    "instance {} is not running",
                    key.instance
                )),
                backend::Error::Unsupported { .. } => {
                    ChaosError::FailedPrecondition(error.to_string())
                }
                other => ChaosError::Runtime(other),
            })?;
        Ok(Applied::at(injected_at))
    }

    /// Resolves the declared file `path` of `workload`, or its first declared file when
    /// `path` is empty. `path` may be written as in the workload file or as the registry
    /// lists it. No other file is ever chosen.
    pub(super) fn declared_file(
        &self,
        workload: &str,
        instance: &str,
        path: &str,
    ) -> Result<PathBuf, ChaosError> {
        let files = self.declared_files(workload);
        let written: Vec<_> = self
            .fleet()
            .spec(workload)
            .map(|spec| spec.checksum_files.clone())
            .unwrap_or_default();
        let Some(first) = files.first() else {
            return Err(ChaosError::FailedPrecondition(format!(
                "workload {workload:?} declares no checksum_files, so instance {instance} has \
                 no declared file to corrupt"
            )));
        };
        if path.is_empty() {
            return Ok(first.path.clone());
        }
        let wanted = Path::new(path);
        // The files are resolved from the workload's checksum_files, in the same order.
        files
            .iter()
            .zip(&written)
            .find(|(file, as_written)| file.path == wanted || *as_written == wanted)
            .map(|(file, _)| file.path.clone())
            .ok_or_else(|| {
                let declared: Vec<String> =
                    files.iter().map(|f| f.path.display().to_string()).collect();
                ChaosError::NotFound(format!(
                    "path {path:?} is not a declared file of instance {instance}: its declared \
                     files are {}",
                    declared.join(", ")
                ))
            })
    }

    /// Overwrites bytes in the middle of the declared file `path` of `record`'s current
    /// generation, through its runtime.
    pub(super) async fn corrupt_file(
        &self,
        record: &InstanceRecord,
        path: &Path,
    ) -> Result<(Applied, CorruptedFile), ChaosError> {
        let key = InstanceKey {
            workload: record.workload.clone(),
            instance: record.id.clone(),
            generation: record.generation,
        };
        let injected_at = SystemTime::now();
        let corruption = file_corruption::corrupt_through(&self.runtime, &key, path)
            .await
            .map_err(|error| match error {
                CorruptionError::Empty { .. } => ChaosError::FailedPrecondition(error.to_string()),
                CorruptionError::Io { .. } | CorruptionError::Runtime { .. } => {
                    ChaosError::Internal(error.to_string())
                }
            })?;
        let file = CorruptedFile {
            workload: key.workload,
            instance: key.instance,
            generation: key.generation,
            corruption,
        };
        Ok((Applied::at(injected_at), file))
    }

    async fn call_hook(
        &self,
        kind: ChaosKind,
        record: &InstanceRecord,
        hook: Hook,
    ) -> Result<Applied, ChaosError> {
        let injected_at = SystemTime::now();
        let address = self.address(&record.workload, &record.id);
        workload_hooks::call_at(address, record.port, hook)
            .await
            .map_err(|error| match error {
                HookError::NotServed { .. } => ChaosError::FailedPrecondition(format!(
                    "workload {:?} does not serve the chaos hooks that {} needs: {error} on \
                     instance {}; run a program that serves them, such as aro-sample-workload",
                    record.workload,
                    kind_name(kind),
                    record.id
                )),
                HookError::Unreachable { .. } => ChaosError::FailedPrecondition(format!(
                    "instance {} of workload {:?} did not take the chaos hook: {error}",
                    record.id, record.workload
                )),
                HookError::Failed { .. } => ChaosError::Internal(format!(
                    "instance {} of workload {:?} failed the chaos hook: {error}",
                    record.id, record.workload
                )),
            })?;
        Ok(Applied::at(injected_at))
    }

    /// Undoes the fault on one target, under the command lock so that a recovery does not
    /// restart or isolate the instance in between. A target that a recovery already moved
    /// on is left as it is. Returns what was done.
    pub(super) async fn undo_target(&self, injection: &Injection, target: &Target) -> String {
        if injection.kind == ChaosKind::CrashLoop {
            return format!(
                "{} crash-loop kills of {} cancelled",
                target.remaining, target.instance
            );
        }
        if !chaos::lives_in_instance(injection.kind) {
            return format!("{} needed no undo", target.instance);
        }
        let lock = self.instance_lock(&target.workload, &target.instance);
        let _instance_guard = lock.lock().await;
        let current = TargetStatus::Current {
            generation: target.generation,
        };
        if self.target_status(&target.workload, &target.instance) != current {
            return format!(
                "{} generation {} was recovered meanwhile, left as is",
                target.instance, target.generation
            );
        }
        let signal = match injection.kind {
            ChaosKind::Hang => FaultSignal::Resume,
            ChaosKind::Partition => FaultSignal::Reconnect,
            _ => return self.reset_hooks(injection, target).await,
        };
        match self.runtime.inject(&key_of(target), signal).await {
            Ok(_) => format!(
                "{} generation {} got {}",
                target.instance,
                target.generation,
                signal.name()
            ),
            Err(error) => {
                warn!(injection = %injection.id, instance = %target.instance, %error, "undoing a fault failed");
                format!("{} of {} failed: {error}", signal.name(), target.instance)
            }
        }
    }

    /// Undoes the hook faults of one target's instance. The hooks have one reset for all
    /// of them, so it also ends other hook faults of that instance. Returns what was done.
    async fn reset_hooks(&self, injection: &Injection, target: &Target) -> String {
        let port = self
            .fleet()
            .get(&target.workload, &target.instance)
            .map(|record| record.port);
        let Some(port) = port else {
            return format!("{} is gone, nothing to reset", target.instance);
        };
        let address = self.address(&target.workload, &target.instance);
        match workload_hooks::call_at(address, port, Hook::Reset).await {
            Ok(()) => format!(
                "{} generation {} reset its chaos hooks",
                target.instance, target.generation
            ),
            Err(error) => {
                warn!(injection = %injection.id, instance = %target.instance, %error, "resetting chaos hooks failed");
                format!(
                    "resetting the chaos hooks of {} failed: {error}",
                    target.instance
                )
            }
        }
    }
}
