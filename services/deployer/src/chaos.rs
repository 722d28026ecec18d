//! The Chaos API on any runtime: validation, target selection, idempotency, durations,
//! cancellation, halting and watching of fault injections. Every change is stored in the
//! injections bucket and published as a chaos event. A runtime supplies its instances and
//! the effects of each fault through [`ChaosRuntime`].

mod lifecycle;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use aro_bus::{Bus, InjectionStore};
use aro_proto::v1::ChaosKind;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::domain::chaos::selection::{
    self, BlastRadius, Candidate, SelectionError, Selector, WorkloadView,
};
use crate::domain::chaos::{self, ChaosBook, Injection, Params, State, Target, TargetStatus};
use crate::metrics::Metrics;

pub use lifecycle::{
    Change, adopt, cancel_fault, end_all, get_fault, halt_all, list_faults, watch_faults,
};

/// Changes a watcher may fall behind by before it is sent the active set again.
const WATCH_BUFFER: usize = 1024;

/// Status of each instance of a runtime, by (workload, instance).
pub type TargetStatuses = HashMap<(String, String), TargetStatus>;

/// The workloads and instances a request selects among.
#[derive(Clone, Debug, Default)]
pub struct FleetView {
    /// Each workload's name and labels. A name may repeat with other labels.
    pub workloads: Vec<(String, BTreeMap<String, String>)>,
    pub candidates: Vec<Candidate>,
    /// Labels of each instance, by (workload, instance), for a runtime whose instances carry
    /// their own labels. A label selector then hits only the instances that carry them.
    /// Empty where labels belong to the workload.
    pub instance_labels: HashMap<(String, String), BTreeMap<String, String>>,
}

/// A runtime that serves the Chaos API: it lists its instances and makes and undoes faults.
pub trait ChaosRuntime: Send + Sync + 'static {
    /// Returns the runtime's fault-injection state.
    fn chaos(&self) -> &ChaosState;

    /// Name of the runtime, stored with each injection.
    fn runtime_name(&self) -> &str;

    /// Reads the workloads and instances to select among.
    fn fleet_view(&self) -> impl Future<Output = Result<FleetView, ChaosError>> + Send;

    /// Checks, before anything is done, that the runtime can inject a fault of `kind` with
    /// `params` into `targets`.
    fn check(
        &self,
        kind: ChaosKind,
        params: &Params,
        targets: &[Candidate],
    ) -> Result<(), ChaosError>;

    /// Applies `injection` to its targets and records what was done in it: the targets that
    /// were hit, its message and when it took effect. When one target fails, undoes the
    /// others and returns the error.
    fn apply(
        &self,
        injection: &mut Injection,
        store: &InjectionStore,
    ) -> impl Future<Output = Result<(), ChaosError>> + Send;

    /// Undoes the effects of `injection` on its active targets. Returns what was done, one
    /// sentence per target.
    fn undo(&self, injection: &Injection) -> impl Future<Output = String> + Send;

    /// Reads the status of every instance, to end the targets the engine recovered.
    fn target_statuses(&self) -> impl Future<Output = TargetStatuses> + Send;
}

/// Fault-injection state of a runtime.
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
    bus: Bus,
    metrics: Arc<Metrics>,
    node: String,
    /// Cancelled when the deployer stops; ends watches and the reconciliation.
    stopping: CancellationToken,
    /// Ids the next injections take, in order, before random ones.
    preset_ids: Mutex<VecDeque<String>>,
}

impl ChaosState {
    /// Creates the state of a deployer on `node` that publishes chaos events on `bus`.
    pub fn new(bus: Bus, metrics: Arc<Metrics>, node: String, stopping: CancellationToken) -> Self {
        Self {
            book: Mutex::default(),
            serial: tokio::sync::Mutex::new(()),
            store: OnceLock::new(),
            changes: broadcast::channel(WATCH_BUFFER).0,
            run_id: format!("run-{:016x}", rand::random::<u64>()),
            bus,
            metrics,
            node,
            stopping,
            preset_ids: Mutex::default(),
        }
    }

    /// Makes the next injections take `ids`, in order, before random ones, so that a test can
    /// script the API calls that name an injection.
    #[must_use]
    pub fn with_ids(self, ids: impl IntoIterator<Item = String>) -> Self {
        self.preset_ids
            .lock()
            .expect("preset ids lock poisoned")
            .extend(ids);
        self
    }

    fn next_id(&self) -> String {
        let preset = self
            .preset_ids
            .lock()
            .expect("preset ids lock poisoned")
            .pop_front();
        preset.unwrap_or_else(|| format!("inj-{:016x}", rand::random::<u64>()))
    }

    /// Locks the book of injections.
    pub fn book(&self) -> MutexGuard<'_, ChaosBook> {
        self.book.lock().expect("chaos book lock poisoned")
    }

    /// Node name reported in the injections' targets.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Resolves once the deployer begins to stop.
    pub async fn stopping(&self) {
        self.stopping.cancelled().await;
    }

    fn store(&self) -> Result<&InjectionStore, ChaosError> {
        self.store.get().ok_or(ChaosError::Unavailable)
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
    Runtime(#[source] crate::backend::Error),
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

/// Name of `kind` without its `CHAOS_KIND_` prefix: `KILL`, `PARTITION`, ...
pub fn kind_name(kind: ChaosKind) -> &'static str {
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
    if request.duration.is_some_and(|d| d.is_zero()) {
        return Err(ChaosError::InvalidArgument {
            field: "duration",
            message: "0s given: give a positive duration, or leave it unset to keep the fault \
                      until it is cancelled"
                .to_owned(),
        });
    }
    if let Some(duration) = request.duration
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

/// Injects a fault into the instances the request selects, or, for a dry run, returns them
/// and changes nothing. Repeating a request with the same idempotency key returns the first
/// injection.
///
/// # Errors
///
/// Rejects an invalid kind, parameter, duration or key, and a selector that matches nothing
/// or names an unknown or stopped instance. Without `allow_last_replica`, rejects a request
/// that would hit the last serving instance of a workload. Returns the runtime's reason
/// when it cannot inject the fault.
pub async fn inject<C: ChaosRuntime>(
    runtime: &C,
    request: InjectRequest,
) -> Result<Injected, ChaosError> {
    let (kind, params) = validate(&request)?;
    let state = runtime.chaos();
    let _serial = state.serial.lock().await;
    if !request.dry_run && !request.idempotency_key.is_empty() {
        let existing = state.book().by_key(&request.idempotency_key).cloned();
        if let Some(injection) = existing {
            if injection.kind != kind {
                return Err(ChaosError::InvalidArgument {
                    field: "idempotency_key",
                    message: format!(
                        "{:?} already made {} as a {}, not a {}: use a new key",
                        request.idempotency_key,
                        injection.id,
                        kind_name(injection.kind),
                        kind_name(kind)
                    ),
                });
            }
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
        Some(state.store()?.clone())
    };
    let view = runtime.fleet_view().await?;
    let targets = select_targets(&view, &request)?;
    runtime.check(kind, &params, &targets)?;
    let mut injection = Injection {
        id: String::new(),
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
        run_id: state.run_id.clone(),
        runtime: runtime.runtime_name().to_owned(),
    };
    let Some(store) = store else {
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

    injection.id = state.next_id();
    runtime.apply(&mut injection, &store).await?;
    injection.expires_at = request.duration.map(|d| injection.injected_at + d);
    injection.start();
    if !injection.is_active() {
        injection.message.push_str("; nothing to undo");
    }
    if let Err(error) = store
        .put(&crate::injections::to_record(&injection, &state.node))
        .await
    {
        let undone = runtime.undo(&injection).await;
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
    lifecycle::commit(
        state,
        &injection,
        Some("injected"),
        &targets,
        &message,
        false,
    )
    .await;
    Ok(Injected {
        injection,
        dry_run: false,
        replayed: false,
    })
}

/// Finds the instances a request hits, applying the selector, the blast radius and the
/// last-replica guard.
fn select_targets(view: &FleetView, request: &InjectRequest) -> Result<Vec<Candidate>, ChaosError> {
    let workloads: Vec<WorkloadView<'_>> = view
        .workloads
        .iter()
        .map(|(name, labels)| WorkloadView { name, labels })
        .collect();
    let labelled: Vec<Candidate>;
    let candidates = if view.instance_labels.is_empty() || request.selector.labels.is_empty() {
        &view.candidates
    } else {
        labelled = view
            .candidates
            .iter()
            .filter(|candidate| {
                view.instance_labels
                    .get(&(candidate.workload.clone(), candidate.instance.clone()))
                    .is_some_and(|labels| selection::labels_match(labels, &request.selector.labels))
            })
            .cloned()
            .collect();
        &labelled
    };
    let matching = selection::matching(&request.selector, &workloads, candidates)?;
    let targets = selection::pick(matching, request.blast_radius, &mut rand::rng())?;
    if !request.allow_last_replica {
        selection::keep_last_replica(&targets, &view.candidates)?;
    }
    Ok(targets)
}

/// Looks up the status of one instance; an instance not in `statuses` is gone.
pub fn lookup(statuses: &TargetStatuses, workload: &str, instance: &str) -> TargetStatus {
    statuses
        .get(&(workload.to_owned(), instance.to_owned()))
        .copied()
        .unwrap_or(TargetStatus::Gone)
}

/// Instance names of `targets` for messages: "web-1 generation 1, web-2 generation 3".
pub fn target_names(targets: &[Target]) -> String {
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("{} generation {}", t.instance, t.generation))
        .collect();
    names.join(", ")
}
