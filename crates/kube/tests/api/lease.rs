use aro_kube::{Clock, Error, LeaseKey, Leases};
use kube::Client;
use serde_json::json;

use crate::fixtures::*;
use crate::scenario::Scenario;

fn leases(client: Client) -> Leases {
    Leases::new(
        client,
        IDENTITY,
        std::time::Duration::from_secs(30),
        2,
        Clock::fixed(now()),
    )
}

fn key() -> LeaseKey {
    LeaseKey::workload(NAMESPACE, "web")
}

#[tokio::test]
async fn missing_lease_is_created() {
    let acquired = Scenario::new()
        .get(LEASE)
        .reply(404, not_found("leases aro-web"))
        .post(LEASES)
        .body(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": "aro-web", "namespace": NAMESPACE },
            "spec": {
                "holderIdentity": IDENTITY,
                "leaseDurationSeconds": 30,
                "acquireTime": "2026-12-04T19:00:00.000000Z",
                "renewTime": "2026-12-04T19:00:00.000000Z",
                "leaseTransitions": 0,
            },
        }))
        .echo(201)
        .run(leases, async |leases| leases.acquire(&key()).await)
        .await;

    assert!(acquired.is_ok(), "{acquired:?}");
}

#[tokio::test]
async fn own_lease_is_renewed() {
    let renewed = Scenario::new()
        .get(LEASE)
        .reply(200, own_lease())
        .put(LEASE)
        .body_at(
            "/spec",
            json!({
                "holderIdentity": IDENTITY,
                "leaseDurationSeconds": 30,
                "acquireTime": "2026-12-04T18:59:00.000000Z",
                "renewTime": "2026-12-04T19:00:00.000000Z",
                "leaseTransitions": 2,
            }),
        )
        .body_at("/metadata/resourceVersion", json!("40"))
        .echo(200)
        .run(leases, async |leases| leases.acquire(&key()).await)
        .await;

    assert!(renewed.is_ok(), "{renewed:?}");
}

#[tokio::test]
async fn lease_of_another_live_holder_is_not_taken() {
    let acquired = Scenario::new()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T18:59:50.000000Z"))
        .run(leases, async |leases| leases.acquire(&key()).await)
        .await;

    match acquired {
        Err(Error::LeaseHeld { holder, until, .. }) => {
            assert_eq!(holder, "deployer-b");
            assert_eq!(until, "2026-12-04T19:00:20Z");
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_lease_is_taken_over() {
    let acquired = Scenario::new()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T18:59:00.000000Z"))
        .put(LEASE)
        .body_at(
            "/spec",
            json!({
                "holderIdentity": IDENTITY,
                "leaseDurationSeconds": 30,
                "acquireTime": "2026-12-04T19:00:00.000000Z",
                "renewTime": "2026-12-04T19:00:00.000000Z",
                "leaseTransitions": 3,
            }),
        )
        .echo(200)
        .run(leases, async |leases| leases.acquire(&key()).await)
        .await;

    assert!(acquired.is_ok(), "{acquired:?}");
}

#[tokio::test]
async fn takeover_race_rereads_and_yields() {
    let acquired = Scenario::new()
        .get(LEASE)
        .reply(200, lease("deployer-b", "2026-12-04T18:59:00.000000Z"))
        .put(LEASE)
        .reply(409, conflict())
        .get(LEASE)
        .reply(200, lease("deployer-c", "2026-12-04T19:00:00.000000Z"))
        .run(leases, async |leases| leases.acquire(&key()).await)
        .await;

    match acquired {
        Err(Error::LeaseHeld { holder, .. }) => assert_eq!(holder, "deployer-c"),
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_own_lease_counts_as_lost() {
    let checked = Scenario::new()
        .get(LEASE)
        .reply(200, lease(IDENTITY, "2026-12-04T18:59:00.000000Z"))
        .run(leases, async |leases| {
            leases.check(&key(), "eviction").await
        })
        .await;

    match checked {
        Err(Error::LeaseLost {
            operation, holder, ..
        }) => {
            assert_eq!(operation, "eviction");
            assert_eq!(holder, IDENTITY);
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
}
