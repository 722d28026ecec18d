use std::time::Duration;

use aro_kube::Error;
use serde_json::json;

use crate::fixtures::*;
use crate::scenario::Scenario;

fn isolation_patch(version: &str) -> serde_json::Value {
    json!({
        "metadata": {
            "resourceVersion": version,
            "labels": { "app": null, "pod-template-hash": null, "aro.io/quarantined": "true" },
            "annotations": {
                "aro.io/quarantine-expires-at": "2026-12-04T20:00:00Z",
                "aro.io/quarantined-labels": "{\"app\":\"web\",\"pod-template-hash\":\"5d8f7c9b4\"}",
                "aro.io/quarantined-workload": "web",
            },
        },
    })
}

#[tokio::test]
async fn isolation_relabels_the_pod() {
    let isolated = Scenario::new()
        .renew_lease()
        .read_deployment()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .body(isolation_patch("100"))
        .reply(200, pod(1, true, "102"))
        .event(NAMESPACE, "Normal", "Isolated", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            actuator.isolate(&typed_pod(1, true, "100")).await
        })
        .await;

    let isolated = isolated.expect("the pod is isolated");
    assert_eq!(isolated.pod, pod_name(1));
    assert_eq!(isolated.serving_before, vec![pod_name(2)]);
    assert_eq!(isolated.expires_at.to_string(), "2026-12-04T20:00:00Z");
}

#[tokio::test]
async fn isolation_retries_after_a_conflict() {
    let isolated = Scenario::new()
        .renew_lease()
        .read_deployment()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .body(isolation_patch("100"))
        .reply(409, conflict())
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "105"))
        .list_web_pods(vec![pod(1, true, "105"), pod(2, true, "101")])
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .body(isolation_patch("105"))
        .reply(200, pod(1, true, "106"))
        .event(NAMESPACE, "Normal", "Isolated", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            actuator.isolate(&typed_pod(1, true, "100")).await
        })
        .await;

    assert!(
        isolated.is_ok(),
        "the second attempt succeeds: {isolated:?}"
    );
}

#[tokio::test]
async fn isolation_gives_up_after_repeated_conflicts() {
    let mut scenario = Scenario::new().renew_lease().read_deployment();
    for version in ["100", "105"] {
        scenario = scenario
            .get(&pod_path(&pod_name(1)))
            .reply(200, pod(1, true, version))
            .list_web_pods(vec![pod(1, true, version), pod(2, true, "101")])
            .check_lease()
            .patch(&pod_path(&pod_name(1)))
            .body(isolation_patch(version))
            .reply(409, conflict());
    }
    let isolated = scenario
        .run(actuator, async |actuator| {
            actuator.isolate(&typed_pod(1, true, "100")).await
        })
        .await;

    match isolated {
        Err(Error::ConflictExhausted { object, attempts }) => {
            assert_eq!(object, format!("pod shop/{}", pod_name(1)));
            assert_eq!(attempts, 2);
        }
        other => panic!("expected ConflictExhausted, got {other:?}"),
    }
}

#[tokio::test]
async fn eviction_uses_the_policy_v1_api() {
    let evicted = Scenario::new()
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .evict_pod(1)
        .event(NAMESPACE, "Normal", "Evicted", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            actuator.evict(&typed_pod(1, true, "100")).await
        })
        .await;

    let evicted = evicted.expect("the pod is evicted");
    assert_eq!(evicted.pod, pod_name(1));
    assert_eq!(evicted.workload, "web");
}

#[tokio::test]
async fn eviction_blocked_by_a_budget_backs_off_then_succeeds() {
    let blocked = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 429, "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": { "causes": [{ "reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently" }], "retryAfterSeconds": 5 }
    });
    let (first, second) = Scenario::new()
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .post(&format!("{}/eviction", pod_path(&pod_name(1))))
        .reply(429, blocked)
        .event(NAMESPACE, "Warning", "EvictionBlocked", "Pod", &pod_name(1))
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .check_lease()
        .evict_pod(1)
        .event(NAMESPACE, "Normal", "Evicted", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            let first = actuator.evict(&typed_pod(1, true, "100")).await;
            let second = actuator.evict(&typed_pod(1, true, "100")).await;
            (first, second)
        })
        .await;

    let delay = match first {
        Err(Error::EvictionBlocked { retry_after, .. }) => retry_after,
        other => panic!("expected EvictionBlocked, got {other:?}"),
    };
    assert_eq!(delay, Duration::from_secs(5));
    assert!(
        second.is_ok(),
        "the eviction after the back-off succeeds: {second:?}"
    );
}

#[tokio::test]
async fn last_ready_pod_is_not_evicted() {
    let evicted = Scenario::new()
        .renew_lease()
        .read_deployment()
        .list_web_pods(vec![pod(1, true, "100"), pod(2, false, "101")])
        .run(actuator, async |actuator| {
            actuator.evict(&typed_pod(1, true, "100")).await
        })
        .await;

    match evicted {
        Err(Error::LastReadyPod { pod, workload }) => {
            assert_eq!(pod, pod_name(1));
            assert_eq!(workload, "web");
        }
        other => panic!("expected LastReadyPod, got {other:?}"),
    }
}

#[tokio::test]
async fn lost_lease_stops_isolation_before_the_patch() {
    let isolated = Scenario::new()
        .renew_lease()
        .read_deployment()
        .get(&pod_path(&pod_name(1)))
        .reply(200, pod(1, true, "100"))
        .list_web_pods(vec![pod(1, true, "100"), pod(2, true, "101")])
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T19:00:00.000000Z"))
        .run(actuator, async |actuator| {
            actuator.isolate(&typed_pod(1, true, "100")).await
        })
        .await;

    match isolated {
        Err(Error::LeaseLost {
            operation, holder, ..
        }) => {
            assert_eq!(operation, "isolation");
            assert_eq!(holder, "deployer-b");
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

#[tokio::test]
async fn rollback_restores_the_previous_template() {
    let foreign = replica_set(2, "web:foreign", "uid-other");
    let rolled_back = Scenario::new()
        .renew_lease()
        .read_deployment()
        .get(REPLICA_SETS)
        .query(SELECTOR)
        .reply(
            200,
            replica_set_list(vec![
                replica_set(1, "web:v1", "uid-deploy"),
                replica_set(3, "web:v3", "uid-deploy"),
                replica_set(2, "web:v2", "uid-deploy"),
                foreign,
            ]),
        )
        .check_lease()
        .put(DEPLOYMENT)
        .body_at("/spec/template", template("web:v2", None))
        .body_at("/metadata/resourceVersion", json!("70"))
        .body_at(
            "/metadata/annotations",
            json!({
                "deployment.kubernetes.io/revision": "3",
                "aro.io/rolled-back-to-revision": "2",
            }),
        )
        .echo(200)
        .event(NAMESPACE, "Normal", "RolledBack", "Deployment", "web")
        .run(actuator, async |actuator| {
            actuator.rollback(NAMESPACE, "web", "web").await
        })
        .await;

    let rolled_back = rolled_back.expect("the deployment is rolled back");
    assert_eq!(rolled_back.from_revision, 3);
    assert_eq!(rolled_back.to_revision, 2);
    assert_eq!(rolled_back.replica_set, "web-hash2");
}

#[tokio::test]
async fn rollback_without_an_earlier_revision_is_invalid() {
    let rolled_back = Scenario::new()
        .renew_lease()
        .read_deployment()
        .get(REPLICA_SETS)
        .query(SELECTOR)
        .reply(
            200,
            replica_set_list(vec![replica_set(3, "web:v3", "uid-deploy")]),
        )
        .run(actuator, async |actuator| {
            actuator.rollback(NAMESPACE, "web", "web").await
        })
        .await;

    let error = rolled_back.expect_err("there is nothing to roll back to");
    assert_eq!(
        error.to_string(),
        "invalid deployment shop/web: it has no ReplicaSet with a revision below 3 to roll back to"
    );
}

#[tokio::test]
async fn cordon_marks_the_node_unschedulable() {
    let node_lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases/aro-node-node-a";
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": "node-a", "uid": "uid-node-a", "resourceVersion": "9" },
        "spec": {}
    });
    let cordoned = Scenario::new()
        .get(node_lease)
        .reply(404, not_found("leases aro-node-node-a"))
        .post("/apis/coordination.k8s.io/v1/namespaces/default/leases")
        .body(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": "aro-node-node-a", "namespace": "default" },
            "spec": {
                "holderIdentity": IDENTITY,
                "leaseDurationSeconds": 30,
                "acquireTime": "2026-12-04T19:00:00.000000Z",
                "renewTime": "2026-12-04T19:00:00.000000Z",
                "leaseTransitions": 0,
            },
        }))
        .echo(201)
        .get("/api/v1/nodes/node-a")
        .reply(200, node)
        .get(node_lease)
        .reply(200, lease_named("aro-node-node-a", IDENTITY, "2026-12-04T19:00:00.000000Z"))
        .patch("/api/v1/nodes/node-a")
        .body(json!({ "metadata": { "resourceVersion": "9" }, "spec": { "unschedulable": true } }))
        .reply(200, json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "node-a" }, "spec": { "unschedulable": true } }))
        .event("default", "Normal", "Cordoned", "Node", "node-a")
        .run(actuator, async |actuator| actuator.cordon("node-a").await)
        .await;

    assert!(cordoned.expect("the node is cordoned"), "the node changed");
}

#[tokio::test]
async fn reaper_deletes_expired_quarantined_pods() {
    let quarantined = |n: u32, expires_at: &str| {
        let mut pod = pod(n, true, "100");
        pod["metadata"]["labels"] =
            json!({ "aro.io/heal": "enabled", "aro.io/quarantined": "true" });
        pod["metadata"]["ownerReferences"] = json!([]);
        pod["metadata"]["annotations"] = json!({
            "aro.io/quarantine-expires-at": expires_at,
            "aro.io/quarantined-workload": "web",
        });
        pod
    };
    let reaped = Scenario::new()
        .get(PODS)
        .query("labelSelector=aro.io/quarantined=true")
        .reply(
            200,
            pod_list(vec![
                quarantined(1, "2026-12-04T18:30:00Z"),
                quarantined(2, "2026-12-04T20:30:00Z"),
            ]),
        )
        .renew_lease()
        .check_lease()
        .delete(&pod_path(&pod_name(1)))
        .reply(200, quarantined(1, "2026-12-04T18:30:00Z"))
        .event(NAMESPACE, "Normal", "QuarantineEnded", "Pod", &pod_name(1))
        .run(actuator, async |actuator| actuator.reap(NAMESPACE).await)
        .await;

    assert_eq!(reaped.expect("the listing works"), vec![pod_name(1)]);
}
