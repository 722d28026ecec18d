use aro_kube::Error;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::scenario::Scenario;

const INJECTION: &str = "inj-00000000000000a1";
const INJECTION_POLICY: &str = "aro-partition-inj-00000000000000a1";

trait Inject {
    /// Runs the scenario while pod `n` is killed by [`INJECTION`].
    async fn kill_with(self, n: u32) -> aro_kube::Result<()>;
    /// Runs the scenario while pod `n` is partitioned by [`INJECTION`].
    async fn partition_with(self, n: u32) -> aro_kube::Result<()>;
}

impl Inject for Scenario {
    async fn kill_with(self, n: u32) -> aro_kube::Result<()> {
        self.run(actuator, async |actuator| {
            actuator
                .kill_pod(&typed_pod(n, true, "100"), INJECTION)
                .await
        })
        .await
    }

    async fn partition_with(self, n: u32) -> aro_kube::Result<()> {
        self.run(actuator, async |actuator| {
            actuator
                .partition_pod(&typed_pod(n, true, "100"), INJECTION)
                .await
        })
        .await
    }
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
        .kill_with(1)
        .await;

    assert!(killed.is_ok(), "the pod is deleted: {killed:?}");
}

#[tokio::test]
async fn lost_lease_stops_kill_before_the_delete() {
    let killed = Scenario::new()
        .renew_lease()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T19:00:00.000000Z"))
        .kill_with(1)
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
        .partition_with(1)
        .await;

    assert!(
        matches!(partitioned, Err(Error::LeaseHeld { .. })),
        "another deployer holds the lease: {partitioned:?}"
    );
}

#[tokio::test]
async fn partition_labels_the_pod_and_denies_its_traffic() {
    let partitioned = Scenario::new()
        .label_partitioned(1, INJECTION)
        .post(POLICIES)
        .body(partition_policy(INJECTION))
        .echo(201)
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(1))
        .partition_with(1)
        .await;

    assert!(
        partitioned.is_ok(),
        "the pod is partitioned: {partitioned:?}"
    );
}

#[tokio::test]
async fn partition_of_a_second_pod_reuses_the_policy() {
    let partitioned = Scenario::new()
        .label_partitioned(2, INJECTION)
        .post(POLICIES)
        .reply(
            409,
            status(409, "AlreadyExists", "networkpolicy already exists"),
        )
        .event(NAMESPACE, "Warning", "FaultInjected", "Pod", &pod_name(2))
        .partition_with(2)
        .await;

    assert!(
        partitioned.is_ok(),
        "the existing policy serves: {partitioned:?}"
    );
}

#[tokio::test]
async fn failed_policy_removes_the_label_again() {
    let partitioned = Scenario::new()
        .label_partitioned(1, INJECTION)
        .post(POLICIES)
        .reply(
            403,
            status(403, "Forbidden", "networkpolicies is forbidden"),
        )
        .patch(&pod_path(&pod_name(1)))
        .body(partition_label(Value::Null))
        .reply(200, pod(1, true, "121"))
        .partition_with(1)
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
        .reconnect(1)
        .delete_policy(INJECTION)
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
        .delete(&format!("{POLICIES}/{INJECTION_POLICY}"))
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
        .reconnect(1)
        .get(POLICIES)
        .query("labelSelector=io.aro.managed=true,aro.io/injection")
        .reply(200, policy_list)
        .delete_policy(LEFTOVER)
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
