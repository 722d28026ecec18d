//! Changes of injections after they are made. Each change is stored, published and sent to
//! watchers. Injections expire, are cancelled or halted, end when the engine recovers their
//! targets, and are closed when the deployer stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aro_bus::InjectionStore;
use aro_proto::v1::ChaosKind;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span};

use super::{ChaosError, ChaosRuntime, ChaosState, kind_name, lookup};
use crate::domain::chaos::{Injection, ListFilter, State, Target};
use crate::injections;
use crate::metrics::ChaosLabels;

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

/// Takes the injections that [`injections::recover`] read and closed, opens fault injection
/// on `runtime`, and starts looking for expired injections and recovered targets on `tasks`
/// until the deployer stops.
pub fn adopt<C: ChaosRuntime>(
    runtime: &Arc<C>,
    store: InjectionStore,
    recovered: Vec<Injection>,
    tasks: &TaskTracker,
) {
    let state = runtime.chaos();
    let dropped: Vec<String> = {
        let mut book = state.book();
        let dropped = recovered
            .into_iter()
            .flat_map(|injection| book.insert(injection))
            .collect();
        state.metrics.observe_chaos(&book);
        dropped
    };
    if state.store.set(store.clone()).is_err() {
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
        tasks.spawn(removal.instrument(info_span!("deployer.chaos.trim")));
    }
    let runtime = Arc::clone(runtime);
    let reconcile = async move {
        let mut ticks = tokio::time::interval(RECONCILE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => reconcile(&*runtime).await,
                () = runtime.chaos().stopping() => return,
            }
        }
    };
    tasks.spawn(reconcile.instrument(info_span!("deployer.chaos.reconcile")));
}

/// Records a change. Updates the book and sends the change to watchers under the book's
/// lock, so that a watcher's snapshot and its stream of changes line up. Then stores the
/// injection, and publishes and counts the chaos event when `phase` is set.
pub(super) async fn commit(
    state: &ChaosState,
    injection: &Injection,
    phase: Option<&'static str>,
    targets: &[Target],
    message: &str,
    already_booked: bool,
) {
    let dropped = {
        let mut book = state.book();
        let dropped = if already_booked {
            book.update(injection);
            Vec::new()
        } else {
            book.insert(injection.clone())
        };
        if let Some(phase) = phase {
            // No watcher is not an error.
            let _ = state.changes.send(Change {
                phase,
                injection: injection.clone(),
                message: message.to_owned(),
            });
        }
        state.metrics.observe_chaos(&book);
        dropped
    };
    if let Some(store) = state.store.get() {
        let record = injections::to_record(injection, &state.node);
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
    state
        .metrics
        .chaos_injections
        .get_or_create(&ChaosLabels {
            kind: kind_name(injection.kind).to_ascii_lowercase(),
            phase: phase.to_owned(),
        })
        .inc();
    injections::publish_change(&state.bus, injection, phase, targets, message, &state.node).await;
}

/// Ends an active injection in `state`, undoing what it still does. Returns `None` when it
/// is not active. The caller holds the serial lock.
async fn end_injection<C: ChaosRuntime>(
    runtime: &C,
    id: &str,
    state: State,
    reason: &str,
) -> Option<Injection> {
    let chaos = runtime.chaos();
    let mut injection = chaos.book().get(id).filter(|i| i.is_active())?.clone();
    let undone = runtime.undo(&injection).await;
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
    commit(
        chaos,
        &injection,
        Some(state.phase()),
        &ended,
        &message,
        false,
    )
    .await;
    Some(injection)
}

/// Ends targets the engine recovered and injections whose duration ran out.
async fn reconcile<C: ChaosRuntime>(runtime: &C) {
    let chaos = runtime.chaos();
    let _serial = chaos.serial.lock().await;
    let statuses = runtime.target_statuses().await;
    let now = SystemTime::now();
    let changes = chaos.book().reconcile(
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
        commit(
            chaos,
            &change.injection,
            change.phase,
            &change.targets,
            &message,
            true,
        )
        .await;
    }
    let due = chaos.book().due(now);
    for id in due {
        end_injection(runtime, &id, State::Expired, "its duration ran out").await;
    }
}

/// Returns one injection, active or ended.
///
/// # Errors
///
/// Returns [`ChaosError::NotFound`] for an unknown id.
pub fn get_fault(state: &ChaosState, id: &str) -> Result<Injection, ChaosError> {
    state
        .book()
        .get(id)
        .cloned()
        .ok_or_else(|| ChaosError::NotFound(format!("injection {id:?} not found")))
}

/// Returns the injections that match `filter`, newest first.
pub fn list_faults(state: &ChaosState, filter: &ListFilter) -> Vec<Injection> {
    state.book().list(filter)
}

/// Undoes an active injection now.
///
/// # Errors
///
/// Returns [`ChaosError::NotFound`] for an unknown id and
/// [`ChaosError::FailedPrecondition`] for an injection that already ended.
pub async fn cancel_fault<C: ChaosRuntime>(runtime: &C, id: &str) -> Result<Injection, ChaosError> {
    let _serial = runtime.chaos().serial.lock().await;
    let current = get_fault(runtime.chaos(), id)?;
    if !current.is_active() {
        return Err(ChaosError::FailedPrecondition(format!(
            "injection {id} already ended: {}",
            current.state.phase()
        )));
    }
    end_injection(runtime, id, State::Cancelled, "cancelled")
        .await
        .ok_or_else(|| ChaosError::FailedPrecondition(format!("injection {id} already ended")))
}

/// Ends every active injection, newest first, undoing what each still does. Returns how
/// many were halted.
pub async fn halt_all<C: ChaosRuntime>(runtime: &C) -> u32 {
    let halted = end_all(runtime, State::Halted, "halted").await;
    info!(halted, "halted all injections");
    halted
}

/// Ends every active injection in `state` for `reason`, newest first, undoing what each
/// still does; each change is published. Returns how many were ended.
pub async fn end_all<C: ChaosRuntime>(runtime: &C, state: State, reason: &str) -> u32 {
    let _serial = runtime.chaos().serial.lock().await;
    let active = runtime.chaos().book().active();
    let mut ended = 0u32;
    for injection in active.iter().rev() {
        if end_injection(runtime, &injection.id, state, reason)
            .await
            .is_some()
        {
            ended += 1;
        }
    }
    ended
}

/// Returns the active injections and a receiver of every later change, taken together so
/// that no change falls between them.
pub fn watch_faults(state: &ChaosState) -> (Vec<Injection>, broadcast::Receiver<Change>) {
    let book = state.book();
    (book.active(), state.changes.subscribe())
}
