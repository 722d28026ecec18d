//! `aro bench`: latency percentiles over many injected crashes and hangs on real processes.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::bail;
use aro_proto::v1;
use aro_stack::timeline::{Timeline, percentile};
use aro_stack::{Engine, Service};

use super::local::LocalArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    local: LocalArgs,

    /// Crashes (SIGKILL) to inject.
    #[arg(long, default_value_t = 50)]
    crashes: usize,

    /// Hangs (SIGSTOP) to inject.
    #[arg(long, default_value_t = 50)]
    hangs: usize,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    // The benchmark measures the loop, not the guards: back-off and rate limits are set so that
    // they never delay an action of the benchmark's own sequential injections. Its faults are
    // independent, so the peer window is zero and storm detection is off: neither the policy
    // nor the guards read them as an outage of the whole workload.
    let brain_args = [
        "--storm-threshold",
        "0",
        "--peer-fault-window",
        "0s",
        "--backoff-base",
        "1ms",
        "--backoff-max",
        "1ms",
        "--global-rate",
        "1000",
        "--workload-rate",
        "1000",
    ];
    let extra = HashMap::from([(Service::Brain, brain_args.map(str::to_owned).to_vec())]);
    println!("starting the local stack...");
    let (mut engine, run_dir) = super::local::start(&args.local, "bench", extra).await?;
    println!("logs and JetStream store: {}", run_dir.display());
    let result = inject_all(&mut engine, &args).await;
    engine.stop().await;
    let (crashes, hangs) = result?;
    report("crash (SIGKILL)", &crashes);
    report("hang (SIGSTOP)", &hangs);
    let all: Vec<Timeline> = crashes.into_iter().chain(hangs).collect();
    let decide: Vec<f64> = all.iter().filter_map(Timeline::decide_ms).collect();
    println!(
        "\nfault event to command (ms, n={}): {}",
        decide.len(),
        percentiles(&decide)
    );
    Ok(())
}

async fn inject_all(
    engine: &mut Engine,
    args: &Args,
) -> anyhow::Result<(Vec<Timeline>, Vec<Timeline>)> {
    let (mut crashes, mut hangs) = (Vec::new(), Vec::new());
    let total = args.crashes + args.hangs;
    let plan = (0..args.crashes.max(args.hangs)).flat_map(|n| {
        let crash = (n < args.crashes).then_some(v1::ChaosKind::Kill);
        let hang = (n < args.hangs).then_some(v1::ChaosKind::Hang);
        crash.into_iter().chain(hang)
    });
    for (number, kind) in plan.enumerate() {
        let workload = if number % 4 < 2 { "web" } else { "beat" };
        let workloads = engine.wait_until_serving(Duration::from_secs(30)).await?;
        let (instance, age) = steadiest_instance(&workloads, workload)?;
        // The detector does not count silence during an instance's first second of serving,
        // so a hang injected earlier would measure the grace, not the detector.
        if let Some(wait) = MIN_AGE.checked_sub(age) {
            tokio::time::sleep(wait).await;
        }
        let injection = engine.inject(kind, workload, &instance).await?;
        let timeline = engine
            .follow_until_finished(&injection.id, args.local.incident_timeout, |_| {})
            .await?;
        if timeline.recovered().is_none() {
            bail!(
                "injection {} was escalated instead of recovered",
                injection.id
            );
        }
        eprintln!(
            "[{:>3}/{total}] {:<5} {:<5} detect {:>8.1} ms  recover {:>8.1} ms",
            number + 1,
            if kind == v1::ChaosKind::Kill {
                "crash"
            } else {
                "hang"
            },
            workload,
            timeline.detect_ms().unwrap_or(f64::NAN),
            timeline.recover_ms().unwrap_or(f64::NAN),
        );
        if kind == v1::ChaosKind::Kill {
            crashes.push(timeline)
        } else {
            hangs.push(timeline)
        }
    }
    Ok((crashes, hangs))
}

/// Age an instance must have before a fault is injected into it.
const MIN_AGE: Duration = Duration::from_millis(2500);

/// Returns the serving instance of `workload` that started first, and its age.
fn steadiest_instance(
    workloads: &[v1::WorkloadStatus],
    workload: &str,
) -> anyhow::Result<(String, Duration)> {
    let now = aro_proto::time::micros(Some(&aro_proto::time::now()));
    workloads
        .iter()
        .filter(|status| status.name == workload)
        .flat_map(|status| &status.instances)
        .filter(|instance| instance.state() == v1::InstanceState::Serving)
        .filter_map(|instance| {
            let reference = instance.r#ref.as_ref()?;
            let started = aro_proto::time::micros(instance.started_at.as_ref());
            let age = Duration::from_micros(u64::try_from(now - started).unwrap_or(0));
            Some((reference.instance.clone(), age))
        })
        .max_by_key(|(_, age)| *age)
        .ok_or_else(|| anyhow::anyhow!("workload {workload} has no serving instance"))
}

fn percentiles(values: &[f64]) -> String {
    let p = |q| percentile(values, q).map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    format!(
        "p50 {}  p95 {}  p99 {}  max {}",
        p(50.0),
        p(95.0),
        p(99.0),
        p(100.0)
    )
}

fn report(label: &str, timelines: &[Timeline]) {
    let detect: Vec<f64> = timelines.iter().filter_map(Timeline::detect_ms).collect();
    let recover: Vec<f64> = timelines.iter().filter_map(Timeline::recover_ms).collect();
    println!("\n{label}, n={}", timelines.len());
    println!("  time to detect  (ms): {}", percentiles(&detect));
    println!("  time to recover (ms): {}", percentiles(&recover));
}
