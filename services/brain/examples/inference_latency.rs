//! Measures one policy inference through ONNX Runtime: the committed model, one feature vector
//! at a time, on the calling thread, as the brain's inference thread runs it.
//!
//! `cargo run --release -p aro-brain --example inference_latency [-- ITERATIONS]`

use std::path::Path;
use std::time::Instant;

use aro_brain::onnx::{PolicyModel, locate_onnxruntime};
use aro_policy::{FaultKind, Observation};

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map_or(Ok(100_000), |arg| arg.parse())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let library = locate_onnxruntime().ok_or_else(|| {
        anyhow::anyhow!("libonnxruntime.so not found: run `make setup` or set ORT_DYLIB_PATH")
    })?;
    let mut model = PolicyModel::load(&library, &root.join("models/policy.onnx"))?;

    let inputs: Vec<_> = FaultKind::ALL
        .iter()
        .map(|&kind| {
            let mut observation = Observation::new(kind);
            observation.desired_replicas = 3;
            observation.healthy_replicas = 2;
            observation.features()
        })
        .collect();
    for input in inputs.iter().cycle().take(1_000) {
        model.score(input)?;
    }
    let mut nanos = Vec::with_capacity(iterations);
    for input in inputs.iter().cycle().take(iterations) {
        let started = Instant::now();
        model.score(input)?;
        nanos.push(started.elapsed().as_nanos() as u64);
    }
    nanos.sort_unstable();
    let percentile = |p: f64| {
        nanos[((p / 100.0 * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len()) - 1] as f64
            / 1e3
    };
    println!(
        "policy inference ({} model, n={iterations}): p50 {:.1} µs  p95 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
        model.version(),
        percentile(50.0),
        percentile(95.0),
        percentile(99.0),
        percentile(100.0)
    );
    Ok(())
}
