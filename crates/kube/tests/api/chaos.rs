use aro_kube::Error;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::scenario::Scenario;

const INJECTION: &str = "inj-00000000000000a1";
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies";

fn policy_path(injection: &str) -> String {
    format!("{POLICIES}/aro-partition-{injection}")
}

/// Builds the NetworkPolicy that partitions the pods of `injection`: it selects them by their
/// partition label and, with both policy types and no rule, allows no traffic.
fn partition_policy(injection: &str) -> Value {
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

fn partition_label(value: Value) -> Value {
    json!({ "metadata": { "labels": { "aro.io/partitioned": value } } })
}

/// Builds pod `n` of `web` carrying the partition label of `injection`.
fn partitioned_pod(n: u32, injection: &str) -> Value {
    let mut pod = pod(n, true, "120");
    pod["metadata"]["labels"]["aro.io/partitioned"] = json!(injection);
    pod
}

#[tokio::test]
async fn kill_deletes_the_pod_at_once() {
    let killed = Scenario::new()
        .renew_lease()
        .check_lease()
        .delete(&pod_path(&pod_name(1)))
        .body_contains(json!({ "gracePeriodSeconds": 0 }))
        .reply(200, pod(1, true, "130"))
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            actuator
                .kill_pod(&typed_pod(1, true, "100"), INJECTION)
                .await
        })
        .await;

    assert!(killed.is_ok(), "the pod is deleted: {killed:?}");
}

#[tokio::test]
async fn lost_lease_stops_kill_before_the_delete() {
    let killed = Scenario::new()
        .renew_lease()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T19:00:00.000000Z"))
        .run(actuator, async |actuator| {
            actuator
                .kill_pod(&typed_pod(1, true, "100"), INJECTION)
                .await
        })
        .await;

    match killed {
        Err(Error::LeaseLost {
            operation, holder, ..
        }) => {
            assert_eq!(operation, "fault injection");
            assert_eq!(holder, "deployer-b");
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}

#[tokio::test]
async fn lease_held_elsewhere_stops_partition() {
    let partitioned = Scenario::new()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T18:59:50.000000Z"))
        .run(actuator, async |actuator| {
            actuator
                .partition_pod(&typed_pod(1, true, "100"), INJECTION)
                .await
        })
        .await;

    assert!(
        matches!(partitioned, Err(Error::LeaseHeld { .. })),
        "another deployer holds the lease: {partitioned:?}"
    );
}

#[tokio::test]
async fn partition_labels_the_pod_and_denies_its_traffic() {
    let partitioned = Scenario::new()
        .renew_lease()
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(json!(INJECTION)))
        .reply(200, partitioned_pod(1, INJECTION))
        .post(POLICIES)
        .body(partition_policy(INJECTION))
        .echo(201)
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(1))
        .run(actuator, async |actuator| {
            actuator
                .partition_pod(&typed_pod(1, true, "100"), INJECTION)
                .await
        })
        .await;

    assert!(
        partitioned.is_ok(),
        "the pod is partitioned: {partitioned:?}"
    );
}

#[tokio::test]
async fn partition_of_a_second_pod_reuses_the_policy() {
    let partitioned = Scenario::new()
        .renew_lease()
        .check_lease()
        .patch(&pod_path(&pod_name(2)))
        .body(partition_label(json!(INJECTION)))
        .reply(200, partitioned_pod(2, INJECTION))
        .post(POLICIES)
        .reply(
            409,
            status(409, "AlreadyExists", "networkpolicy already exists"),
        )
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(2))
        .run(actuator, async |actuator| {
            actuator
                .partition_pod(&typed_pod(2, true, "101"), INJECTION)
                .await
        })
        .await;

    assert!(
        partitioned.is_ok(),
        "the existing policy serves: {partitioned:?}"
    );
}

#[tokio::test]
async fn failed_policy_removes_the_label_again() {
    let partitioned = Scenario::new()
        .renew_lease()
        .check_lease()
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(json!(INJECTION)))
        .reply(200, partitioned_pod(1, INJECTION))
        .post(POLICIES)
        .reply(
            403,
            status(403, "Forbidden", "networkpolicies is forbidden"),
        )
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(Value::Null))
        .reply(200, pod(1, true, "121"))
        .run(actuator, async |actuator| {
            actuator
                .partition_pod(&typed_pod(1, true, "100"), INJECTION)
                .await
        })
        .await;

    let error = partitioned.expect_err("the policy was not created");
    assert!(
        error
            .to_string()
            .contains("aro-partition-inj-00000000000000a1"),
        "{error}"
    );
}

#[tokio::test]
async fn partition_undo_removes_label_and_policy() {
    let undone = Scenario::new()
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(Value::Null))
        .reply(200, pod(1, true, "121"))
        .event(NAMESPACE, "Normal", "FaultReverted", "Pod", &pod_name(1))
        .delete(&policy_path(INJECTION))
        .reply(200, partition_policy(INJECTION))
        .run(actuator, async |actuator| {
            actuator
                .reconnect_pod(NAMESPACE, &pod_name(1), INJECTION)
                .await?;
            actuator.delete_partition_policy(NAMESPACE, INJECTION).await
        })
        .await;

    assert!(undone.is_ok(), "the partition is undone: {undone:?}");
}

#[tokio::test]
async fn partition_undo_of_gone_objects_succeeds() {
    let undone = Scenario::new()
        .patch(&pod_path(&pod_name(1)))
        .reply(404, not_found("pods \"web-5d8f7c9b4-p1\""))
        .delete(&policy_path(INJECTION))
        .reply(404, not_found("networkpolicies \"aro-partition\""))
        .run(actuator, async |actuator| {
            actuator
                .reconnect_pod(NAMESPACE, &pod_name(1), INJECTION)
                .await?;
            actuator.delete_partition_policy(NAMESPACE, INJECTION).await
        })
        .await;

    assert!(undone.is_ok(), "nothing is left to undo: {undone:?}");
}

#[tokio::test]
async fn cleanup_removes_leftover_partitions_only() {
    const LEFTOVER: &str = "inj-00000000000000b2";
    let policy_list = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicyList",
        "metadata": { "resourceVersion": "700" },
        "items": [partition_policy(LEFTOVER), partition_policy(INJECTION)],
    });
    let cleaned = Scenario::new()
        .get(PODS)
        .query("labelSelector=aro.io/partitioned")
        .reply(
            200,
            pod_list(vec![
                partitioned_pod(1, LEFTOVER),
                partitioned_pod(2, INJECTION),
            ]),
        )
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(Value::Null))
        .reply(200, pod(1, true, "121"))
        .event(NAMESPACE, "Normal", "FaultReverted", "Pod", &pod_name(1))
        .get(POLICIES)
        .query("labelSelector=io.aro.managed=true,aro.io/injection")
        .reply(200, policy_list)
        .delete(&policy_path(LEFTOVER))
        .reply(200, partition_policy(LEFTOVER))
        .run(actuator, async |actuator| {
            actuator
                .clean_partitions(NAMESPACE, |injection| injection == INJECTION)
                .await
        })
        .await;

    let cleaned = cleaned.expect("the leftover partition is removed");
    assert_eq!(cleaned.pods, vec![pod_name(1)]);
    assert_eq!(cleaned.policies, vec![format!("aro-partition-{LEFTOVER}")]);
}
