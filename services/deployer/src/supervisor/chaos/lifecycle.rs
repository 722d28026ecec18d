//! Changes of injections after they are made. Each change is stored, published and sent to
//! watchers. Injections expire, are cancelled or halted, end when the engine recovers their
//! targets, and are closed when the deployer stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aro_bus::InjectionStore;
use aro_proto::v1::ChaosKind;
use tokio::sync::broadcast;
use tracing::{Instrument, error, info, info_span};

use super::{ChaosError, kind_name, lookup};
use crate::backend::{InstanceKey, Runtime};
use crate::domain::chaos::{Injection, ListFilter, State, Target};
use crate::file_corruption;
use crate::injections;
use crate::metrics::ChaosLabels;
use crate::supervisor::Supervisor;

/// How often expired injections and recovered targets are looked for.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(100);

/// One change of an injection, as watchers receive it.
#[derive(Clone, Debug)]
pub struct Change {
    pub phase: &'static str,
    /// The injection after the change.
    pub injection: Injection,
    pub message: String,
}

impl<R: Runtime> Supervisor<R> {
    /// Takes the injections that [`injections::recover`] read and closed, opens fault
    /// injection, and starts looking for expired injections and recovered targets.
    pub fn adopt_injections(self: &Arc<Self>, store: InjectionStore, recovered: Vec<Injection>) {
        let dropped: Vec<String> = {
            let mut book = self.chaos_book();
            let dropped = recovered
                .into_iter()
                .flat_map(|injection| book.insert(injection))
                .collect();
            self.metrics.observe_chaos(&book);
            dropped
        };
        if self.chaos.store.set(store.clone()).is_err() {
            error!("injections were adopted twice; the second set is ignored");
            return;
        }
        if !dropped.is_empty() {
            let removal = async move {
                for id in dropped {
                    if let Err(error) = store.delete(&id).await {
                        error!(injection = %id, %error, "removing an old injection failed");
                    }
                }
            };
            self.tasks
                .spawn(removal.instrument(info_span!("deployer.chaos.trim")));
        }
        let supervisor = Arc::clone(self);
        let reconcile = async move {
            let mut ticks = tokio::time::interval(RECONCILE_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => supervisor.reconcile_injections().await,
                    () = supervisor.stopping.cancelled() => return,
                }
            }
        };
        self.tasks
            .spawn(reconcile.instrument(info_span!("deployer.chaos.reconcile")));
    }

    /// Records a change. Updates the book and sends the change to watchers under the book's
    /// lock, so that a watcher's snapshot and its stream of changes line up. Then stores the
    /// injection, and publishes and counts the chaos event when `phase` is set.
    pub(super) async fn commit(
        &self,
        injection: &Injection,
        phase: Option<&'static str>,
        targets: &[Target],
        message: &str,
        already_booked: bool,
    ) {
        let dropped = {
            let mut book = self.chaos_book();
            let dropped = if already_booked {
                book.update(injection);
                Vec::new()
            } else {
                book.insert(injection.clone())
            };
            if let Some(phase) = phase {
                // No watcher is not an error.
                let _ = self.chaos.changes.send(Change {
                    phase,
                    injection: injection.clone(),
                    message: message.to_owned(),
                });
            }
            self.metrics.observe_chaos(&book);
            dropped
        };
        if let Some(store) = self.chaos.store.get() {
            let record = injections::to_record(injection, &self.settings.node);
            if let Err(error) = store.put(&record).await {
                error!(injection = %injection.id, %error, "storing an injection failed");
            }
            for id in dropped {
                if let Err(error) = store.delete(&id).await {
                    error!(injection = %id, %error, "removing an old injection failed");
                }
            }
        }
        let Some(phase) = phase else {
            return;
        };
        self.metrics
            .chaos_injections
            .get_or_create(&ChaosLabels {
                kind: kind_name(injection.kind).to_ascii_lowercase(),
                phase: phase.to_owned(),
            })
            .inc();
        injections::publish_change(
            &self.bus,
            injection,
            phase,
            targets,
            message,
            &self.settings.node,
        )
        .await;
    }

    /// Undoes the effects of an injection on its active targets and files. Returns what was
    /// done, one sentence per target or file.
    pub(super) async fn undo_effects(&self, injection: &Injection) -> String {
        let mut sentences = Vec::new();
        if injection.kind == ChaosKind::CorruptFile {
            // Newest first, so that overlapping ranges end as they were.
            for file in injection.files.iter().rev() {
                let key = InstanceKey {
                    workload: file.workload.clone(),
                    instance: file.instance.clone(),
                    generation: file.generation,
                };
                let undone =
                    file_corruption::undo_through(&self.runtime, &key, &file.corruption).await;
                sentences.push(injections::undone_message(
                    &injection.id,
                    &file.corruption,
                    undone.map_err(|error| error.to_string()),
                ));
            }
        } else {
            for target in injection.targets.iter().filter(|t| t.active) {
                sentences.push(self.undo_target(injection, target).await);
            }
        }
        sentences.join("; ")
    }

    /// Ends an active injection in `state`, undoing what it still does. Returns `None` when
    /// it is not active. The caller holds the serial lock.
    async fn end_injection(&self, id: &str, state: State, reason: &str) -> Option<Injection> {
        let mut injection = self.chaos_book().get(id).filter(|i| i.is_active())?.clone();
        let undone = self.undo_effects(&injection).await;
        let ended: Vec<Target> = injection
            .targets
            .iter()
            .filter(|t| t.active || injection.kind == ChaosKind::CorruptFile)
            .cloned()
            .collect();
        for target in injection.targets.iter_mut().filter(|t| t.active) {
            target.message = reason.to_owned();
        }
        // The phase names the reason it ended, so the message describes what was undone.
        let message = if undone.is_empty() {
            reason.to_owned()
        } else {
            undone
        };
        injection.end(state, SystemTime::now(), message.clone());
        info!(injection = %id, phase = state.phase(), %message, "injection ended");
        self.commit(&injection, Some(state.phase()), &ended, &message, false)
            .await;
        Some(injection)
    }

    /// Ends targets the engine recovered and injections whose duration ran out.
    async fn reconcile_injections(&self) {
        let _serial = self.chaos.serial.lock().await;
        let statuses = self.target_statuses();
        let now = SystemTime::now();
        let changes = self.chaos_book().reconcile(
            |workload, instance| lookup(&statuses, workload, instance),
            now,
        );
        for change in changes {
            let message = match change.phase {
                Some(_) if change.injection.is_active() => change
                    .targets
                    .iter()
                    .map(|t| t.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => change.injection.message.clone(),
            };
            self.commit(
                &change.injection,
                change.phase,
                &change.targets,
                &message,
                true,
            )
            .await;
        }
        let due = self.chaos_book().due(now);
        for id in due {
            self.end_injection(&id, State::Expired, "its duration ran out")
                .await;
        }
    }

    /// Returns one injection, active or ended.
    ///
    /// # Errors
    ///
    /// Returns [`ChaosError::NotFound`] for an unknown id.
    pub fn get_fault(&self, id: &str) -> Result<Injection, ChaosError> {
        self.chaos_book()
            .get(id)
            .cloned()
            .ok_or_else(|| ChaosError::NotFound(format!("injection {id:?} not found")))
    }

    /// Returns the injections that match `filter`, newest first.
    pub fn list_faults(&self, filter: &ListFilter) -> Vec<Injection> {
        self.chaos_book().list(filter)
    }

    /// Undoes an active injection now.
    ///
    /// # Errors
    ///
    /// Returns [`ChaosError::NotFound`] for an unknown id and
    /// [`ChaosError::FailedPrecondition`] for an injection that already ended.
    pub async fn cancel_fault(&self, id: &str) -> Result<Injection, ChaosError> {
        let _serial = self.chaos.serial.lock().await;
        let current = self.get_fault(id)?;
        if !current.is_active() {
            return Err(ChaosError::FailedPrecondition(format!(
                "injection {id} already ended: {}",
                current.state.phase()
            )));
        }
        self.end_injection(id, State::Cancelled, "cancelled")
            .await
            .ok_or_else(|| ChaosError::FailedPrecondition(format!("injection {id} already ended")))
    }

    /// Ends every active injection, newest first, undoing what each still does. Returns how
    /// many were halted.
    pub async fn halt_all(&self) -> u32 {
        let _serial = self.chaos.serial.lock().await;
        let active = self.chaos_book().active();
        let mut halted = 0u32;
        for injection in active.iter().rev() {
            if self
                .end_injection(&injection.id, State::Halted, "halted")
                .await
                .is_some()
            {
                halted += 1;
            }
        }
        info!(halted, "halted all injections");
        halted
    }

    /// Returns the active injections and a receiver of every later change, taken together so
    /// that no change falls between them.
    pub fn watch_faults(&self) -> (Vec<Injection>, broadcast::Receiver<Change>) {
        let book = self.chaos_book();
        (book.active(), self.chaos.changes.subscribe())
    }

    /// Resolves once the deployer begins to stop, which ends watches.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    /// Ends every active injection when the deployer stops: puts back corrupted files,
    /// resumes hung and reconnects partitioned instances, resets hook faults and cancels
    /// pending crash-loop kills, each published as `reverted`.
    pub(in crate::supervisor) async fn end_injections_at_stop(&self) {
        let _serial = self.chaos.serial.lock().await;
        let active = self.chaos_book().active();
        for injection in active.iter().rev() {
            self.end_injection(&injection.id, State::Reverted, "the deployer stopped")
                .await;
        }
    }
}
