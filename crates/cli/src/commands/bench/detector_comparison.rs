//! `aro bench --detector-comparison`: time to detect a hang and false alarms per hour of the
//! detector's phi accrual suspicion, on an idle machine and with every core busy. A
//! fixed-timeout detector is evaluated over the same arrivals in the same run, side by side.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use aro_proto::v1::detector_client::DetectorClient;
use aro_proto::v1::{self, ChaosKind, FaultKind};
use aro_stack::timeline::{Timeline, instance_name, percentile};
use aro_stack::{Engine, Service};

use super::arrivals::{BLIND_PAUSE, Recorder};
use super::audit_log::AuditLog;
use super::cpu_hog::CpuHog;
use super::{MIN_AGE, first_fault, serving_instances};

/// Flags of the detector comparison.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ComparisonArgs {
    /// Compares the phi accrual detector with a fixed-timeout detector, on an idle machine
    /// and with every core busy.
    #[arg(long = "detector-comparison")]
    pub(crate) enabled: bool,

    /// Hangs injected into the heartbeat workload `beat` per condition.
    #[arg(long, default_value_t = 20)]
    pub(crate) comparison_hangs: usize,

    /// How long the fleet runs without injections per condition, to count false alarms.
    #[arg(long, default_value = "10m", value_parser = aro_service::humantime_duration)]
    pub(crate) soak: Duration,

    /// Silence after which the fixed-timeout detector declares a hang; the default is three
    /// missed heartbeats at 250 ms.
    #[arg(long, default_value = "750ms", value_parser = aro_service::humantime_duration)]
    pub(crate) fixed_timeout: Duration,

    /// Busy-loop processes that load the machine. Default: one per core.
    #[arg(long)]
    pub(crate) cpu_hogs: Option<usize>,
}

/// Time between two progress lines of a soak.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Time the recorder gets to see every instance before the first injection of a condition.
const WARM_UP: Duration = Duration::from_secs(2);

/// Measurements under one condition.
#[derive(Debug)]
struct Measured {
    condition: String,
    phi_detect_ms: Vec<f64>,
    fixed_detect_ms: Vec<f64>,
    /// Hangs without a fault event within the incident timeout.
    phi_missed: usize,
    phi_false_alarms: usize,
    fixed_false_alarms: usize,
    /// Fixed-timeout false alarms whose silence overlaps a blind pause of the recorder.
    fixed_uncertain: usize,
    polls: u64,
    longest_poll_gap: Duration,
}

/// Result of the comparison.
#[derive(Debug)]
pub(super) struct Report {
    measured: Vec<Measured>,
    hangs: usize,
    soak: Duration,
    fixed_timeout: Duration,
}

/// Runs the comparison idle, then under load.
pub(super) async fn run(
    engine: &mut Engine,
    args: &ComparisonArgs,
    incident_timeout: Duration,
) -> anyhow::Result<Report> {
    let (faults, _follower) = AuditLog::follow(&engine.bus).await?;
    let address = format!("http://{}", engine.stack.grpc_addr(Service::Detector));
    let detector = DetectorClient::connect(address.clone())
        .await
        .with_context(|| format!("connecting to the detector at {address}"))?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let hogs = args.cpu_hogs.unwrap_or(cores);
    let mut measured = Vec::new();
    for load in [0, hogs] {
        let condition = if load == 0 {
            "idle".to_owned()
        } else {
            format!("{load} busy loops")
        };
        let hog = CpuHog::start(load)?;
        let result = measure(
            engine,
            args,
            incident_timeout,
            &faults,
            &detector,
            condition,
        )
        .await;
        hog.stop().await;
        measured.push(result?);
    }
    Ok(Report {
        measured,
        hangs: args.comparison_hangs,
        soak: args.soak,
        fixed_timeout: args.fixed_timeout,
    })
}

async fn measure(
    engine: &mut Engine,
    args: &ComparisonArgs,
    incident_timeout: Duration,
    faults: &AuditLog,
    detector: &DetectorClient<tonic::transport::Channel>,
    condition: String,
) -> anyhow::Result<Measured> {
    let recorder = Recorder::start(detector.clone());
    tokio::time::sleep(WARM_UP).await;
    let mut measured = Measured {
        condition,
        phi_detect_ms: Vec::new(),
        fixed_detect_ms: Vec::new(),
        phi_missed: 0,
        phi_false_alarms: 0,
        fixed_false_alarms: 0,
        fixed_uncertain: 0,
        polls: 0,
        longest_poll_gap: Duration::ZERO,
    };
    for number in 0..args.comparison_hangs {
        let (instance, generation) = steady_beat(engine, faults).await?;
        let injection = engine.inject(ChaosKind::Hang, "beat", &instance).await?;
        let injected_at = aro_proto::time::micros(injection.injected_at.as_ref());
        let phi = first_fault(engine, &injection.id, incident_timeout)
            .await
            .as_ref()
            .and_then(Timeline::detect_ms);
        // The next hang should meet a fleet at rest. A recovery that does not finish in time
        // shows in the next wait for a serving fleet.
        let _ = engine
            .follow_until_finished(&injection.id, incident_timeout, |_| {})
            .await;
        engine
            .chaos
            .halt_all(v1::HaltAllRequest {})
            .await
            .context("halting the hang")?;
        let fixed = recorder.read(|recorded| {
            recorded
                .series
                .get(&(instance.clone(), generation))
                .and_then(|series| series.fixed_detect_ms(injected_at, args.fixed_timeout))
        });
        match phi {
            Some(ms) => measured.phi_detect_ms.push(ms),
            None => measured.phi_missed += 1,
        }
        measured.fixed_detect_ms.extend(fixed);
        let show = |ms: Option<f64>| ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
        eprintln!(
            "[{:>2}/{}] {}: hang {}  phi {}  fixed timeout {}",
            number + 1,
            args.comparison_hangs,
            measured.condition,
            instance_name(injection.targets.first().and_then(|t| t.instance.as_ref())),
            show(phi),
            show(fixed),
        );
    }

    let from = now_micros();
    let started = Instant::now();
    let fixed_silences =
        |to: i64| recorder.read(|recorded| recorded.silences(args.fixed_timeout, from, to));
    eprintln!(
        "{}: soaking for {:?} without injections...",
        measured.condition, args.soak
    );
    while started.elapsed() < args.soak {
        let left = args.soak.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(PROGRESS_EVERY)).await;
        let now = now_micros();
        eprintln!(
            "  {}: {:>4} s of {} s, false alarms: phi {}, fixed timeout {}",
            measured.condition,
            started.elapsed().as_secs(),
            args.soak.as_secs(),
            faults.count(FaultKind::Hang, from, now),
            fixed_silences(now).0,
        );
    }
    let to = now_micros();
    measured.phi_false_alarms = faults.count(FaultKind::Hang, from, to);
    (measured.fixed_false_alarms, measured.fixed_uncertain) = fixed_silences(to);
    (measured.polls, measured.longest_poll_gap) =
        recorder.read(|recorded| (recorded.polls, recorded.longest_poll_gap));
    Ok(measured)
}

/// Waits until the fleet serves and returns the `beat` instance that started first among
/// those past [`MIN_AGE`] without a fault in their current generation, as (id, generation).
async fn steady_beat(engine: &mut Engine, faults: &AuditLog) -> anyhow::Result<(String, u64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let workloads = engine.wait_until_serving(Duration::from_secs(30)).await?;
        let steadiest = serving_instances(&workloads, "beat")
            .into_iter()
            .filter(|(instance, generation, _)| !faults.faulted(instance, *generation))
            .max_by_key(|(_, _, age)| *age);
        if let Some((instance, generation, age)) = steadiest {
            if let Some(wait) = MIN_AGE.checked_sub(age) {
                tokio::time::sleep(wait).await;
            }
            return Ok((instance, generation));
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no beat instance without a fault in its current generation within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn now_micros() -> i64 {
    aro_proto::time::micros(Some(&aro_proto::time::now()))
}

impl Report {
    /// Prints one row per detector and condition.
    pub(super) fn print(&self) {
        println!(
            "\ndetector comparison: {} hangs of beat (heartbeats every 250 ms) and a soak of {:?} \
             without injections per condition",
            self.hangs, self.soak
        );
        println!(
            "{:<14} {:<30} {:>10} {:>10} {:>10} {:>7} {:>13} {:>10}",
            "condition",
            "detector",
            "p50 ms",
            "p95 ms",
            "max ms",
            "none",
            "false alarms",
            "per hour"
        );
        let hours = self.soak.as_secs_f64() / 3600.0;
        let per_hour = |count: usize| {
            if hours > 0.0 {
                format!("{:.1}", count as f64 / hours)
            } else {
                "-".to_owned()
            }
        };
        let fixed_name = format!("fixed timeout {} ms", self.fixed_timeout.as_millis());
        for measured in &self.measured {
            let rows = [
                (
                    "phi accrual (the detector)",
                    &measured.phi_detect_ms,
                    measured.phi_missed,
                    measured.phi_false_alarms,
                ),
                (
                    fixed_name.as_str(),
                    &measured.fixed_detect_ms,
                    self.hangs.saturating_sub(measured.fixed_detect_ms.len()),
                    measured.fixed_false_alarms,
                ),
            ];
            for (name, detect, missed, false_alarms) in rows {
                let p = |q: f64| {
                    percentile(detect, q).map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
                };
                println!(
                    "{:<14} {:<30} {:>10} {:>10} {:>10} {:>7} {:>13} {:>10}",
                    measured.condition,
                    name,
                    p(50.0),
                    p(95.0),
                    p(100.0),
                    missed,
                    false_alarms,
                    per_hour(false_alarms),
                );
            }
        }
        println!(
            "time to detect runs from the injection to the fault event (phi) or to the timeout \
             after the last arrival before the injection (fixed timeout, computed without a \
             tick, over the arrivals the detector's ListWatched reported); a false alarm is a \
             hang fault (phi) or a silence longer than the timeout (fixed timeout) during the soak; \
             none counts hangs without a fault event within the incident timeout (phi) or \
             without a recorded arrival before the injection (fixed timeout)"
        );
        for measured in &self.measured {
            println!(
                "  {}: {} polls of the detector, longest pause between two {:.0} ms; {} of the \
                 fixed-timeout false alarms overlap a pause longer than {} ms and may be shorter \
                 than recorded",
                measured.condition,
                measured.polls,
                measured.longest_poll_gap.as_secs_f64() * 1e3,
                measured.fixed_uncertain,
                BLIND_PAUSE.as_millis()
            );
        }
    }
}
