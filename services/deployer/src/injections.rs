//! Persistence of fault injections in the `aro_injections` bucket, their protobuf form, the
//! chaos events that report their changes, and the clean-up a starting deployer does for the
//! injections its earlier run left active.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use aro_bus::{Bus, InjectionStore, subjects};
use aro_proto::v1::{
    self, ChaosEvent, ChaosKind, CorruptFileParams, CrashLoopParams, FaultParams, FileBackup,
    GrowMemoryParams, InjectionRecord, InjectionState, InjectionTarget, InstanceRef,
    LogStormParams, fault_params,
};
use tracing::{error, info, warn};

use crate::convert::timestamp;
use crate::domain::chaos::{self, CorruptedFile, Injection, Params, State, Target};
use crate::domain::corruption::FileCorruption;
use crate::domain::ids;
use crate::file_corruption::{self, Undone};

/// Protobuf state of a domain state.
pub fn state_to_proto(state: State) -> InjectionState {
    match state {
        State::Active => InjectionState::Active,
        State::Completed => InjectionState::Completed,
        State::Expired => InjectionState::Expired,
        State::Cancelled => InjectionState::Cancelled,
        State::Halted => InjectionState::Halted,
        State::Reverted => InjectionState::Reverted,
        State::TargetRecovered => InjectionState::TargetRecovered,
    }
}

fn state_from_proto(state: InjectionState) -> State {
    match state {
        InjectionState::Active => State::Active,
        InjectionState::Completed => State::Completed,
        InjectionState::Expired => State::Expired,
        InjectionState::Cancelled => State::Cancelled,
        InjectionState::Halted => State::Halted,
        InjectionState::TargetRecovered => State::TargetRecovered,
        InjectionState::Reverted | InjectionState::Unspecified => State::Reverted,
    }
}

/// Protobuf parameters of domain parameters; `None` for a kind without parameters.
pub fn params_to_proto(params: &Params) -> Option<FaultParams> {
    let kind = match params {
        Params::None => return None,
        Params::CrashLoop { restarts } => fault_params::Kind::CrashLoop(CrashLoopParams {
            restarts: *restarts,
        }),
        Params::CorruptFile { path } => {
            fault_params::Kind::CorruptFile(CorruptFileParams { path: path.clone() })
        }
        Params::LogStorm { lines } => {
            fault_params::Kind::LogStorm(LogStormParams { lines: *lines })
        }
        Params::GrowMemory {
            mib_per_sec,
            max_mib,
        } => fault_params::Kind::GrowMemory(GrowMemoryParams {
            mib_per_sec: *mib_per_sec,
            max_mib: *max_mib,
        }),
    };
    Some(FaultParams { kind: Some(kind) })
}

/// Domain parameters of protobuf parameters, as given, without defaults.
pub fn params_from_proto(params: Option<&FaultParams>) -> Params {
    match params.and_then(|params| params.kind.as_ref()) {
        None => Params::None,
        Some(fault_params::Kind::CrashLoop(p)) => Params::CrashLoop {
            restarts: p.restarts,
        },
        Some(fault_params::Kind::CorruptFile(p)) => Params::CorruptFile {
            path: p.path.clone(),
        },
        Some(fault_params::Kind::LogStorm(p)) => Params::LogStorm { lines: p.lines },
        Some(fault_params::Kind::GrowMemory(p)) => Params::GrowMemory {
            mib_per_sec: p.mib_per_sec,
            max_mib: p.max_mib,
        },
    }
}

fn target_ref(target: &Target, node: &str) -> InstanceRef {
    InstanceRef {
        workload: target.workload.clone(),
        instance: target.instance.clone(),
        generation: target.generation,
        node: node.to_owned(),
    }
}

/// Protobuf form of an injection; `node` is recorded in the target references.
pub fn to_proto(injection: &Injection, node: &str) -> v1::Injection {
    v1::Injection {
        id: injection.id.clone(),
        kind: injection.kind as i32,
        injected_at: Some(timestamp(injection.injected_at)),
        targets: injection
            .targets
            .iter()
            .map(|target| InjectionTarget {
                instance: Some(target_ref(target, node)),
                active: target.active,
                remaining: target.remaining,
                message: target.message.clone(),
            })
            .collect(),
        state: state_to_proto(injection.state) as i32,
        expires_at: injection.expires_at.map(timestamp),
        ended_at: injection.ended_at.map(timestamp),
        message: injection.message.clone(),
        idempotency_key: injection.idempotency_key.clone(),
        revertible: chaos::revertible(injection.kind),
        params: params_to_proto(&injection.params),
    }
}

fn system_time(value: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    value.and_then(|t| SystemTime::try_from(*t).ok())
}

/// Stored form of an injection, with the bytes its file corruptions overwrote.
pub fn to_record(injection: &Injection, node: &str) -> InjectionRecord {
    InjectionRecord {
        injection: Some(to_proto(injection, node)),
        files: injection
            .files
            .iter()
            .map(|file| FileBackup {
                path: file.corruption.path.display().to_string(),
                offset: file.corruption.offset,
                original: file.corruption.original.clone(),
                written: file.corruption.written.clone(),
                instance: Some(InstanceRef {
                    workload: file.workload.clone(),
                    instance: file.instance.clone(),
                    generation: file.generation,
                    node: node.to_owned(),
                }),
            })
            .collect(),
        run_id: injection.run_id.clone(),
        runtime: injection.runtime.clone(),
    }
}

/// Domain form of a stored injection; `None` when it carries no injection.
pub fn from_record(record: &InjectionRecord) -> Option<Injection> {
    let stored = record.injection.as_ref()?;
    let targets = stored
        .targets
        .iter()
        .filter_map(|target| {
            let instance = target.instance.as_ref()?;
            Some(Target {
                workload: instance.workload.clone(),
                instance: instance.instance.clone(),
                generation: instance.generation,
                active: target.active,
                remaining: target.remaining,
                message: target.message.clone(),
            })
        })
        .collect();
    Some(Injection {
        id: stored.id.clone(),
        kind: ChaosKind::try_from(stored.kind).unwrap_or(ChaosKind::Unspecified),
        params: params_from_proto(stored.params.as_ref()),
        targets,
        injected_at: system_time(stored.injected_at.as_ref()).unwrap_or(SystemTime::UNIX_EPOCH),
        expires_at: system_time(stored.expires_at.as_ref()),
        state: state_from_proto(stored.state()),
        ended_at: system_time(stored.ended_at.as_ref()),
        message: stored.message.clone(),
        idempotency_key: stored.idempotency_key.clone(),
        files: record
            .files
            .iter()
            .map(|file| {
                let instance = file.instance.clone().unwrap_or_default();
                CorruptedFile {
                    workload: instance.workload,
                    instance: instance.instance,
                    generation: instance.generation,
                    corruption: FileCorruption {
                        path: PathBuf::from(&file.path),
                        offset: file.offset,
                        original: file.original.clone(),
                        written: file.written.clone(),
                    },
                }
            })
            .collect(),
        run_id: record.run_id.clone(),
        runtime: record.runtime.clone(),
    })
}

/// Publishes one change of `injection` on `aro.chaos.<workload>` for each workload of
/// `targets`, with the targets of that workload. The event id is
/// `chaos-<injection>-<phase>`, with `-<instance>` appended for a single recovered target
/// and `-<workload>` when the change spans several workloads, so a re-published copy is
/// dropped and no two events of one change share an id.
pub async fn publish_change(
    bus: &Bus,
    injection: &Injection,
    phase: &str,
    targets: &[Target],
    message: &str,
    node: &str,
) {
    let mut by_workload: BTreeMap<&str, Vec<InstanceRef>> = BTreeMap::new();
    for target in targets {
        by_workload
            .entry(target.workload.as_str())
            .or_default()
            .push(target_ref(target, node));
    }
    let several = by_workload.len() > 1;
    let mut base = ids::chaos_event_id(&injection.id, phase);
    if phase == State::TargetRecovered.phase() && injection.is_active() {
        let names: Vec<&str> = targets.iter().map(|t| t.instance.as_str()).collect();
        base = format!("{base}-{}", names.join("-"));
    }
    for (workload, refs) in by_workload {
        let id = if several {
            format!("{base}-{workload}")
        } else {
            base.clone()
        };
        let event = ChaosEvent {
            id,
            kind: injection.kind as i32,
            targets: refs,
            injected_at: Some(timestamp(injection.injected_at)),
            phase: phase.to_owned(),
            message: message.to_owned(),
            injection_id: injection.id.clone(),
            at: Some(timestamp(SystemTime::now())),
        };
        if let Err(error) = bus
            .publish(subjects::chaos(workload), &event.id, &event)
            .await
        {
            error!(event = %event.id, %error, "publishing a chaos event failed");
        }
    }
}

/// Describes the result of undoing `corruption`, logging a failure.
pub fn undone_message(
    id: &str,
    corruption: &FileCorruption,
    result: Result<Undone, String>,
) -> String {
    let path = corruption.path.display();
    match result {
        Ok(Undone::Restored) => format!(
            "restored {} bytes of {path} at offset {}",
            corruption.original.len(),
            corruption.offset
        ),
        Ok(Undone::ChangedSince) => {
            format!("left {path} as it is: its bytes changed since the injection")
        }
        Err(error) => {
            error!(injection = %id, %path, %error, "restoring a corrupted file failed");
            format!("restoring {path} failed: {error}")
        }
    }
}

/// Puts back the bytes of `files` on this host, newest first, so that overlapping ranges
/// end as they were. Returns one sentence per file.
async fn restore_host_files(id: &str, files: &[CorruptedFile]) -> Vec<String> {
    let mut messages = Vec::with_capacity(files.len());
    for file in files.iter().rev() {
        let corruption = file.corruption.clone();
        let undone = tokio::task::spawn_blocking(move || file_corruption::undo(&corruption))
            .await
            .map_err(|error| error.to_string())
            .and_then(|result| result.map_err(|error| error.to_string()));
        messages.push(undone_message(id, &file.corruption, undone));
    }
    messages
}

/// Ends every injection an earlier deployer run left active: puts back the bytes of
/// corrupted files and closes the others, whose instances ended with that run, as
/// `expired` when their deadline passed and `reverted` otherwise. Each change is stored and
/// published. Call it before the workloads' files are hashed, so that their digests are
/// taken from the restored bytes. Returns every stored injection, for idempotency keys and
/// listing.
///
/// # Errors
///
/// Returns the bucket error when the stored injections cannot be listed.
pub async fn recover(
    bus: &Bus,
    store: &InjectionStore,
    node: &str,
) -> aro_bus::Result<Vec<Injection>> {
    let records = store.list().await?;
    let mut injections = Vec::with_capacity(records.len());
    let now = SystemTime::now();
    for record in &records {
        let Some(mut injection) = from_record(record) else {
            warn!("stored injection without its injection skipped");
            continue;
        };
        if injection.is_active() {
            close_leftover(&mut injection, now).await;
            if let Err(error) = store.put(&to_record(&injection, node)).await {
                error!(injection = %injection.id, %error, "storing a closed leftover injection failed");
            }
            let targets = injection.targets.clone();
            let phase = injection.state.phase();
            let message = injection.message.clone();
            publish_change(bus, &injection, phase, &targets, &message, node).await;
            info!(injection = %injection.id, phase, %message, "closed an injection of an earlier deployer run");
        }
        injections.push(injection);
    }
    injections.sort_by_key(|injection| injection.injected_at);
    Ok(injections)
}

async fn close_leftover(injection: &mut Injection, now: SystemTime) {
    let expired = injection.expires_at.is_some_and(|at| at <= now);
    // The process runtime writes declared files on this host; a container's files ended
    // with its container.
    let mut sentences = if injection.runtime == "process" || injection.runtime.is_empty() {
        restore_host_files(&injection.id, &injection.files).await
    } else if injection.files.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "the corrupted files lived in {} instances, which ended with the earlier run",
            injection.runtime
        )]
    };
    for target in injection.targets.iter_mut().filter(|t| t.active) {
        target.message = format!(
            "{} generation {} ended with the earlier deployer run",
            target.instance, target.generation
        );
    }
    if injection.runtime == crate::kubernetes::chaos::RUNTIME {
        // Pods outlive the deployer: its partitions were removed before this runs.
        sentences = vec!["the restarted deployer removed its partitions".to_owned()];
    } else if injection.kind != ChaosKind::CorruptFile {
        sentences.push("its instances ended with the deployer run that made it".to_owned());
    }
    let state = if expired {
        State::Expired
    } else {
        State::Reverted
    };
    let message = format!(
        "closed by a restarted deployer{}: {}",
        if expired { " after its deadline" } else { "" },
        sentences.join("; ")
    );
    injection.end(state, now, message);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn record_round_trips() {
        let injection = Injection {
            id: "inj-1".to_owned(),
            kind: ChaosKind::CorruptFile,
            params: Params::CorruptFile {
                path: "data.txt".to_owned(),
            },
            targets: vec![Target {
                workload: "web".to_owned(),
                instance: "web-1".to_owned(),
                generation: 2,
                active: true,
                remaining: 0,
                message: String::new(),
            }],
            injected_at: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(160)),
            state: State::Active,
            ended_at: None,
            message: "overwrote 16 bytes".to_owned(),
            idempotency_key: "key-1".to_owned(),
            files: vec![CorruptedFile {
                workload: "web".to_owned(),
                instance: "web-1".to_owned(),
                generation: 2,
                corruption: FileCorruption {
                    path: PathBuf::from("/tmp/data.txt"),
                    offset: 4,
                    original: vec![1, 2, 3],
                    written: vec![254, 253, 252],
                },
            }],
            run_id: "run-1".to_owned(),
            runtime: "process".to_owned(),
        };
        let record = to_record(&injection, "node-a");
        assert_eq!(from_record(&record), Some(injection));
        assert_eq!(
            record.injection.map(|i| i.state()),
            Some(InjectionState::Active)
        );
    }

    #[test]
    fn params_round_trip() {
        for params in [
            Params::None,
            Params::CrashLoop { restarts: 3 },
            Params::CorruptFile {
                path: "a".to_owned(),
            },
            Params::LogStorm { lines: 5 },
            Params::GrowMemory {
                mib_per_sec: 1,
                max_mib: 2,
            },
        ] {
            let proto = params_to_proto(&params);
            assert_eq!(params_from_proto(proto.as_ref()), params);
        }
    }
}
