use std::path::{Path, PathBuf};

use aro_policy::evaluate::{Baseline, EvalConfig, evaluate, evaluate_baseline};
use aro_policy::{Action, FaultKind, Observation};

use super::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn library() -> PathBuf {
    locate_onnxruntime().expect("libonnxruntime.so: run `make setup` or set ORT_DYLIB_PATH")
}

fn committed_model() -> PolicyModel {
    match PolicyModel::load(&library(), &root().join("models/policy.onnx")) {
        Ok(model) => model,
        Err(error) => panic!("the committed model must load: {error}"),
    }
}

#[test]
fn committed_model_scores_are_probabilities() {
    let mut model = committed_model();
    let scores = model
        .score(&Observation::new(FaultKind::Crash).features())
        .expect("inference");
    let total: f32 = scores.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "scores sum to {total}");
    assert!(
        scores.iter().all(|score| (0.0..=1.0).contains(score)),
        "{scores:?}"
    );
    assert!(!model.version().is_empty());
}

#[test]
fn committed_model_beats_restart_only() {
    let mut model = committed_model();
    let config = EvalConfig {
        episodes: 2_000,
        first_seed: 424_242,
    };
    let policy = evaluate(config, |observation| {
        let scores = model.score(&observation.features()).expect("inference");
        let best = (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .expect("7 scores");
        Action::from_index(best).expect("an action index")
    });
    let restart_only = evaluate_baseline(Baseline::RestartOnly, config);
    assert!(
        policy.mean_downtime_secs < restart_only.mean_downtime_secs,
        "model {:.1} s against restart-only {:.1} s",
        policy.mean_downtime_secs,
        restart_only.mean_downtime_secs
    );
}

#[test]
fn missing_model_is_named() {
    let path = root().join("models/does-not-exist.onnx");
    let error = PolicyModel::load(&library(), &path)
        .expect_err("no such file")
        .to_string();
    assert!(error.contains("does-not-exist.onnx"), "{error}");
}

#[test]
fn model_of_wrong_width_is_rejected() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wrong_width.onnx");
    let error = PolicyModel::load(&library(), &path)
        .expect_err("40 features do not fit")
        .to_string();
    assert!(error.contains("features"), "{error}");
    assert!(error.contains("41"), "{error}");
}
