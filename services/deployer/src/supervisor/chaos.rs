//! Fault injection: kills, hangs, partitions, crash loops, corrupted files and the faults a
//! workload produces through its own chaos hooks, on purpose. Every injection is stored in
//! the injections bucket while it lasts and every change is published as a chaos event.

mod effects;
mod lifecycle;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use aro_bus::InjectionStore;
use aro_proto::v1::ChaosKind;
use tokio::sync::broadcast;
use tracing::{error, info};

use super::Supervisor;
use crate::backend::{self, Runtime};
use crate::domain::chaos::selection::{
    self, BlastRadius, Candidate, SelectionError, Selector, WorkloadView,
};
use crate::domain::chaos::{
    self, ChaosBook, CorruptedFile, Injection, Params, State, Target, TargetStatus,
};
use crate::domain::corruption;
use crate::domain::fleet::State as InstanceState;

pub use lifecycle::Change;

/// Changes a watcher may fall behind by before it is sent the active set again.
const WATCH_BUFFER: usize = 1024;

/// Fault-injection state of the supervisor.
#[derive(Debug)]
pub struct ChaosState {
    book: Mutex<ChaosBook>,
    /// Serialises injections and the changes that end them, so that two requests with one
    /// idempotency key inject once and an injection ends once.
    serial: tokio::sync::Mutex<()>,
    /// Set once the injections of earlier runs were recovered.
    store: OnceLock<InjectionStore>,
    changes: broadcast::Sender<Change>,
    run_id: String,
}

impl Default for ChaosState {
    fn default() -> Self {
        Self {
            book: Mutex::default(),
            serial: tokio::sync::Mutex::new(()),
            store: OnceLock::new(),
            changes: broadcast::channel(WATCH_BUFFER).0,
            run_id: format!("run-{:016x}", rand::random::<u64>()),
        }
    }
}

/// A request to inject one fault.
#[derive(Clone, Debug)]
pub struct InjectRequest {
    /// Raw `ChaosKind` value.
    pub kind: i32,
    pub selector: Selector,
    pub blast_radius: BlastRadius,
    /// As given; defaults are filled in per kind.
    pub params: Params,
    /// Undo the fault after this long.
    pub duration: Option<Duration>,
    pub idempotency_key: String,
    pub dry_run: bool,
    pub allow_last_replica: bool,
}

/// Result of an injection request.
#[derive(Clone, Debug)]
pub struct Injected {
    /// For a dry run: the injection that would be made, never recorded.
    pub injection: Injection,
    pub dry_run: bool,
    /// True when an earlier request with the same idempotency key made the injection.
    pub replayed: bool,
}

/// Reasons an injection was not made or changed.
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
    #[error("the injections of earlier deployer runs are still being recovered; retry shortly")]
    Unavailable,
    #[error("injecting the fault failed: {0}")]
    Runtime(#[source] backend::Error),
    #[error("injecting the fault failed: {0}")]
    Internal(String),
}

impl From<SelectionError> for ChaosError {
    fn from(error: SelectionError) -> Self {
        match error {
            SelectionError::Invalid { field, message } => Self::InvalidArgument { field, message },
            SelectionError::NotFound(message) => Self::NotFound(message),
            SelectionError::FailedPrecondition(message) => Self::FailedPrecondition(message),
        }
    }
}

pub(super) fn kind_name(kind: ChaosKind) -> &'static str {
    let name = kind.as_str_name();
    name.strip_prefix("CHAOS_KIND_").unwrap_or(name)
}

/// Checks the kind of a request.
fn parse_kind(kind: i32) -> Result<ChaosKind, ChaosError> {
    match ChaosKind::try_from(kind) {
        Ok(ChaosKind::Unspecified) => Err(ChaosError::InvalidArgument {
            field: "kind",
            message: "the kind is required: KILL, HANG, CRASH_LOOP, CORRUPT_FILE, LOG_STORM, \
                      STOP_HEARTBEATS, GROW_MEMORY, CORRUPT_DATA or PARTITION"
                .to_owned(),
        }),
        Ok(kind) => Ok(kind),
        Err(_) => Err(ChaosError::InvalidArgument {
            field: "kind",
            message: format!("unknown kind value {kind}"),
        }),
    }
}

/// Checks the parts of a request that need no fleet: kind, parameters, duration and key.
fn validate(request: &InjectRequest) -> Result<(ChaosKind, Params), ChaosError> {
    let kind = parse_kind(request.kind)?;
    let params = chaos::resolve_params(kind, request.params.clone())
        .map_err(|(field, message)| ChaosError::InvalidArgument { field, message })?;
    if let Some(duration) = request.duration.filter(|d| !d.is_zero())
        && !chaos::revertible(kind)
    {
        return Err(ChaosError::InvalidArgument {
            field: "duration",
            message: format!(
                "{duration:?} given, but a {} has nothing to undo; leave the duration unset",
                kind_name(kind)
            ),
        });
    }
    if request.idempotency_key.len() > chaos::MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ChaosError::InvalidArgument {
            field: "idempotency_key",
            message: format!(
                "{} bytes long, at most {} are allowed",
                request.idempotency_key.len(),
                chaos::MAX_IDEMPOTENCY_KEY_LEN
            ),
        });
    }
    Ok((kind, params))
}

impl<R: Runtime> Supervisor<R> {
    pub(super) fn chaos_book(&self) -> MutexGuard<'_, ChaosBook> {
        self.chaos.book.lock().expect("chaos book lock poisoned")
    }

    fn injection_store(&self) -> Result<&InjectionStore, ChaosError> {
        self.chaos.store.get().ok_or(ChaosError::Unavailable)
    }

    /// Injects a fault into the instances the request selects, or, for a dry run, returns
    /// them and changes nothing. Repeating a request with the same idempotency key returns
    /// the first injection.
    ///
    /// # Errors
    ///
    /// Rejects an invalid kind, parameter, duration or key, and a selector that matches
    /// nothing or names an unknown or stopped instance. Without `allow_last_replica`, rejects
    /// a request that would hit the last serving instance of a workload. Fails a file
    /// corruption of a workload without the declared file, and a hook fault of a program
    /// without the chaos hooks.
    pub async fn inject(&self, request: InjectRequest) -> Result<Injected, ChaosError> {
        let (kind, params) = validate(&request)?;
        let _serial = self.chaos.serial.lock().await;
        if !request.dry_run && !request.idempotency_key.is_empty() {
            let existing = self.chaos_book().by_key(&request.idempotency_key).cloned();
            if let Some(injection) = existing {
                return Ok(Injected {
                    injection,
                    dry_run: false,
                    replayed: true,
                });
            }
        }
        let store = if request.dry_run {
            None
        } else {
            Some(self.injection_store()?.clone())
        };
        let targets = self.select_targets(&request)?;
        if let Params::CorruptFile { path } = &params {
            self.check_declared_files(&targets, path)?;
        }
        let mut injection = Injection {
            id: format!("inj-{:016x}", rand::random::<u64>()),
            kind,
            params,
            targets: targets
                .iter()
                .map(|candidate| Target {
                    workload: candidate.workload.clone(),
                    instance: candidate.instance.clone(),
                    generation: candidate.generation,
                    active: false,
                    remaining: 0,
                    message: String::new(),
                })
                .collect(),
            injected_at: SystemTime::now(),
            expires_at: None,
            state: State::Active,
            ended_at: None,
            message: String::new(),
            idempotency_key: request.idempotency_key.clone(),
            files: Vec::new(),
            run_id: self.chaos.run_id.clone(),
            runtime: self.runtime.name().to_owned(),
        };
        let Some(store) = store else {
            injection.id.clear();
            injection.idempotency_key.clear();
            injection.message = format!(
                "dry run: would inject {} into {}",
                kind_name(kind),
                target_names(&injection.targets)
            );
            return Ok(Injected {
                injection,
                dry_run: true,
                replayed: false,
            });
        };

        self.apply_all(&mut injection, &store).await?;
        injection.expires_at = request
            .duration
            .filter(|d| !d.is_zero())
            .map(|d| injection.injected_at + d);
        injection.start();
        if !injection.is_active() {
            injection.message.push_str("; nothing to undo");
        }
        if let Err(error) = store
            .put(&crate::injections::to_record(
                &injection,
                &self.settings.node,
            ))
            .await
        {
            let undone = self.undo_effects(&injection).await;
            return Err(ChaosError::Internal(format!(
                "storing injection {} failed, so it was undone ({undone}): {error}",
                injection.id
            )));
        }
        info!(
            injection = %injection.id,
            kind = kind_name(kind),
            targets = %target_names(&injection.targets),
            expires_at = ?injection.expires_at,
            "fault injected"
        );
        let targets = injection.targets.clone();
        let message = injection.message.clone();
        self.commit(&injection, Some("injected"), &targets, &message, false)
            .await;
        Ok(Injected {
            injection,
            dry_run: false,
            replayed: false,
        })
    }

    /// Finds the instances a request hits, applying the selector, the blast radius and the
    /// last-replica guard.
    fn select_targets(&self, request: &InjectRequest) -> Result<Vec<Candidate>, ChaosError> {
        let fleet = self.fleet();
        let specs: Vec<_> = fleet.specs().cloned().collect();
        let workloads: Vec<WorkloadView<'_>> = specs
            .iter()
            .map(|spec| WorkloadView {
                name: &spec.name,
                labels: &spec.labels,
            })
            .collect();
        let candidates: Vec<Candidate> = fleet
            .instances()
            .map(|record| Candidate {
                workload: record.workload.clone(),
                instance: record.id.clone(),
                generation: record.generation,
                serving: record.state == InstanceState::Serving,
                running: matches!(
                    record.state,
                    InstanceState::Starting | InstanceState::Serving
                ),
                state: record.state.as_str(),
            })
            .collect();
        drop(fleet);
        let matching = selection::matching(&request.selector, &workloads, &candidates)?;
        let targets = selection::pick(matching, request.blast_radius, &mut rand::rng())?;
        if !request.allow_last_replica {
            selection::keep_last_replica(&targets, &candidates)?;
        }
        Ok(targets)
    }

    /// Stores `applied` with the corruption about to be made to `path` of `record`, read
    /// through the runtime. An empty or unreadable file stores nothing, because the
    /// corruption then fails.
    async fn store_intent(
        &self,
        store: &InjectionStore,
        applied: &Injection,
        record: &crate::domain::fleet::InstanceRecord,
        path: &std::path::Path,
    ) -> Result<(), ChaosError> {
        let key = crate::backend::InstanceKey {
            workload: record.workload.clone(),
            instance: record.id.clone(),
            generation: record.generation,
        };
        let Ok(content) = self.runtime.read_file(&key, path).await else {
            return Ok(());
        };
        let Some(corruption) = corruption::planned(path, &content) else {
            return Ok(());
        };
        let mut intent = applied.clone();
        intent.files.push(CorruptedFile {
            workload: key.workload,
            instance: key.instance,
            generation: key.generation,
            corruption,
        });
        store
            .put(&crate::injections::to_record(&intent, &self.settings.node))
            .await
            .map(|_| ())
            .map_err(|error| {
                ChaosError::Internal(format!(
                    "storing injection {} before corrupting {} failed, so the file was left \
                     as it is: {error}",
                    intent.id,
                    path.display()
                ))
            })
    }

    /// Checks that every workload of `targets` declares the file `path`.
    fn check_declared_files(&self, targets: &[Candidate], path: &str) -> Result<(), ChaosError> {
        for target in targets {
            self.declared_file(&target.workload, &target.instance, path)?;
        }
        Ok(())
    }

    /// Applies the injection to every target, recording what it did. When one fails,
    /// undoes those already applied, removes the stored intent and returns the error.
    /// Replicas of a local process share their declared files, so each such file is
    /// corrupted once. Before each file is written, the injection is stored with the bytes
    /// that write will replace, so that a deployer killed right after the write leaves the
    /// next run what it needs to restore them.
    async fn apply_all(
        &self,
        injection: &mut Injection,
        store: &InjectionStore,
    ) -> Result<(), ChaosError> {
        let shared_files = self.runtime.name() == "process";
        let restarts = match injection.params {
            Params::CrashLoop { restarts } => restarts,
            _ => 0,
        };
        let path = match &injection.params {
            Params::CorruptFile { path } => path.clone(),
            _ => String::new(),
        };
        let mut applied = injection.clone();
        applied.targets.clear();
        let mut first_at = None;
        let mut failure = None;
        for target in &injection.targets {
            let record = self
                .fleet()
                .get(&target.workload, &target.instance)
                .cloned();
            let Some(record) = record else {
                failure = Some(ChaosError::NotFound(format!(
                    "instance {} of workload {:?} is gone",
                    target.instance, target.workload
                )));
                break;
            };
            let result = if injection.kind == ChaosKind::CorruptFile {
                match self.declared_file(&record.workload, &record.id, &path) {
                    Ok(file)
                        if shared_files
                            && applied.files.iter().any(|f| f.corruption.path == file) =>
                    {
                        Ok(None)
                    }
                    Ok(file) => match self.store_intent(store, &applied, &record, &file).await {
                        Ok(()) => self
                            .corrupt_file(&record, &file)
                            .await
                            .map(|(done, file)| Some((done, Some(file)))),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                }
            } else {
                self.apply(injection.kind, &record, &injection.params)
                    .await
                    .map(|done| Some((done, None)))
            };
            match result {
                Ok(done) => {
                    if let Some((done, file)) = done {
                        first_at.get_or_insert(done.injected_at);
                        applied.files.extend(file);
                    }
                    applied.targets.push(Target {
                        generation: record.generation,
                        remaining: restarts,
                        active: true,
                        ..target.clone()
                    });
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            if !applied.files.is_empty() || !applied.targets.is_empty() {
                let undone = self.undo_effects(&applied).await;
                info!(kind = kind_name(injection.kind), %undone, %error, "injection failed part way, undid the applied part");
            }
            if injection.kind == ChaosKind::CorruptFile
                && let Err(error) = store.delete(&injection.id).await
            {
                error!(injection = %injection.id, %error, "removing the stored intent of a failed injection failed");
            }
            return Err(error);
        }
        let mut details = vec![format!(
            "{} into {}",
            kind_name(injection.kind),
            target_names(&applied.targets)
        )];
        details.extend(applied.files.iter().map(|file| {
            format!(
                "overwrote {} bytes of {} at offset {}",
                file.corruption.written.len(),
                file.corruption.path.display(),
                file.corruption.offset
            )
        }));
        applied.injected_at = first_at.unwrap_or(injection.injected_at);
        applied.message = details.join("; ");
        *injection = applied;
        Ok(())
    }

    /// Status of every instance of the fleet.
    fn target_statuses(&self) -> HashMap<(String, String), TargetStatus> {
        let fleet = self.fleet();
        fleet
            .instances()
            .map(|record| {
                let status = if record.state == InstanceState::Isolated {
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

    fn target_status(&self, workload: &str, instance: &str) -> TargetStatus {
        lookup(&self.target_statuses(), workload, instance)
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

/// Instance names of `targets` for messages: "web-1 g1, web-2 g3".
fn target_names(targets: &[Target]) -> String {
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("{} generation {}", t.instance, t.generation))
        .collect();
    names.join(", ")
}
