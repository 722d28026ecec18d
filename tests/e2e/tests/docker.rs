//! The whole loop on containers: the deployer runs the fleet with its Docker runtime, faults
//! are injected through the Chaos API, and the detector, the brain and the deployer heal them.
//! The detector probes the containers over HTTP at their addresses on the test's own Docker
//! network. The containers push no heartbeats, so the detector needs no address on that
//! network.
//!
//! The image is `$ARO_TEST_IMAGE`, by default `aro-sample-workload:dev` from `make images`.
//! Every container and the network carry the label `io.aro.managed=true` and are removed when
//! the test ends, passed or failed.

use std::time::Duration;

use aro_e2e::{assert_single_recovery, config, inject_and_follow, serial, start};
use aro_proto::v1;
use aro_stack::audit::{self, AuditEvent};
use aro_stack::{StackConfig, docker};
use futures::StreamExt;

fn image() -> String {
    std::env::var("ARO_TEST_IMAGE").unwrap_or_else(|_| "aro-sample-workload:dev".to_owned())
}

/// Two replicas of the sample workload, probed over HTTP at their container addresses, with
/// the `extra` lines in the workload's table.
fn fleet(image: &str, extra: &str) -> String {
    format!(
        r#"
[[workload]]
name = "web"
image = "{image}"
{extra}
replicas = 2
start_timeout = "20s"
checksum_files = ["/srv/aro/beat-data.txt"]
memory_limit = "256MiB"

[workload.health]
http = "http://{{host}}:{{port}}/healthz"
interval = "250ms"
timeout = "200ms"
"#
    )
}

/// The test's network and deployer replica; dropping it removes their containers and the
/// network.
struct DockerScope {
    name: String,
}

impl DockerScope {
    fn new(test: &str) -> Self {
        let image = image();
        assert!(
            docker(&["image", "inspect", &image]).is_some(),
            "image {image} not found: build the images first: make images"
        );
        Self {
            name: format!("aro-e2e-{test}-{}", std::process::id()),
        }
    }

    /// Ids of the containers labelled with the scope's replica.
    fn containers(&self) -> Vec<String> {
        aro_stack::docker_fleet_containers(&self.name)
    }

    /// Builds a stack configuration whose deployer runs the sample fleet in this scope, with the
    /// `extra` lines in its workload's table.
    fn config(&self, test: &str, extra: &str) -> StackConfig {
        let mut config = config(test);
        std::fs::create_dir_all(&config.run_dir).expect("creating the run directory");
        let workloads = config.run_dir.join("docker-fleet.toml");
        std::fs::write(&workloads, fleet(&image(), extra)).expect("writing the workload file");
        config.workloads = workloads;
        config.run_in_docker(&self.name, &self.name);
        config
    }
}

impl Drop for DockerScope {
    fn drop(&mut self) {
        let _ = aro_stack::remove_docker_fleet(&self.name, &self.name);
    }
}

/// Waits until the fleet serves again with both replicas.
async fn assert_fleet_serves(engine: &mut aro_stack::Engine) {
    let workloads = engine
        .wait_until_serving(Duration::from_secs(20))
        .await
        .expect("the fleet serves again");
    let web = workloads
        .iter()
        .find(|workload| workload.name == "web")
        .expect("the web workload");
    let serving = web
        .instances
        .iter()
        .filter(|instance| instance.state() == v1::InstanceState::Serving)
        .count();
    assert_eq!(serving, 2);
}

/// Waits out the detector's start-up grace, so that silence of a paused container counts.
async fn settle_start_up_grace() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_container_is_recovered_once() {
    let _serial = serial().await;
    let scope = DockerScope::new("kill");
    let mut engine = start(scope.config("docker-kill", "")).await;
    assert_fleet_serves(&mut engine).await;
    assert_eq!(scope.containers().len(), 2);

    let (_, timeline) = inject_and_follow(&mut engine, v1::ChaosKind::Kill, "web").await;
    assert_single_recovery(&timeline);
    let fault = timeline.fault.as_ref().expect("a fault was detected");
    assert_eq!(fault.kind(), v1::FaultKind::Crash);
    assert_fleet_serves(&mut engine).await;

    engine.stop().await;
    assert!(
        scope.containers().is_empty(),
        "the deployer removes its containers when it stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_container_is_recovered_once() {
    let _serial = serial().await;
    let scope = DockerScope::new("pause");
    let mut engine = start(scope.config("docker-pause", "")).await;
    assert_fleet_serves(&mut engine).await;
    settle_start_up_grace().await;

    let (_, timeline) = inject_and_follow(&mut engine, v1::ChaosKind::Hang, "web").await;
    assert_single_recovery(&timeline);
    assert_eq!(
        timeline
            .fault
            .as_ref()
            .expect("a fault was detected")
            .kind(),
        v1::FaultKind::Hang
    );
    assert_fleet_serves(&mut engine).await;
    engine.stop().await;
    assert!(scope.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_other_than_declared_is_reported() {
    let _serial = serial().await;
    let scope = DockerScope::new("digest");
    let declared = format!("sha256:{}", "0".repeat(64));
    let extra = format!("artifact_digest = \"{declared}\"");
    let engine = start(scope.config("docker-digest", &extra)).await;
    let mut events = audit::follow(&engine.bus, true, false)
        .await
        .expect("following the audit trail");
    let fault = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(audited) = events.next().await {
            if let AuditEvent::Fault(fault) = audited.event
                && fault.kind() == v1::FaultKind::ChecksumMismatch
            {
                return fault;
            }
        }
        panic!("the audit trail ended");
    })
    .await
    .expect("a checksum mismatch is reported within 30 s");
    let evidence: Vec<String> = fault
        .evidence
        .iter()
        .map(|evidence| evidence.summary.clone())
        .collect();
    assert!(
        evidence
            .iter()
            .any(|summary| summary.contains("container image") && summary.contains(&declared)),
        "{evidence:?}"
    );
    engine.stop().await;
    assert!(scope.containers().is_empty());
}
