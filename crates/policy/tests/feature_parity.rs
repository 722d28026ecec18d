//! The Python feature transforms (`training/features.py`) compute the same vectors as
//! [`Observation::features`] for the observations of many simulator episodes and for edge
//! cases. The test writes each observation as JSON with its Rust vector and runs
//! `training.features_check` with the project's virtualenv (`.venv`, made by
//! `scripts/setup.sh`), which fails on any value more than 1e-6 apart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aro_policy::sim::Episode;
use aro_policy::{Action, ActionSet, FaultKind, Observation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Simulator episodes whose observations are compared.
const EPISODES: u64 = 400;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Returns the virtualenv's Python after checking that it can import numpy.
fn venv_python() -> PathBuf {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh to create the virtualenv",
        python.display()
    );
    let probe = Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .expect("run the virtualenv's python");
    assert!(
        probe.status.success(),
        "numpy is missing from {}: run scripts/setup.sh, which installs onnxruntime and with it \
         numpy ({})",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}

/// Observations of seeded episodes played with random actions, every step included.
fn episode_observations() -> Vec<Observation> {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut observations = Vec::new();
    for seed in 0..EPISODES {
        let mut episode = Episode::new(seed);
        observations.push(episode.observation().clone());
        while !episode.is_done() {
            let action = Action::ALL[rng.random_range(0..Action::ALL.len())];
            episode.step(action).expect("the episode is open");
            observations.push(episode.observation().clone());
        }
    }
    observations
}

/// Every fault kind with every previous action, then values at and past the ends of each
/// range. JSON carries no infinity, so the largest finite f32 is used in its place.
fn edge_observations() -> Vec<Observation> {
    let mut observations = Vec::new();
    let previous = std::iter::once(None).chain(Action::ALL.map(Some));
    for (index, previous_action) in previous.enumerate() {
        for fault in FaultKind::ALL {
            let mut observation = Observation::new(fault);
            observation.previous_action = previous_action;
            observation.tried = previous_action.into_iter().collect();
            observation.attempt = u32::try_from(index).expect("eight choices") + 1;
            observation.previous_failed = index % 2 == 0;
            observations.push(observation);
        }
    }

    let mut all_tried = Observation::new(FaultKind::CrashLoop);
    all_tried.tried = Action::ALL.into_iter().collect::<ActionSet>();
    observations.push(all_tried);

    let base = Observation::new(FaultKind::Hang);
    let changes: Vec<fn(&mut Observation)> = vec![
        |o| o.suspicion = f32::NAN,
        |o| o.incident_age_secs = f32::NAN,
        |o| o.since_deploy_secs = Some(f32::NAN),
        |o| o.uptime_secs = Some(f32::NAN),
        |o| o.suspicion = 8.0 + 1e-3,
        |o| o.suspicion = 16.0,
        |o| o.suspicion = 1e9,
        |o| o.suspicion = -3.0,
        |o| o.suspicion = f32::MAX,
        |o| o.suspicion = f32::MIN_POSITIVE,
        |o| o.incident_age_secs = 3600.0,
        |o| o.incident_age_secs = 1e7,
        |o| o.incident_age_secs = -1.0,
        |o| o.since_deploy_secs = Some(604_800.0),
        |o| o.since_deploy_secs = Some(f32::MAX),
        |o| o.since_deploy_secs = Some(-f32::MAX),
        |o| o.since_deploy_secs = Some(0.0),
        |o| o.uptime_secs = Some(0.1),
        |o| o.uptime_secs = Some(1e-30),
        |o| o.recent_exits = u32::MAX,
        |o| o.recent_exits = 10,
        |o| o.recent_exits = 11,
        |o| o.attempt = 0,
        |o| o.attempt = u32::MAX,
        |o| o.attempt = 10,
        |o| {
            o.healthy_replicas = 0;
            o.desired_replicas = 0;
        },
        |o| {
            o.healthy_replicas = 7;
            o.desired_replicas = 0;
        },
        |o| {
            o.healthy_replicas = u32::MAX;
            o.desired_replicas = 3;
        },
        |o| {
            o.healthy_replicas = 2;
            o.desired_replicas = u32::MAX;
        },
        |o| o.desired_replicas = 16_777_217,
        |o| o.exit_code = Some(0),
        |o| o.exit_code = Some(i32::MIN),
        |o| o.exit_code = Some(i32::MAX),
        |o| o.signal = Some(4),
        |o| o.signal = Some(7),
        |o| o.signal = Some(11),
        |o| o.signal = Some(9),
        |o| o.signal = Some(-11),
        |o| o.signal = Some(0),
        |o| o.oom_killed = true,
        |o| o.rollback_available = true,
        |o| o.node_peer_faults = 5,
        |o| o.node_peer_faults = u32::MAX,
        |o| o.workload_peer_faults = 3,
    ];
    for change in changes {
        let mut observation = base.clone();
        change(&mut observation);
        observations.push(observation);
    }
    observations
}

/// Fields of [`Observation`] that are options, whose serde default is `None`.
const OPTIONAL_FIELDS: [&str; 5] = [
    "since_deploy_secs",
    "uptime_secs",
    "exit_code",
    "signal",
    "previous_action",
];

/// Removes every key whose value is the serde default, as a sparse JSON producer would.
fn without_defaults(mut observation: Value) -> Value {
    let object = observation
        .as_object_mut()
        .expect("an observation is an object");
    object.retain(|key, value| {
        let default = if OPTIONAL_FIELDS.contains(&key.as_str()) {
            value.is_null()
        } else {
            value == &Value::Bool(false)
                || value.as_f64() == Some(0.0)
                || value.as_array().is_some_and(Vec::is_empty)
        };
        !default || key == "fault" || key == "attempt"
    });
    observation
}

/// Builds one parity case: the observation's JSON and its Rust vector.
fn case(observation: &Observation, sparse: bool) -> Value {
    let mut value = serde_json::to_value(observation).expect("serialize observation");
    if sparse {
        value = without_defaults(value);
        let parsed: Observation =
            serde_json::from_value(value.clone()).expect("sparse JSON is an observation");
        assert_eq!(
            parsed.features(),
            observation.features(),
            "sparse JSON {value} must read back as the same observation"
        );
    }
    json!({ "observation": value, "features": observation.features().to_vec() })
}

/// Runs `training.features_check` on a cases file from the repository root.
fn run_check(python: &Path, cases: &Path) -> Output {
    Command::new(python)
        .args(["-m", "training.features_check"])
        .arg(cases)
        .current_dir(repo_root())
        .output()
        .expect("run training.features_check")
}

#[test]
fn python_features_match_rust() {
    let python = venv_python();
    let episodes = episode_observations();
    let edges = edge_observations();
    let mut cases: Vec<Value> = episodes.iter().map(|o| case(o, false)).collect();
    cases.extend(edges.iter().map(|o| case(o, false)));
    cases.extend(edges.iter().map(|o| case(o, true)));
    cases.extend(episodes.iter().step_by(5).map(|o| case(o, true)));

    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("parity.jsonl");
    let mut file = std::fs::File::create(&path).expect("create the cases file");
    for case in &cases {
        writeln!(file, "{case}").expect("write a case");
    }
    drop(file);

    let output = run_check(&python, &path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Python features differ from Rust ({}):\n{stdout}{stderr}",
        output.status
    );
    let expected = format!("checked {} observations,", cases.len());
    assert!(
        stdout.starts_with(&expected),
        "expected {expected:?} from training.features_check, got:\n{stdout}{stderr}"
    );
}

#[test]
fn python_check_reports_a_changed_value() {
    let python = venv_python();
    let observation = Observation::new(FaultKind::Crash);
    let mut features = observation.features();
    features[0] = 0.5;
    let line = json!({ "observation": observation, "features": features.to_vec() });

    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("wrong.jsonl");
    std::fs::write(&path, format!("{line}\n")).expect("write the cases file");
    let output = run_check(&python, &path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fault_crash: Rust 0.5, Python 1;"),
        "{stderr}"
    );
}
