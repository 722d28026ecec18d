//! Fault injection: kills, hangs, crash loops, corrupted files and the faults a workload
//! produces through its own chaos hooks, on purpose, each recorded as a chaos event.

mod effects;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aro_bus::subjects;
use aro_proto::v1::{ChaosEvent, ChaosKind, InstanceRef};
use rand::seq::IndexedRandom;
use tracing::{Instrument, error, info, info_span};

use super::Supervisor;
use crate::backend::{self, FaultSignal, InstanceKey, Runtime};
use crate::convert::timestamp;
use crate::domain::chaos::{DEFAULT_CRASH_LOOP_COUNT, Injection, TargetStatus, lives_in_process};
use crate::domain::fleet::{InstanceRecord, State};
use crate::domain::ids;
use crate::metrics::KindLabels;

/// A request to inject one fault.
#[derive(Clone, Debug, Default)]
pub struct InjectRequest {
    /// Raw `ChaosKind` value.
    pub kind: i32,
    pub workload: String,
    /// Empty picks one serving instance at random.
    pub instance: String,
    /// Crash-loop kills after the first; 0 means the default.
    pub count: u32,
    /// For hangs: resume after this long.
    pub duration: Option<Duration>,
    pub idempotency_key: String,
    /// For file corruption: the declared file; empty picks the first.
    pub path: String,
}

/// Reasons an injection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("injecting the fault failed: {0}")]
    Runtime(#[source] backend::Error),
    #[error("injecting the fault failed: {0}")]
    Internal(String),
}

fn kind_name(kind: ChaosKind) -> &'static str {
    let name = kind.as_str_name();
    name.strip_prefix("CHAOS_KIND_").unwrap_or(name)
}

impl<R: Runtime> Supervisor<R> {
    /// Injects a fault. Repeating a request with the same idempotency key returns the first
    /// injection.
    ///
    /// # Errors
    ///
    /// Rejects a request without workload or kind, an unknown workload or instance, a target
    /// that is isolated or not running, a file corruption of an instance without declared
    /// files or of a path it does not declare, and a hook fault of a program without the
    /// chaos hooks.
    pub async fn inject(self: &Arc<Self>, request: InjectRequest) -> Result<Injection, ChaosError> {
        if request.workload.is_empty() {
            return Err(ChaosError::InvalidArgument {
                field: "workload",
                message: "the workload is required".to_owned(),
            });
        }
        let kind = match ChaosKind::try_from(request.kind) {
            Ok(ChaosKind::Unspecified) => {
                return Err(ChaosError::InvalidArgument {
                    field: "kind",
                    message: "the kind is required: KILL, HANG, CRASH_LOOP, CORRUPT_FILE, \
                              LOG_STORM, STOP_HEARTBEATS, GROW_MEMORY or CORRUPT_DATA"
                        .to_owned(),
                });
            }
            Ok(kind) => kind,
            Err(_) => {
                return Err(ChaosError::InvalidArgument {
                    field: "kind",
                    message: format!("unknown kind value {}", request.kind),
                });
            }
        };

        let _serial = self.chaos_injecting.lock().await;
        if !request.idempotency_key.is_empty()
            && let Some(existing) = self.chaos_book().by_key(&request.idempotency_key)
        {
            return Ok(existing.clone());
        }
        let record = self.pick_target(&request.workload, &request.instance)?;
        let key = InstanceKey {
            workload: record.workload.clone(),
            instance: record.id.clone(),
            generation: record.generation,
        };
        let applied = self.apply(kind, &record, &request).await?;
        let injected_at = applied.injected_at;

        let remaining = match (kind, request.count) {
            (ChaosKind::CrashLoop, 0) => DEFAULT_CRASH_LOOP_COUNT,
            (ChaosKind::CrashLoop, count) => count,
            _ => 0,
        };
        let injection = Injection {
            id: format!("inj-{:016x}", rand::random::<u64>()),
            kind,
            workload: key.workload.clone(),
            instance: key.instance.clone(),
            generation: key.generation,
            injected_at,
            remaining,
            file: applied.file,
            active: false,
        };
        let injection = self
            .chaos_book()
            .insert(injection, Some(&request.idempotency_key));
        self.metrics
            .chaos_injections
            .get_or_create(&KindLabels {
                kind: kind_name(kind).to_ascii_lowercase(),
            })
            .inc();
        info!(
            injection = %injection.id,
            kind = kind_name(kind),
            instance = %key.instance,
            generation = key.generation,
            remaining,
            "fault injected"
        );
        let message = format!(
            "{} {} generation {}{}",
            kind_name(kind),
            key.instance,
            key.generation,
            applied.detail
        );
        self.publish_chaos(&injection, "injected", message).await;

        if kind == ChaosKind::Hang
            && let Some(after) = request.duration.filter(|d| !d.is_zero())
        {
            self.schedule_resume(injection.clone(), after);
        }
        Ok(injection)
    }

    /// Finds the instance a request targets: the named one, or a random serving one.
    fn pick_target(&self, workload: &str, instance: &str) -> Result<InstanceRecord, ChaosError> {
        let fleet = self.fleet();
        if fleet.spec(workload).is_none() {
            return Err(ChaosError::NotFound(format!(
                "workload {workload:?} not found"
            )));
        }
        let record = if instance.is_empty() {
            let serving: Vec<_> = fleet
                .instances_of(workload)
                .filter(|record| record.state == State::Serving)
                .collect();
            *serving.choose(&mut rand::rng()).ok_or_else(|| {
                ChaosError::FailedPrecondition(format!(
                    "workload {workload:?} has no serving instance to inject into"
                ))
            })?
        } else {
            fleet.get(workload, instance).ok_or_else(|| {
                ChaosError::NotFound(format!(
                    "instance {instance:?} of workload {workload:?} not found"
                ))
            })?
        };
        match record.state {
            State::Isolated => Err(ChaosError::FailedPrecondition(format!(
                "instance {} is isolated",
                record.id
            ))),
            State::Stopped => Err(ChaosError::FailedPrecondition(format!(
                "instance {} is not running",
                record.id
            ))),
            State::Starting | State::Serving => Ok(record.clone()),
        }
    }

    fn target_status(&self, workload: &str, instance: &str) -> TargetStatus {
        match self.fleet().get(workload, instance) {
            None => TargetStatus::Gone,
            Some(record) if record.state == State::Isolated => TargetStatus::Isolated,
            Some(record) => TargetStatus::Current {
                generation: record.generation,
            },
        }
    }

    fn target_statuses(&self) -> HashMap<(String, String), TargetStatus> {
        let fleet = self.fleet();
        fleet
            .instances()
            .map(|record| {
                let status = if record.state == State::Isolated {
                    TargetStatus::Isolated
                } else {
                    TargetStatus::Current {
                        generation: record.generation,
                    }
                };
                ((record.workload.clone(), record.id.clone()), status)
            })
            .collect()
    }

    /// Resumes a hung instance after `after`, unless it was recovered (restarted, isolated or
    /// removed) or halted first.
    fn schedule_resume(self: &Arc<Self>, injection: Injection, after: Duration) {
        let supervisor = Arc::clone(self);
        let span = info_span!("deployer.chaos.resume", injection = %injection.id);
        let resume = async move {
            tokio::select! {
                () = tokio::time::sleep(after) => {}
                () = supervisor.stopping.cancelled() => return,
            }
            supervisor.resume(&injection).await;
        };
        self.tasks.spawn(resume.instrument(span));
    }

    /// Resumes a hung instance when its resume time came, unless a recovery or HaltAll
    /// ended the injection first, and publishes the `reverted` event.
    async fn resume(&self, injection: &Injection) {
        let lock = self.instance_lock(&injection.workload, &injection.instance);
        let _instance_guard = lock.lock().await;
        let status = self.target_status(&injection.workload, &injection.instance);
        if !self.chaos_book().is_current(&injection.id, status) {
            info!(injection = %injection.id, "hung instance was recovered or halted before its resume time");
            return;
        }
        self.send_resume(injection).await;
        self.chaos_book().finish(&injection.id);
        let message = format!(
            "{} generation {} resumed",
            injection.instance, injection.generation
        );
        self.publish_chaos(injection, "reverted", message).await;
    }

    /// Sends SIGCONT to the instance a hang injection stopped.
    async fn send_resume(&self, injection: &Injection) {
        let key = InstanceKey {
            workload: injection.workload.clone(),
            instance: injection.instance.clone(),
            generation: injection.generation,
        };
        if let Err(error) = self.runtime.inject(&key, FaultSignal::Resume).await {
            error!(injection = %injection.id, %error, "resuming a hung instance failed");
        }
    }

    /// Returns the injections that are still active.
    pub fn list_faults(&self) -> Vec<Injection> {
        let statuses = self.target_statuses();
        self.chaos_book()
            .active(|workload, instance| lookup(&statuses, workload, instance))
    }

    /// Ends every active injection, newest first: hung instances are resumed and hook faults
    /// reset (unless a recovery isolated or restarted the instance meanwhile), corrupted files
    /// get their bytes back, pending crash-loop kills are cancelled. Returns how many were
    /// halted.
    pub async fn halt_all(&self) -> u32 {
        let _serial = self.chaos_injecting.lock().await;
        let statuses = self.target_statuses();
        let halted = self
            .chaos_book()
            .halt_all(|workload, instance| lookup(&statuses, workload, instance));
        for injection in halted.iter().rev() {
            let message = match injection.kind {
                ChaosKind::CrashLoop => format!(
                    "{} crash-loop kills cancelled for {}",
                    injection.remaining, injection.instance
                ),
                ChaosKind::CorruptFile => self.undo_corruption(injection).await,
                kind if lives_in_process(kind) => self.revert_in_process(injection).await,
                _ => format!("{} needed no revert", injection.instance),
            };
            self.publish_chaos(injection, "halted", message).await;
        }
        info!(halted = halted.len(), "halted all injections");
        u32::try_from(halted.len()).unwrap_or(u32::MAX)
    }

    /// Reverts a fault that lives in the target process, under the command lock so that a
    /// recovery does not isolate the instance in between. Returns what was done.
    async fn revert_in_process(&self, injection: &Injection) -> String {
        let lock = self.instance_lock(&injection.workload, &injection.instance);
        let _instance_guard = lock.lock().await;
        let status = self.target_status(&injection.workload, &injection.instance);
        let current = TargetStatus::Current {
            generation: injection.generation,
        };
        if status != current {
            return format!("{} was recovered meanwhile, left as is", injection.instance);
        }
        if injection.kind == ChaosKind::Hang {
            self.send_resume(injection).await;
            return format!(
                "{} generation {} resumed",
                injection.instance, injection.generation
            );
        }
        self.reset_hooks(injection).await
    }

    /// Puts back the bytes of every file that an injection corrupted and that no HaltAll
    /// restored, when the deployer stops.
    ///
    /// NOTE: the backups live in memory, so a deployer that is killed (SIGKILL, a crash)
    /// leaves a corrupted file as it is.
    pub(super) async fn undo_file_corruptions(&self) {
        let _serial = self.chaos_injecting.lock().await;
        let corruptions = self.chaos_book().end_file_corruptions();
        for injection in &corruptions {
            let message = self.undo_corruption(injection).await;
            self.publish_chaos(injection, "reverted", message).await;
        }
    }

    async fn publish_chaos(&self, injection: &Injection, phase: &str, message: String) {
        let event = ChaosEvent {
            id: ids::chaos_event_id(&injection.id, phase),
            kind: injection.kind as i32,
            targets: vec![InstanceRef {
                workload: injection.workload.clone(),
                instance: injection.instance.clone(),
                generation: injection.generation,
                node: self.settings.node.clone(),
            }],
            injected_at: Some(timestamp(injection.injected_at)),
            phase: phase.to_owned(),
            message,
        };
        let subject = subjects::chaos(&injection.workload);
        if let Err(error) = self.bus.publish(subject, &event.id, &event).await {
            error!(event = %event.id, %error, "publishing a chaos event failed");
        }
    }
}

fn lookup(
    statuses: &HashMap<(String, String), TargetStatus>,
    workload: &str,
    instance: &str,
) -> TargetStatus {
    statuses
        .get(&(workload.to_owned(), instance.to_owned()))
        .copied()
        .unwrap_or(TargetStatus::Gone)
}
