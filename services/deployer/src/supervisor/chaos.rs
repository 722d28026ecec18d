//! Fault injection: kills, hangs and crash loops on purpose, each recorded as a chaos event.

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
use crate::domain::chaos::{DEFAULT_CRASH_LOOP_COUNT, Injection, TargetStatus};
use crate::domain::fleet::State;
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
    #[error("{0} injection is not supported by the process runtime")]
    Unsupported(&'static str),
    #[error("injecting the fault failed: {0}")]
    Runtime(#[source] backend::Error),
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
    /// Rejects a request without workload or kind, an unknown workload or instance, and a
    /// target that is isolated or not running.
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
                    message: "the kind is required: KILL, HANG or CRASH_LOOP".to_owned(),
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

        let signal = match kind {
            ChaosKind::Kill | ChaosKind::CrashLoop => FaultSignal::Kill,
            ChaosKind::Hang => FaultSignal::Freeze,
            // TODO: file corruption and the sample workload's own faults (log storm, heartbeat
            // loss, memory growth, data corruption) are not injected yet.
            other => return Err(ChaosError::Unsupported(kind_name(other))),
        };

        let _serial = self.chaos_injecting.lock().await;
        if !request.idempotency_key.is_empty()
            && let Some(existing) = self.chaos_book().by_key(&request.idempotency_key)
        {
            return Ok(existing.clone());
        }
        let key = self.pick_target(&request.workload, &request.instance)?;
        let injected_at = self
            .runtime
            .inject(&key, signal)
            .map_err(|error| match error {
                backend::Error::NotRunning(_) => ChaosError::FailedPrecondition(format!(
                    "instance {} is not running",
                    key.instance
                )),
                other => ChaosError::Runtime(other),
            })?;

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
            "{} {} generation {}",
            kind_name(kind),
            key.instance,
            key.generation
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
    fn pick_target(&self, workload: &str, instance: &str) -> Result<InstanceKey, ChaosError> {
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
            State::Starting | State::Serving => Ok(InstanceKey {
                workload: record.workload.clone(),
                instance: record.id.clone(),
                generation: record.generation,
            }),
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
        self.send_resume(injection);
        self.chaos_book().finish(&injection.id);
        let message = format!(
            "{} generation {} resumed",
            injection.instance, injection.generation
        );
        self.publish_chaos(injection, "reverted", message).await;
    }

    /// Sends SIGCONT to the instance a hang injection stopped.
    fn send_resume(&self, injection: &Injection) {
        let key = InstanceKey {
            workload: injection.workload.clone(),
            instance: injection.instance.clone(),
            generation: injection.generation,
        };
        if let Err(error) = self.runtime.inject(&key, FaultSignal::Resume) {
            error!(injection = %injection.id, %error, "resuming a hung instance failed");
        }
    }

    /// Returns the injections that are still active.
    pub fn list_faults(&self) -> Vec<Injection> {
        let statuses = self.target_statuses();
        self.chaos_book()
            .active(|workload, instance| lookup(&statuses, workload, instance))
    }

    /// Ends every active injection: hung instances are resumed (unless a recovery isolated or
    /// restarted them meanwhile), pending crash-loop kills are cancelled. Returns how many
    /// were halted.
    pub async fn halt_all(&self) -> u32 {
        let _serial = self.chaos_injecting.lock().await;
        let statuses = self.target_statuses();
        let halted = self
            .chaos_book()
            .halt_all(|workload, instance| lookup(&statuses, workload, instance));
        for injection in &halted {
            let message = if injection.kind == ChaosKind::Hang {
                // The command lock keeps a recovery from isolating the instance in between.
                let lock = self.instance_lock(&injection.workload, &injection.instance);
                let _instance_guard = lock.lock().await;
                let status = self.target_status(&injection.workload, &injection.instance);
                let current = TargetStatus::Current {
                    generation: injection.generation,
                };
                if status == current {
                    self.send_resume(injection);
                    format!(
                        "{} generation {} resumed",
                        injection.instance, injection.generation
                    )
                } else {
                    format!("{} was recovered meanwhile, left as is", injection.instance)
                }
            } else {
                format!(
                    "{} crash-loop kills cancelled for {}",
                    injection.remaining, injection.instance
                )
            };
            self.publish_chaos(injection, "halted", message).await;
        }
        info!(halted = halted.len(), "halted all injections");
        u32::try_from(halted.len()).unwrap_or(u32::MAX)
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
