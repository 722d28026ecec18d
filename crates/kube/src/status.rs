//! Container statuses turned into the project's runtime signals and registry entries. A
//! container that starts running is a start. A terminated container, or a restart count that
//! went up, is an exit with its code, signal and whether it was OOMKilled. The pod's readiness
//! sets the instance's state.

use aro_proto::v1::signal::Kind;
use aro_proto::v1::{Exited, Instance, InstanceRef, InstanceState, Signal, Started};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::{digest, pods};

/// Converts a Kubernetes time to a protobuf one.
pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: at.subsec_nanosecond(),
    }
}

/// Reference of the pod as an instance of `workload`.
pub fn instance_ref(pod: &Pod, workload: &str) -> InstanceRef {
    InstanceRef {
        workload: workload.to_owned(),
        instance: pod.name_any(),
        generation: pods::generation(pod),
        node: pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.clone())
            .unwrap_or_default(),
    }
}

/// State of the pod as an instance.
pub fn instance_state(pod: &Pod) -> InstanceState {
    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref());
    if pods::is_quarantined(pod) {
        InstanceState::Isolated
    } else if pods::is_terminating(pod) || matches!(phase, Some("Succeeded" | "Failed")) {
        InstanceState::Stopped
    } else if pods::is_ready(pod) {
        InstanceState::Serving
    } else {
        InstanceState::Starting
    }
}

/// Registry entry of the pod as an instance of `workload`, whose desired replica count is
/// `replicas`.
pub fn instance(pod: &Pod, workload: &str, replicas: u32, now: Timestamp) -> Instance {
    let artifact_digest = container_statuses(pod)
        .first()
        .and_then(|status| digest::digest_of(&status.image_id))
        .unwrap_or_default()
        .to_owned();
    Instance {
        r#ref: Some(instance_ref(pod, workload)),
        state: instance_state(pod).into(),
        artifact_digest,
        started_at: pod
            .status
            .as_ref()
            .and_then(|status| status.start_time.as_ref())
            .map(|time| timestamp(time.0)),
        updated_at: Some(timestamp(now)),
        replicas,
        ..Instance::default()
    }
}

/// Names of the pod's containers in the running state.
pub fn running_containers(pod: &Pod) -> Vec<String> {
    container_statuses(pod)
        .iter()
        .filter(|status| is_running(status))
        .map(|status| status.name.clone())
        .collect()
}

fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|status| status.container_statuses.as_deref())
        .unwrap_or_default()
}

/// Id of a signal, the same as the process runtime's: `sig-<pod>-g<generation>-<kind>`.
fn signal_id(pod: &str, generation: u64, kind: &str) -> String {
    format!("sig-{pod}-g{generation}-{kind}")
}

/// Signals for what changed from `previous` (the last observation of the same pod, `None`
/// at first sight) to `current`. At first sight, only the present state counts: a
/// terminated container is an exit and running containers are a start.
///
/// Exits of a pod that is being deleted or was isolated are expected: the deployer or a
/// person stopped it.
pub fn signals(
    previous: Option<&Pod>,
    current: &Pod,
    workload: &str,
    now: Timestamp,
) -> Vec<Signal> {
    let reference = instance_ref(current, workload);
    let generation = reference.generation;
    let previous_generation = previous.map(pods::generation);
    let expected = pods::is_terminating(current) || pods::is_quarantined(current);
    let statuses = container_statuses(current);
    let mut out = Vec::new();
    let signal = |generation: u64, kind: Kind, at: Timestamp| Signal {
        id: signal_id(&reference.instance, generation, kind_name(&kind)),
        instance: Some(InstanceRef {
            generation,
            ..reference.clone()
        }),
        at: Some(timestamp(at)),
        kind: Some(kind),
    };

    // A restart count that went up: the earlier generation exited, as the container's last
    // state records.
    if let Some(before) = previous_generation.filter(|before| *before < generation) {
        let restarted = statuses.iter().find(|status| {
            let earlier = previous
                .and_then(|pod| restart_count(pod, &status.name))
                .unwrap_or(0);
            status.restart_count > earlier
        });
        let last = restarted.and_then(|status| status.last_state.as_ref()?.terminated.as_ref());
        let already = previous.is_some_and(any_terminated);
        if !already {
            let (exited, at) = exited(last, false, now);
            out.push(signal(before, Kind::Exited(exited), at));
        }
    }

    let terminated = statuses
        .iter()
        .find_map(|status| status.state.as_ref()?.terminated.as_ref());
    let was_terminated =
        previous.is_some_and(|pod| pods::generation(pod) == generation && any_terminated(pod));
    if let Some(terminated) = terminated
        && !was_terminated
    {
        let (exited, at) = exited(Some(terminated), expected, now);
        out.push(signal(generation, Kind::Exited(exited), at));
    }

    let running = !statuses.is_empty() && statuses.iter().all(is_running);
    let was_running = previous.is_some_and(|pod| {
        pods::generation(pod) == generation
            && !container_statuses(pod).is_empty()
            && container_statuses(pod).iter().all(is_running)
    });
    if running && !was_running {
        out.push(signal(generation, Kind::Started(Started { pid: 0 }), now));
    }
    out
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Started(_) => "started",
        Kind::Exited(_) => "exited",
    }
}

fn is_running(status: &ContainerStatus) -> bool {
    status
        .state
        .as_ref()
        .is_some_and(|state| state.running.is_some())
}

fn any_terminated(pod: &Pod) -> bool {
    container_statuses(pod).iter().any(|status| {
        status
            .state
            .as_ref()
            .is_some_and(|state| state.terminated.is_some())
    })
}

fn restart_count(pod: &Pod, container: &str) -> Option<i32> {
    container_statuses(pod)
        .iter()
        .find(|status| status.name == container)
        .map(|status| status.restart_count)
}

/// Returns the exit a terminated state records and when it happened. A state the API server
/// no longer reports is an exit of unknown code at `now`.
fn exited(
    terminated: Option<&ContainerStateTerminated>,
    expected: bool,
    now: Timestamp,
) -> (Exited, Timestamp) {
    let Some(terminated) = terminated else {
        return (
            Exited {
                expected,
                ..Exited::default()
            },
            now,
        );
    };
    let oom_killed = terminated.reason.as_deref() == Some("OOMKilled");
    // Container runtimes report a death by signal N as exit code 128 + N and rarely fill in
    // the signal itself.
    let signal = terminated.signal.or_else(|| {
        (129..=159)
            .contains(&terminated.exit_code)
            .then(|| terminated.exit_code - 128)
    });
    let exited = Exited {
        code: Some(terminated.exit_code),
        signal,
        expected,
        oom_killed,
    };
    (
        exited,
        terminated.finished_at.as_ref().map_or(now, |time| time.0),
    )
}
