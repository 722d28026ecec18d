//! Fault injection on the process and container runtimes: kills, hangs, partitions, crash
//! loops, corrupted files and the faults a workload produces through its own chaos hooks.
//! The Chaos API itself is served by [`crate::chaos`].

mod effects;
mod lifecycle;

use std::collections::{BTreeMap, HashMap};
use std::sync::MutexGuard;

use aro_bus::InjectionStore;
use aro_proto::v1::ChaosKind;
use tracing::{error, info};

use super::Supervisor;
use crate::backend::Runtime;
use crate::chaos::{
    ChaosError, ChaosRuntime, ChaosState, FleetView, TargetStatuses, kind_name, target_names,
};
use crate::domain::chaos::selection::Candidate;
use crate::domain::chaos::{ChaosBook, CorruptedFile, Injection, Params, Target, TargetStatus};
use crate::domain::corruption;
use crate::domain::fleet::State as InstanceState;

impl<R: Runtime> ChaosRuntime for Supervisor<R> {
    fn chaos(&self) -> &ChaosState {
        &self.chaos
    }

    fn runtime_name(&self) -> &str {
        self.runtime.name()
    }

    async fn fleet_view(&self) -> Result<FleetView, ChaosError> {
        let fleet = self.fleet();
        let workloads: Vec<(String, BTreeMap<String, String>)> = fleet
            .specs()
            .map(|spec| (spec.name.clone(), spec.labels.clone()))
            .collect();
        let candidates = fleet
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
        Ok(FleetView {
            workloads,
            candidates,
            instance_labels: HashMap::new(),
        })
    }

    fn check(
        &self,
        _kind: ChaosKind,
        params: &Params,
        targets: &[Candidate],
    ) -> Result<(), ChaosError> {
        if let Params::CorruptFile { path } = params {
            self.check_declared_files(targets, path)?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        injection: &mut Injection,
        store: &InjectionStore,
    ) -> Result<(), ChaosError> {
        self.apply_all(injection, store).await
    }

    async fn undo(&self, injection: &Injection) -> String {
        self.undo_effects(injection).await
    }

    async fn target_statuses(&self) -> TargetStatuses {
        self.statuses()
    }
}

impl<R: Runtime> Supervisor<R> {
    pub(super) fn chaos_book(&self) -> MutexGuard<'_, ChaosBook> {
        self.chaos.book()
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
    fn statuses(&self) -> TargetStatuses {
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
        crate::chaos::lookup(&self.statuses(), workload, instance)
    }
}
