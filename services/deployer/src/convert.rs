//! Conversions from the deployer's records to the protobuf messages it stores and publishes.

use std::time::SystemTime;

use aro_proto::time::duration;
use aro_proto::v1::{
    self, DeclaredFile, ExecCheck, HealthCheck, Instance, InstanceRef, InstanceState, health_check,
};
use prost_types::Timestamp;

use crate::backend::{Exit, InstanceKey};
use crate::checksum_file::ChecksumFile;
use crate::domain::fleet::{InstanceRecord, State};
use crate::domain::ids;
use crate::domain::template::Placeholders;
use crate::domain::workload::{HealthProbe, ProbeTarget, WorkloadSpec};

/// Protobuf timestamp of a system time.
pub fn timestamp(at: SystemTime) -> Timestamp {
    Timestamp::from(at)
}

/// Registry state of a domain state.
pub fn instance_state(state: State) -> InstanceState {
    match state {
        State::Starting => InstanceState::Starting,
        State::Serving => InstanceState::Serving,
        State::Isolated => InstanceState::Isolated,
        State::Stopped => InstanceState::Stopped,
    }
}

/// Domain state of a registry state; `None` for an unspecified one.
pub fn domain_state(state: InstanceState) -> Option<State> {
    match state {
        InstanceState::Starting => Some(State::Starting),
        InstanceState::Serving => Some(State::Serving),
        InstanceState::Isolated => Some(State::Isolated),
        InstanceState::Stopped => Some(State::Stopped),
        InstanceState::Unspecified => None,
    }
}

/// Reference to the current generation of `record`.
pub fn instance_ref(record: &InstanceRecord, node: &str) -> InstanceRef {
    InstanceRef {
        workload: record.workload.clone(),
        instance: record.id.clone(),
        generation: record.generation,
        node: node.to_owned(),
    }
}

/// Reference to the generation `key` names.
pub fn key_ref(key: &InstanceKey, node: &str) -> InstanceRef {
    InstanceRef {
        workload: key.workload.clone(),
        instance: key.instance.clone(),
        generation: key.generation,
        node: node.to_owned(),
    }
}

/// Placeholder values of an instance reached at `host`.
pub fn placeholders<'a>(
    record: &'a InstanceRecord,
    detector: &'a str,
    host: &'a str,
) -> Placeholders<'a> {
    Placeholders {
        port: record.port,
        instance: &record.id,
        workload: &record.workload,
        detector,
        host,
    }
}

/// Converts an instance's rendered probe to its registry health check.
pub fn health_check(probe: &HealthProbe) -> HealthCheck {
    let check = match &probe.check {
        ProbeTarget::Tcp { port } => health_check::Check::TcpPort(u32::from(*port)),
        ProbeTarget::Http { url } => health_check::Check::HttpUrl(url.clone()),
        ProbeTarget::Grpc { address } => health_check::Check::GrpcAddress(address.clone()),
        ProbeTarget::Exec { argv } => health_check::Check::Exec(ExecCheck { argv: argv.clone() }),
    };
    HealthCheck {
        check: Some(check),
        interval: Some(duration(probe.interval)),
        timeout: Some(duration(probe.timeout)),
    }
}

/// Registry entry of `record`, reached at `host`; `declared_files` are the workload's checksum
/// files with their digests at start-up.
pub fn registry_entry(
    record: &InstanceRecord,
    spec: &WorkloadSpec,
    declared_files: &[ChecksumFile],
    node: &str,
    detector: &str,
    host: &str,
) -> Instance {
    let probe = spec.health.render(&placeholders(record, detector, host));
    Instance {
        r#ref: Some(instance_ref(record, node)),
        state: instance_state(record.state) as i32,
        artifact_digest: record.artifact_digest.clone(),
        pid: record.pid.unwrap_or_default(),
        slot: record.slot,
        health_check: Some(health_check(&probe)),
        pushes_heartbeats: spec.heartbeat_interval.is_some(),
        heartbeat_interval: spec.heartbeat_interval.map(duration),
        started_at: Some(timestamp(record.started_at)),
        updated_at: Some(timestamp(record.updated_at)),
        replicas: spec.replicas,
        start_timeout: Some(duration(spec.start_timeout)),
        declared_files: declared_files
            .iter()
            .map(|file| DeclaredFile {
                path: file.path.display().to_string(),
                digest: file.digest.clone(),
            })
            .collect(),
        memory_limit_bytes: spec.memory_limit.unwrap_or(0),
        // Without a declared digest the detector takes the digest at first start as the
        // expected one.
        expected_artifact_digest: spec.artifact_digest.clone().unwrap_or_default(),
    }
}

/// Builds the `started` signal of one generation.
pub fn started_signal(key: &InstanceKey, pid: u32, at: SystemTime, node: &str) -> v1::Signal {
    v1::Signal {
        id: ids::started_signal_id(&key.instance, key.generation),
        instance: Some(key_ref(key, node)),
        at: Some(timestamp(at)),
        kind: Some(v1::signal::Kind::Started(v1::Started { pid })),
    }
}

/// Builds the `exited` signal of one generation.
pub fn exited_signal(key: &InstanceKey, exit: &Exit, node: &str) -> v1::Signal {
    v1::Signal {
        id: ids::exited_signal_id(&key.instance, key.generation),
        instance: Some(key_ref(key, node)),
        at: Some(timestamp(exit.at)),
        kind: Some(v1::signal::Kind::Exited(v1::Exited {
            code: exit.code,
            signal: exit.signal,
            expected: exit.expected,
            oom_killed: exit.oom_killed,
        })),
    }
}
