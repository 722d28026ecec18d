//! Effects of each kind of injection on its target, and how they are undone.

use std::path::Path;
use std::time::SystemTime;

use aro_proto::v1::ChaosKind;
use tracing::{error, warn};

use super::{ChaosError, InjectRequest, kind_name};
use crate::backend::{self, FaultSignal, InstanceKey, Runtime};
use crate::domain::chaos::{self, Injection};
use crate::domain::corruption::FileCorruption;
use crate::domain::fleet::InstanceRecord;
use crate::file_corruption::{self, CorruptionError, Undone};
use crate::supervisor::Supervisor;
use crate::workload_hooks::{self, Hook, HookError};

/// Result of applying an injection.
#[derive(Debug)]
pub(super) struct Applied {
    /// When the fault took effect, or, for a hook, just before the call.
    pub(super) injected_at: SystemTime,
    /// For file corruption: what to write back.
    pub(super) file: Option<FileCorruption>,
    /// Text appended to the injected event's message.
    pub(super) detail: String,
}

impl Applied {
    fn at(injected_at: SystemTime) -> Self {
        Self {
            injected_at,
            file: None,
            detail: String::new(),
        }
    }
}

impl<R: Runtime> Supervisor<R> {
    /// Applies a fault of `kind` to `record`'s current generation.
    pub(super) async fn apply(
        &self,
        kind: ChaosKind,
        record: &InstanceRecord,
        request: &InjectRequest,
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
            ChaosKind::CorruptFile => self.corrupt_declared_file(record, &request.path).await,
            ChaosKind::LogStorm => {
                let hook = Hook::LogStorm {
                    lines: chaos::LOG_STORM_LINES,
                };
                self.call_hook(kind, record, hook).await
            }
            ChaosKind::StopHeartbeats => self.call_hook(kind, record, Hook::StopHeartbeats).await,
            ChaosKind::GrowMemory => {
                let limit = self
                    .fleet()
                    .spec(&record.workload)
                    .and_then(|spec| spec.memory_limit);
                let (mib_per_sec, max_mib) = chaos::memory_growth(limit);
                let hook = Hook::GrowMemory {
                    mib_per_sec,
                    max_mib,
                };
                self.call_hook(kind, record, hook).await
            }
            ChaosKind::CorruptData => self.call_hook(kind, record, Hook::CorruptData).await,
            ChaosKind::Unspecified => Err(ChaosError::InvalidArgument {
                field: "kind",
                message: "the kind is required".to_owned(),
            }),
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
                other => ChaosError::Runtime(other),
            })?;
        Ok(Applied::at(injected_at))
    }

    /// Overwrites bytes of the declared file `path` of `record`, or of its first declared
    /// file when `path` is empty. `path` may be written as in the workload file or as the
    /// registry lists it. No other file is ever touched.
    async fn corrupt_declared_file(
        &self,
        record: &InstanceRecord,
        path: &str,
    ) -> Result<Applied, ChaosError> {
        let files = self.declared_files(&record.workload);
        let written: Vec<_> = self
            .fleet()
            .spec(&record.workload)
            .map(|spec| spec.checksum_files.clone())
            .unwrap_or_default();
        let Some(first) = files.first() else {
            return Err(ChaosError::FailedPrecondition(format!(
                "workload {:?} declares no checksum_files, so instance {} has no declared file \
                 to corrupt",
                record.workload, record.id
            )));
        };
        let file = if path.is_empty() {
            first
        } else {
            let wanted = Path::new(path);
            // The files are resolved from the workload's checksum_files, in the same order.
            files
                .iter()
                .zip(&written)
                .find(|(file, as_written)| file.path == wanted || *as_written == wanted)
                .map(|(file, _)| file)
                .ok_or_else(|| {
                    let declared: Vec<String> =
                        files.iter().map(|f| f.path.display().to_string()).collect();
                    ChaosError::NotFound(format!(
                        "path {path:?} is not a declared file of instance {}: its declared \
                         files are {}",
                        record.id,
                        declared.join(", ")
                    ))
                })?
        };

        let target = file.path.clone();
        let injected_at = SystemTime::now();
        let corruption = tokio::task::spawn_blocking(move || file_corruption::corrupt(&target))
            .await
            .map_err(|error| ChaosError::Internal(error.to_string()))?
            .map_err(|error| match error {
                CorruptionError::Empty { .. } => ChaosError::FailedPrecondition(error.to_string()),
                CorruptionError::Io { .. } | CorruptionError::Runtime { .. } => {
                    ChaosError::Internal(error.to_string())
                }
            })?;
        let detail = format!(
            ": overwrote {} bytes of {} at offset {}",
            corruption.written.len(),
            corruption.path.display(),
            corruption.offset
        );
        Ok(Applied {
            injected_at,
            file: Some(corruption),
            detail,
        })
    }

    async fn call_hook(
        &self,
        kind: ChaosKind,
        record: &InstanceRecord,
        hook: Hook,
    ) -> Result<Applied, ChaosError> {
        let injected_at = SystemTime::now();
        workload_hooks::call(record.port, hook)
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

    /// Writes back the bytes a file corruption overwrote. Returns what was done.
    pub(super) async fn undo_corruption(&self, injection: &Injection) -> String {
        let Some(corruption) = injection.file.clone() else {
            return "no backup of the corrupted bytes was recorded".to_owned();
        };
        let path = corruption.path.display().to_string();
        let count = corruption.original.len();
        let offset = corruption.offset;
        let undone = tokio::task::spawn_blocking(move || file_corruption::undo(&corruption)).await;
        match undone {
            Ok(Ok(Undone::Restored)) => {
                format!("restored {count} bytes of {path} at offset {offset}")
            }
            Ok(Ok(Undone::ChangedSince)) => {
                format!("left {path} as it is: its bytes changed since the injection")
            }
            Ok(Err(error)) => {
                error!(injection = %injection.id, %path, %error, "restoring a corrupted file failed");
                format!("restoring {path} failed: {error}")
            }
            Err(error) => {
                error!(injection = %injection.id, %path, %error, "restoring a corrupted file failed");
                format!("restoring {path} failed: {error}")
            }
        }
    }

    /// Undoes the hook faults of the injection's instance. Returns what was done.
    pub(super) async fn reset_hooks(&self, injection: &Injection) -> String {
        let port = self
            .fleet()
            .get(&injection.workload, &injection.instance)
            .map(|record| record.port);
        let Some(port) = port else {
            return format!("{} is gone, nothing to reset", injection.instance);
        };
        match workload_hooks::call(port, Hook::Reset).await {
            Ok(()) => format!(
                "{} generation {} reset its chaos hooks",
                injection.instance, injection.generation
            ),
            Err(error) => {
                warn!(injection = %injection.id, instance = %injection.instance, %error, "resetting chaos hooks failed");
                format!(
                    "resetting the chaos hooks of {} failed: {error}",
                    injection.instance
                )
            }
        }
    }
}
