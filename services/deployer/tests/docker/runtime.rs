//! The Docker runtime on its own: start, kill, freeze, partition, isolate, memory limit, files
//! and stop, each against real containers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aro_deployer::backend::docker::DockerRuntime;
use aro_deployer::backend::{
    Exit, FaultSignal, InstanceKey, Launch, Launched, Program, Runtime, RuntimeEvent,
};
use aro_deployer::domain::workload::ProbeTarget;
use aro_deployer::file_corruption::{self, Undone};
use aro_deployer::logs::LogSink;
use aro_deployer::metrics::Metrics;
use aro_deployer::probe;
use aro_deployer::workload_hooks::{self, Hook};
use tokio::sync::mpsc;

use super::fixture::{Scope, WAIT, image};

/// Port the sample workload listens on inside each container.
const PORT: u16 = 8080;

/// A declared file of the sample workload's image.
const DATA_FILE: &str = "/srv/aro/beat-data.txt";

struct Setup {
    scope: Scope,
    runtime: DockerRuntime,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    program: Program,
}

async fn setup(test: &str) -> Setup {
    let scope = Scope::new(test).await;
    let engine = scope.engine().await;
    let reference = image();
    let id = engine
        .resolve_image(&reference)
        .await
        .expect("resolving the image");
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let (logs, _queue) = LogSink::new(metrics);
    let runtime = DockerRuntime::new(engine, logs);
    let events = runtime.events().expect("the event stream");
    Setup {
        scope,
        runtime,
        events,
        program: Program::Image { reference, id },
    }
}

fn key(instance: &str, generation: u64) -> InstanceKey {
    InstanceKey {
        workload: "web".to_owned(),
        instance: instance.to_owned(),
        generation,
    }
}

fn launch(setup: &Setup, key: &InstanceKey, memory_limit: Option<u64>) -> Launch {
    Launch {
        key: key.clone(),
        program: setup.program.clone(),
        args: Vec::new(),
        env: vec![
            ("ARO_WORKLOAD".to_owned(), key.workload.clone()),
            ("ARO_INSTANCE".to_owned(), key.instance.clone()),
            ("ARO_PORT".to_owned(), PORT.to_string()),
        ],
        working_dir: PathBuf::from("/"),
        memory_limit,
    }
}

async fn healthy(address: IpAddr) -> bool {
    let target = ProbeTarget::Http {
        url: format!("http://{address}:{PORT}/healthz"),
    };
    probe::check(&target, Duration::from_millis(500))
        .await
        .is_ok()
}

/// Waits until the instance at `address` passes (or, with `pass` false, fails) its check.
async fn wait_health(address: IpAddr, pass: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while healthy(address).await != pass {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} did not {} its health check in time",
            if pass { "pass" } else { "fail" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start(setup: &Setup, key: &InstanceKey, memory_limit: Option<u64>) -> Launched {
    let launched = setup
        .runtime
        .start(launch(setup, key, memory_limit))
        .await
        .expect("starting a container");
    wait_health(launched.address, true).await;
    launched
}

/// Next exit of `key` on the event stream, skipping other events.
async fn next_exit(events: &mut mpsc::UnboundedReceiver<RuntimeEvent>, key: &InstanceKey) -> Exit {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("timed out waiting for an exit")
            .expect("the event stream is open");
        if let RuntimeEvent::Exited { key: exited, exit } = event
            && exited == *key
        {
            return exit;
        }
    }
}

async fn container_id(scope: &Scope, key: &InstanceKey) -> Option<String> {
    scope
        .containers()
        .await
        .into_iter()
        .find(|container| {
            container.labels.as_ref().is_some_and(|labels| {
                labels.get("io.aro.instance") == Some(&key.instance)
                    && labels.get("io.aro.generation") == Some(&key.generation.to_string())
            })
        })
        .and_then(|container| container.id)
}

#[tokio::test]
async fn fleet_starts_labelled_containers() {
    let mut setup = setup("fleet").await;
    let keys: Vec<InstanceKey> = (1..=3).map(|n| key(&format!("web-{n}"), 1)).collect();
    let mut addresses = Vec::new();
    for key in &keys {
        let launched = start(&setup, key, None).await;
        let Program::Image { id, .. } = &setup.program else {
            unreachable!("the setup runs an image")
        };
        assert_eq!(&launched.artifact_digest, id);
        assert!(launched.pid > 0);
        addresses.push(launched.address);
    }
    for _ in &keys {
        let event = setup.events.recv().await.expect("an event");
        assert!(matches!(event, RuntimeEvent::Started { pid, .. } if pid > 0));
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 3, "each container has its own address");
    let containers = setup.scope.containers().await;
    assert_eq!(containers.len(), 3);
    for container in &containers {
        let labels = container.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("io.aro.managed").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            labels.get("io.aro.workload").map(String::as_str),
            Some("web")
        );
        assert_eq!(
            labels.get("io.aro.generation").map(String::as_str),
            Some("1")
        );
        assert_eq!(labels.get("io.aro.replica"), Some(&setup.scope.replica));
        let id = container.id.as_deref().expect("an id");
        let (paused, networks) = setup.scope.state(id).await;
        assert!(!paused);
        assert_eq!(networks, [setup.scope.network.clone()]);
    }
    let mut running = setup.runtime.running();
    running.sort_by(|a, b| a.instance.cmp(&b.instance));
    assert_eq!(running, keys);
}

#[tokio::test]
async fn kill_reports_unexpected_exit() {
    let mut setup = setup("kill").await;
    let first = key("web-1", 1);
    start(&setup, &first, None).await;
    setup
        .runtime
        .inject(&first, FaultSignal::Kill)
        .await
        .expect("killing the container");
    let exit = next_exit(&mut setup.events, &first).await;
    assert!(!exit.expected);
    assert!(!exit.oom_killed);
    assert_eq!((exit.code, exit.signal), (None, Some(9)));
    assert_eq!(container_id(&setup.scope, &first).await, None);
    assert!(setup.runtime.running().is_empty());

    // The next generation starts in its place.
    let second = key("web-1", 2);
    let restarted = setup
        .runtime
        .restart(
            &first,
            launch(&setup, &second, None),
            Duration::from_secs(2),
        )
        .await
        .expect("restarting");
    wait_health(restarted.address, true).await;
    assert_eq!(setup.runtime.running(), [second]);
}

#[tokio::test]
async fn freeze_and_resume_pause_container() {
    let setup = setup("freeze").await;
    let key = key("web-1", 1);
    let launched = start(&setup, &key, None).await;
    let id = container_id(&setup.scope, &key)
        .await
        .expect("the container");

    setup
        .runtime
        .inject(&key, FaultSignal::Freeze)
        .await
        .expect("freezing");
    assert!(setup.scope.state(&id).await.0, "the container is paused");
    wait_health(launched.address, false).await;

    setup
        .runtime
        .inject(&key, FaultSignal::Resume)
        .await
        .expect("resuming");
    assert!(!setup.scope.state(&id).await.0, "the container runs again");
    wait_health(launched.address, true).await;
}

#[tokio::test]
async fn partition_and_reconnect_keep_address() {
    let setup = setup("partition").await;
    let key = key("web-1", 1);
    let launched = start(&setup, &key, None).await;
    let id = container_id(&setup.scope, &key)
        .await
        .expect("the container");

    setup
        .runtime
        .inject(&key, FaultSignal::Disconnect)
        .await
        .expect("disconnecting");
    let (paused, networks) = setup.scope.state(&id).await;
    assert!(!paused, "a partitioned container keeps running");
    assert!(networks.is_empty(), "still on {networks:?}");
    wait_health(launched.address, false).await;

    setup
        .runtime
        .inject(&key, FaultSignal::Reconnect)
        .await
        .expect("reconnecting");
    assert_eq!(
        setup.scope.state(&id).await.1,
        std::slice::from_ref(&setup.scope.network)
    );
    wait_health(launched.address, true).await;
}

#[tokio::test]
async fn isolate_keeps_container_paused_offline() {
    let mut setup = setup("isolate").await;
    let key = key("web-1", 1);
    let launched = start(&setup, &key, None).await;
    let id = container_id(&setup.scope, &key)
        .await
        .expect("the container");

    setup.runtime.isolate(&key).await.expect("isolating");
    let (paused, networks) = setup.scope.state(&id).await;
    assert!(paused);
    assert!(networks.is_empty(), "still on {networks:?}");
    assert!(!healthy(launched.address).await);
    assert_eq!(setup.runtime.running(), std::slice::from_ref(&key));

    // The end of the retention: the supervisor stops it without grace.
    let exit = setup
        .runtime
        .stop(&key, Duration::ZERO)
        .await
        .expect("stopping")
        .expect("it was running");
    assert!(exit.expected);
    assert!(next_exit(&mut setup.events, &key).await.expected);
    assert_eq!(container_id(&setup.scope, &key).await, None);
}

#[tokio::test]
async fn memory_growth_ends_in_oom_kill() {
    let mut setup = setup("oom").await;
    let key = key("web-1", 1);
    let launched = start(&setup, &key, Some(64 << 20)).await;
    workload_hooks::call_at(
        launched.address,
        PORT,
        Hook::GrowMemory {
            mib_per_sec: 64,
            max_mib: 512,
        },
    )
    .await
    .expect("calling the grow-memory hook");
    let exit = next_exit(&mut setup.events, &key).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert!(!exit.expected);
    assert_eq!(exit.signal, Some(9));
}

#[tokio::test]
async fn container_file_corruption_is_undone() {
    let setup = setup("corrupt").await;
    let key = key("web-1", 1);
    start(&setup, &key, None).await;
    let path = Path::new(DATA_FILE);
    let original = setup
        .runtime
        .read_file(&key, path)
        .await
        .expect("reading the data file");
    let digest = setup
        .runtime
        .file_digest(&key, path)
        .await
        .expect("hashing the data file");

    let corruption = file_corruption::corrupt_through(&setup.runtime, &key, path)
        .await
        .expect("corrupting the data file");
    let corrupted = setup
        .runtime
        .read_file(&key, path)
        .await
        .expect("reading it again");
    assert_eq!(corrupted.len(), original.len());
    assert_ne!(corrupted, original);
    assert_ne!(
        setup.runtime.file_digest(&key, path).await.expect("hash"),
        digest
    );

    let undone = file_corruption::undo_through(&setup.runtime, &key, &corruption)
        .await
        .expect("restoring the data file");
    assert_eq!(undone, Undone::Restored);
    assert_eq!(
        setup.runtime.read_file(&key, path).await.expect("read"),
        original
    );
}

#[tokio::test]
async fn stop_removes_the_container() {
    let mut setup = setup("stop").await;
    let key = key("web-1", 1);
    start(&setup, &key, None).await;
    let exit = setup
        .runtime
        .stop(&key, Duration::from_secs(5))
        .await
        .expect("stopping")
        .expect("it was running");
    assert!(exit.expected);
    // The sample workload exits cleanly on SIGTERM.
    assert_eq!((exit.code, exit.signal), (Some(0), None));
    assert!(next_exit(&mut setup.events, &key).await.expected);
    assert!(setup.scope.containers().await.is_empty());
    assert_eq!(
        setup
            .runtime
            .stop(&key, Duration::ZERO)
            .await
            .expect("no-op"),
        None
    );
}
