//! Objects the mock API server returns: the `web` Deployment in namespace `shop`, its
//! ReplicaSets and pods, leases, a node and error statuses.

use std::time::Duration;

use aro_kube::{Actuator, Clock, Settings};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde_json::{Value, json};

pub(crate) const NAMESPACE: &str = "shop";
pub(crate) const HASH: &str = "5d8f7c9b4";
pub(crate) const IDENTITY: &str = "deployer-a";
pub(crate) const NOW: &str = "2026-12-04T19:00:00Z";
pub(crate) const IMAGE_DIGEST: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(crate) const OTHER_DIGEST: &str =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

pub(crate) const PODS: &str = "/api/v1/namespaces/shop/pods";
pub(crate) const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/web";
pub(crate) const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/shop/replicasets";
pub(crate) const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/shop/leases/aro-web";
pub(crate) const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/shop/leases";
pub(crate) const SELECTOR: &str = "labelSelector=app=web";
pub(crate) const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies";

pub(crate) fn now() -> Timestamp {
    NOW.parse().expect("NOW is RFC 3339")
}

/// Settings with short verification and two attempts on conflict.
pub(crate) fn settings() -> Settings {
    Settings {
        conflict_attempts: 2,
        verify_timeout: Duration::from_secs(10),
        verify_interval: Duration::from_secs(1),
        quarantine_retention: Duration::from_secs(3600),
        ..Settings::new(IDENTITY)
    }
}

pub(crate) fn actuator(client: Client) -> Actuator {
    Actuator::new(client, settings(), Clock::fixed(now()))
}

pub(crate) fn pod_path(name: &str) -> String {
    format!("{PODS}/{name}")
}

/// Name of the `n`-th pod of the current ReplicaSet.
pub(crate) fn pod_name(n: u32) -> String {
    format!("web-{HASH}-p{n}")
}

/// Builds a running pod of `web`, ready or not, with resourceVersion `version`.
pub(crate) fn pod(n: u32, ready: bool, version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(n),
            "namespace": NAMESPACE,
            "uid": format!("uid-pod-{n}"),
            "resourceVersion": version,
            "labels": { "app": "web", "pod-template-hash": HASH, "aro.io/heal": "enabled" },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{HASH}"),
                "uid": "uid-rs-3", "controller": true
            }]
        },
        "spec": {
            "nodeName": "node-a",
            "containers": [{ "name": "app", "image": format!("registry.local/web@{IMAGE_DIGEST}") }]
        },
        "status": {
            "phase": "Running",
            "startTime": "2026-12-04T18:00:00Z",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
            "containerStatuses": [container_status(0, json!({ "running": { "startedAt": "2026-12-04T18:00:01Z" } }), None)]
        }
    })
}

/// Status of the `app` container with its restart count, state and last state.
pub(crate) fn container_status(restarts: i32, state: Value, last: Option<Value>) -> Value {
    let mut status = json!({
        "name": "app",
        "image": format!("registry.local/web@{IMAGE_DIGEST}"),
        "imageID": format!("registry.local/web@{IMAGE_DIGEST}"),
        "ready": true,
        "restartCount": restarts,
        "state": state,
    });
    if let Some(last) = last {
        status["lastState"] = last;
    }
    status
}

pub(crate) fn pod_list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "500" }, "items": items })
}

/// Builds the `web` Deployment at `revision`, with 2 desired replicas.
pub(crate) fn deployment(revision: u32, version: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": NAMESPACE, "uid": "uid-deploy", "resourceVersion": version,
            "generation": 7,
            "annotations": { "deployment.kubernetes.io/revision": revision.to_string() }
        },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": template("web:v3", Some(HASH))
        },
        "status": { "observedGeneration": 7, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2 }
    })
}

/// Builds a pod template running `image`, with the `pod-template-hash` label when given.
pub(crate) fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({ "app": "web", "aro.io/heal": "enabled" });
    if let Some(hash) = hash {
        labels["pod-template-hash"] = json!(hash);
    }
    json!({
        "metadata": { "labels": labels },
        "spec": { "containers": [{ "name": "app", "image": image }] }
    })
}

/// Builds a ReplicaSet of `web` at `revision` running `image`, owned by the Deployment unless
/// `owner_uid` names another owner.
pub(crate) fn replica_set(revision: u32, image: &str, owner_uid: &str) -> Value {
    let hash = format!("hash{revision}");
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("web-{hash}"), "namespace": NAMESPACE,
            "annotations": { "deployment.kubernetes.io/revision": revision.to_string() },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner_uid, "controller": true }]
        },
        "spec": {
            "selector": { "matchLabels": { "app": "web", "pod-template-hash": hash } },
            "template": template(image, Some(&hash))
        }
    })
}

pub(crate) fn replica_set_list(items: Vec<Value>) -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "ReplicaSetList", "metadata": { "resourceVersion": "600" }, "items": items })
}

/// Builds the lease `name` held by `holder`, last renewed at `renewed`, for 30 s.
pub(crate) fn lease_named(name: &str, holder: &str, renewed: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": name, "namespace": NAMESPACE, "resourceVersion": "40" },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 30,
            "acquireTime": "2026-12-04T18:59:00.000000Z",
            "renewTime": renewed,
            "leaseTransitions": 2
        }
    })
}

/// Builds the lease of `web` held by `holder`, last renewed at `renewed`, for 30 s.
pub(crate) fn lease(holder: &str, renewed: &str) -> Value {
    lease_named("aro-web", holder, renewed)
}

/// Builds the lease of `web` held by this deployer, renewed 10 s ago.
pub(crate) fn own_lease() -> Value {
    lease(IDENTITY, "2026-12-04T18:59:50.000000Z")
}

/// Builds the renewed lease body this deployer writes at [`NOW`].
pub(crate) fn renewed_lease_body() -> Value {
    json!({
        "metadata": { "name": "aro-web", "resourceVersion": "40" },
        "spec": {
            "holderIdentity": IDENTITY,
            "leaseDurationSeconds": 30,
            "acquireTime": "2026-12-04T18:59:00.000000Z",
            "renewTime": "2026-12-04T19:00:00.000000Z",
            "leaseTransitions": 2
        }
    })
}

/// Builds an API error status.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message })
}

pub(crate) fn not_found(what: &str) -> Value {
    status(404, "NotFound", &format!("{what} not found"))
}

pub(crate) fn conflict() -> Value {
    status(
        409,
        "Conflict",
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// Builds the NetworkPolicy that partitions the pods of `injection`: it selects them by their
/// partition label and, with both policy types and no rule, allows no traffic.
pub(crate) fn partition_policy(injection: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": format!("aro-partition-{injection}"),
            "namespace": NAMESPACE,
            "labels": { "io.aro.managed": "true", "aro.io/injection": injection },
        },
        "spec": {
            "podSelector": { "matchLabels": { "aro.io/partitioned": injection } },
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

/// Builds the merge patch that sets the partition label to `value`, or removes it for null.
pub(crate) fn partition_label(value: Value) -> Value {
    json!({ "metadata": { "labels": { "aro.io/partitioned": value } } })
}

/// Builds pod `n` of `web` carrying the partition label of `injection`.
pub(crate) fn partitioned_pod(n: u32, injection: &str) -> Value {
    let mut pod = pod(n, true, "120");
    pod["metadata"]["labels"]["aro.io/partitioned"] = json!(injection);
    pod
}

/// Steps that several scenarios share.
pub(crate) trait Steps {
    /// Expects this deployer's lease on `web` to be read and renewed.
    fn renew_lease(self) -> Self;
    /// Expects the lease on `web` to be read again before a destructive call, still this
    /// deployer's.
    fn check_lease(self) -> Self;
    /// Expects the `web` Deployment to be read, at revision 3.
    fn read_deployment(self) -> Self;
    /// Expects the pods of `web` to be listed by the Deployment's selector.
    fn list_web_pods(self, items: Vec<Value>) -> Self;
    /// Expects a Kubernetes Event recorded in `namespace` about the object of `kind` and `name`.
    fn event(self, namespace: &str, event_type: &str, reason: &str, kind: &str, name: &str)
    -> Self;
    /// Expects the Eviction API to be called for pod `n`.
    fn evict_pod(self, n: u32) -> Self;
    /// Expects the lease of `web` to be renewed and checked, then pod `n` to be labelled as
    /// partitioned by `injection`.
    fn label_partitioned(self, n: u32, injection: &str) -> Self;
    /// Expects pod `n` to lose its partition label, and a `FaultReverted` Event on it.
    fn reconnect(self, n: u32) -> Self;
    /// Expects the NetworkPolicy of `injection` to be deleted.
    fn delete_policy(self, injection: &str) -> Self;
}

impl Steps for crate::scenario::Scenario {
    fn renew_lease(self) -> Self {
        self.get(LEASE)
            .reply(200, own_lease())
            .put(LEASE)
            .body_contains(renewed_lease_body())
            .echo(200)
    }

    fn check_lease(self) -> Self {
        self.get(LEASE).reply(200, own_lease())
    }

    fn read_deployment(self) -> Self {
        self.get(DEPLOYMENT).reply(200, deployment(3, "70"))
    }

    fn list_web_pods(self, items: Vec<Value>) -> Self {
        self.get(PODS).query(SELECTOR).reply(200, pod_list(items))
    }

    fn event(
        self,
        namespace: &str,
        event_type: &str,
        reason: &str,
        kind: &str,
        name: &str,
    ) -> Self {
        self.post(&format!(
            "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
        ))
        .body_contains(json!({
            "type": event_type,
            "reason": reason,
            "regarding": { "kind": kind, "name": name },
            "reportingController": "aro-deployer",
            "reportingInstance": IDENTITY,
        }))
        .echo(201)
    }

    fn evict_pod(self, n: u32) -> Self {
        self.post(&format!("{}/eviction", pod_path(&pod_name(n))))
            .body(json!({
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": { "name": pod_name(n), "namespace": NAMESPACE },
            }))
            .reply(
                201,
                json!({ "apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201 }),
            )
    }

    fn label_partitioned(self, n: u32, injection: &str) -> Self {
        self.renew_lease()
            .check_lease()
            .patch(&pod_path(&pod_name(n)))
            .body(partition_label(json!(injection)))
            .reply(200, partitioned_pod(n, injection))
    }

    fn reconnect(self, n: u32) -> Self {
        self.patch(&pod_path(&pod_name(n)))
            .body(partition_label(Value::Null))
            .reply(200, pod(n, true, "121"))
            .event(NAMESPACE, "Normal", "FaultReverted", "Pod", &pod_name(n))
    }

    fn delete_policy(self, injection: &str) -> Self {
        self.delete(&format!("{POLICIES}/aro-partition-{injection}"))
            .reply(200, partition_policy(injection))
    }
}

/// Builds the first command of the incident of pod 1, with `action`.
pub(crate) fn command(action: aro_proto::v1::Action) -> aro_proto::v1::Command {
    aro_proto::v1::Command {
        id: "cmd-inc-web-1-a1".to_owned(),
        incident_id: "inc-web-1".to_owned(),
        attempt: 1,
        target: Some(aro_proto::v1::InstanceRef {
            workload: "web".to_owned(),
            instance: pod_name(1),
            generation: 1,
            node: "node-a".to_owned(),
        }),
        action: action.into(),
        ..aro_proto::v1::Command::default()
    }
}

/// Pod `n` decoded as the code under test receives it.
pub(crate) fn typed_pod(n: u32, ready: bool, version: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(pod(n, ready, version)).expect("the pod fixture decodes")
}
