//! Helpers of the end-to-end tests, which run a real nats-server, the three service binaries
//! built by `cargo build --workspace --bins`, and real workload processes.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

use aro_proto::v1;
use aro_stack::timeline::Timeline;
use aro_stack::{Engine, StackConfig};

/// The end-to-end tests share two cores; running them one at a time keeps a loaded machine
/// from turning into false hang detections.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Takes the lock that runs end-to-end tests one at a time. It is held for a whole test, across
/// await points; each test has its own runtime, and a failed test releases it as it unwinds.
pub async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Stack configuration of a test named `name`: the binaries in the same target directory as
/// the test, the test fleet, the committed model and a run directory of its own.
///
/// # Panics
///
/// Panics when the service binaries were not built; `make test` builds them first.
pub fn config(name: &str) -> StackConfig {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let bin_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in target/<profile>/deps")
        .to_owned();
    for binary in [
        "aro-detector",
        "aro-brain",
        "aro-deployer",
        "aro-sample-workload",
    ] {
        assert!(
            bin_dir.join(binary).is_file(),
            "{binary} is missing from {}: run `cargo build --workspace --bins` first (make test does)",
            bin_dir.display()
        );
    }
    let run_dir = bin_dir
        .join("e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    StackConfig {
        bin_dir,
        run_dir,
        workloads: root().join("tests/e2e/fleet.toml"),
        model: root().join("models/policy.onnx"),
        onnxruntime: aro_stack::find_onnxruntime(),
        enable_chaos: true,
        extra_args: Default::default(),
        log_filter: "info,aro_bus=debug".to_owned(),
    }
}

/// Starts an engine for a test.
///
/// # Panics
///
/// Panics with the start-up error, which names the log to read.
pub async fn start(config: StackConfig) -> Engine {
    match Engine::start(config).await {
        Ok(engine) => engine,
        Err(error) => panic!("starting the stack failed: {error}"),
    }
}

/// Time one incident may take from injection to verified recovery in the tests.
pub const INCIDENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Injects a fault into one serving instance of `workload`, follows the audit trail until its
/// incident is recovered or escalated, then reads one more second of events so that late
/// duplicates would show, and returns the injection and its timeline.
///
/// # Panics
///
/// Panics when the injection fails or the incident does not finish in time.
pub async fn inject_and_follow(
    engine: &mut Engine,
    kind: v1::ChaosKind,
    workload: &str,
) -> (v1::Injection, Timeline) {
    let injection = engine
        .inject(kind, workload, "")
        .await
        .expect("the Chaos API injects");
    let timeline = engine
        .follow_until_finished(&injection.id, INCIDENT_TIMEOUT, |_| {})
        .await
        .expect("the incident finishes");
    engine.settle(Duration::from_secs(1)).await;
    let timeline = engine.tracker.timeline(&timeline.chaos);
    (injection, timeline)
}

/// Checks the audit trail of one injection: exactly one fault, exactly one command and one
/// outcome, and that outcome is RECOVERED.
pub fn assert_single_recovery(timeline: &Timeline) {
    let id = &timeline.chaos.id;
    assert_eq!(
        timeline.faults.len(),
        1,
        "{id}: faults {:#?}",
        timeline.faults
    );
    assert_eq!(
        timeline.commands.len(),
        1,
        "{id}: commands {:#?}",
        timeline.commands
    );
    assert_eq!(
        timeline.outcomes.len(),
        1,
        "{id}: outcomes {:#?}",
        timeline.outcomes
    );
    assert_eq!(
        timeline.outcomes[0].status(),
        v1::OutcomeStatus::Recovered,
        "{id}: {:#?}",
        timeline.outcomes
    );
}

/// Checks that no command id and no outcome id occurs twice and that attempts count up by one.
pub fn assert_no_duplicates(timeline: &Timeline) {
    let id = &timeline.chaos.id;
    let commands: HashSet<&str> = timeline.commands.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        commands.len(),
        timeline.commands.len(),
        "{id}: duplicate commands"
    );
    let attempts: Vec<u32> = timeline.commands.iter().map(|c| c.attempt).collect();
    let first = attempts.first().copied().unwrap_or(1);
    let expected: Vec<u32> = (first..first + timeline.commands.len() as u32).collect();
    assert_eq!(attempts, expected, "{id}: command attempts");
    let outcomes: HashSet<u32> = timeline.outcomes.iter().map(|o| o.attempt).collect();
    assert_eq!(
        outcomes.len(),
        timeline.outcomes.len(),
        "{id}: two outcomes for one attempt"
    );
}

/// Process ids of every instance of every workload.
pub fn instance_pids(workloads: &[v1::WorkloadStatus]) -> Vec<u32> {
    workloads
        .iter()
        .flat_map(|w| w.instances.iter().map(|i| i.pid))
        .filter(|&pid| pid != 0)
        .collect()
}

/// True while a process with this id exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    match stat {
        // The state is the field after the parenthesised command name; Z is a zombie.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}
