//! `aro bench`: latency percentiles over many injected crashes and hangs on real processes or
//! containers, the detector's classification of every fault kind, and its phi accrual
//! suspicion against a fixed timeout.

mod arrivals;
mod audit_log;
mod classification;
mod confusion;
mod cpu_hog;
mod detector_comparison;
mod docker;
mod fleet_copy;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use aro_proto::v1;
use aro_stack::timeline::{Timeline, percentile};
use aro_stack::{Engine, Service, StackConfig};

use super::local::LocalArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    local: LocalArgs,

    /// Runtime of the deployer. `docker` runs the fleet as containers of the image
    /// `aro-sample-workload:dev` (`make images`) on the Docker network `aro-bench-fleet`, and
    /// removes them and the network when the run ends.
    #[arg(long, value_enum, default_value_t = Runtime::Process)]
    runtime: Runtime,

    /// Crashes (SIGKILL) to inject.
    #[arg(long, default_value_t = 50)]
    crashes: usize,

    /// Hangs (SIGSTOP of a process, or a paused container) to inject.
    #[arg(long, default_value_t = 50)]
    hangs: usize,

    #[command(flatten)]
    classification: classification::ClassificationArgs,

    #[command(flatten)]
    comparison: detector_comparison::ComparisonArgs,
}

/// Runtime of the deployer, which runs the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Runtime {
    /// Local child processes, from `deploy/local/fleet.toml`.
    Process,
    /// Containers of the local Docker engine, from a fleet of the same workloads on the image
    /// `aro-sample-workload:dev`.
    Docker,
}

/// Age an instance must have before a fault is injected into it. The detector does not count
/// silence during an instance's first second of serving, so a hang injected earlier would
/// measure the grace, not the detector.
const MIN_AGE: Duration = Duration::from_millis(2500);

/// Runs the parts that are asked for, on one local stack. The fleet runs from a copy of the
/// workload file's directory in the run directory, so that corrupted files never touch the
/// originals.
pub(crate) async fn run(mut args: Args) -> anyhow::Result<()> {
    // The benchmark measures the loop, not the guards: back-off, rate limits and storm
    // detection are set so that they never delay an action of the benchmark's own sequential
    // injections. Its faults are independent, so the peer window is zero and the policy does
    // not read them as an outage of the whole workload.
    let brain_args = [
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
        "--storm-threshold",
        "1000",
    ];
    let mut extra = HashMap::from([(Service::Brain, brain_args.map(str::to_owned).to_vec())]);
    let root = aro_stack::repository_root()
        .context("run aro from inside the repository, or set ARO_ROOT")?;
    let run_dir = args.local.run_dir.clone().unwrap_or_else(|| {
        root.join(".run")
            .join(format!("bench-{}", std::process::id()))
    });
    let fleet_dir = run_dir.join("fleet");
    let _cleanup = match args.runtime {
        Runtime::Process => {
            let source = args
                .local
                .workloads
                .clone()
                .unwrap_or_else(|| root.join("deploy/local/fleet.toml"));
            args.local.workloads = Some(fleet_copy::copy(&source, &fleet_dir)?);
            None
        }
        Runtime::Docker => {
            if args.comparison.enabled {
                bail!(
                    "--detector-comparison needs heartbeats, which the containers of \
                     --runtime docker do not push; run it with --runtime process"
                );
            }
            docker::check_image()?;
            if args.local.workloads.is_none() {
                args.local.workloads = Some(docker::write_fleet(&fleet_dir)?);
            }
            extra.insert(
                Service::Deployer,
                StackConfig::docker_args(docker::NETWORK, docker::REPLICA).to_vec(),
            );
            Some(docker::Cleanup)
        }
    };
    args.local.run_dir = Some(run_dir);

    let runtime = clap::ValueEnum::to_possible_value(&args.runtime)
        .map_or_else(String::new, |value| value.get_name().to_owned());
    println!("starting the local stack ({runtime} runtime)...");
    let (mut engine, run_dir) = super::local::start(&args.local, "bench", extra).await?;
    println!("logs, JetStream store and fleet: {}", run_dir.display());
    // A signal stops the stack as the end of a run does, so that the deployer stops its
    // workloads and the containers and the network of the Docker runtime are removed.
    let shutdown = aro_service::shutdown_on_signal();
    let result = tokio::select! {
        result = run_parts(&mut engine, &args) => result,
        () = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted by a signal")),
    };
    engine.stop().await;
    let reports = result?;

    if let Some((crashes, hangs)) = reports.latency {
        report("crash (SIGKILL)", &crashes);
        report(
            match args.runtime {
                Runtime::Process => "hang (SIGSTOP)",
                Runtime::Docker => "hang (paused container)",
            },
            &hangs,
        );
        let all: Vec<Timeline> = crashes.into_iter().chain(hangs).collect();
        let decide: Vec<f64> = all.iter().filter_map(Timeline::decide_ms).collect();
        println!(
            "\nfault event to command (ms, n={}): {}",
            decide.len(),
            percentiles(&decide)
        );
    }
    if let Some(classification) = reports.classification {
        classification.print(&args.classification);
    }
    if let Some(comparison) = reports.comparison {
        comparison.print();
    }
    Ok(())
}

/// Results of the parts that ran.
#[derive(Debug, Default)]
struct Reports {
    latency: Option<(Vec<Timeline>, Vec<Timeline>)>,
    classification: Option<classification::Report>,
    comparison: Option<detector_comparison::Report>,
}

async fn run_parts(engine: &mut Engine, args: &Args) -> anyhow::Result<Reports> {
    let mut reports = Reports::default();
    let incident_timeout = args.local.incident_timeout;
    if args.crashes + args.hangs > 0 {
        println!("crashes and hangs: {} + {}", args.crashes, args.hangs);
        reports.latency = Some(inject_all(engine, args).await?);
    }
    if args.classification.count > 0 {
        println!(
            "classification: {} faults of mixed kinds",
            args.classification.count
        );
        let report = classification::run(engine, &args.classification, incident_timeout).await?;
        reports.classification = Some(report);
    }
    if args.comparison.enabled {
        println!("detector comparison: idle, then under load");
        let report = detector_comparison::run(engine, &args.comparison, incident_timeout).await?;
        reports.comparison = Some(report);
    }
    Ok(reports)
}

async fn inject_all(
    engine: &mut Engine,
    args: &Args,
) -> anyhow::Result<(Vec<Timeline>, Vec<Timeline>)> {
    let (mut crashes, mut hangs) = (Vec::new(), Vec::new());
    let total = args.crashes + args.hangs;
    let mut picker = classification::Picker::connect(engine).await?;
    let plan = (0..args.crashes.max(args.hangs)).flat_map(|n| {
        let crash = (n < args.crashes).then_some(v1::ChaosKind::Kill);
        let hang = (n < args.hangs).then_some(v1::ChaosKind::Hang);
        crash.into_iter().chain(hang)
    });
    for (number, kind) in plan.enumerate() {
        let workload = if number % 4 < 2 { "web" } else { "beat" };
        engine.wait_until_serving(Duration::from_secs(30)).await?;
        let instance = picker.ready(engine, workload, MIN_AGE).await?;
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

/// Serving instances of `workload` as (id, generation, age since their generation started).
fn serving_instances(
    workloads: &[v1::WorkloadStatus],
    workload: &str,
) -> Vec<(String, u64, Duration)> {
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
            Some((reference.instance.clone(), reference.generation, age))
        })
        .collect()
}

/// Reads the audit trail until the timeline of the injection has a fault, or `timeout`
/// passed. Returns the timeline with its first fault, or `None` when none came in time.
async fn first_fault(
    engine: &mut Engine,
    injection_id: &str,
    timeout: Duration,
) -> Option<Timeline> {
    let chaos_id = format!("chaos-{injection_id}-injected");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let timeline = engine
            .tracker
            .timelines()
            .into_iter()
            .find(|timeline| timeline.chaos.id == chaos_id);
        if timeline.as_ref().is_some_and(|t| t.fault.is_some()) {
            return timeline;
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        engine.settle(Duration::from_millis(50)).await;
    }
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
