//! `aro bench --classification N`: faults of every kind injected one after another into the
//! local fleet. The first fault event of the injected instance after an injection is the
//! detector's classification of it. The result is a confusion table and an accuracy.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context as _, bail};
use aro_proto::v1::detector_client::DetectorClient;
use aro_proto::v1::{self, ChaosKind, FaultKind};
use aro_stack::timeline::{instance_name, percentile};
use aro_stack::{Engine, Service};
use tonic::transport::Channel;

use super::audit_log::{AuditLog, Follower};
use super::confusion::{self, Confusion, INJECTED};
use super::{MIN_AGE, serving_instances};

/// Flags of the classification part.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClassificationArgs {
    /// Faults to inject for the classification table, of each kind in turn: kill, hang, crash
    /// loop, corrupt file, log storm, stop heartbeats, grow memory, corrupt data. 0 skips it.
    #[arg(long = "classification", value_name = "N", default_value_t = 100)]
    pub(crate) count: usize,

    /// How long after an injection a fault event of the injected instance counts; later, the
    /// injection counts as not detected ("none").
    #[arg(long, default_value = "20s", value_parser = aro_service::humantime_duration)]
    pub(crate) detect_timeout: Duration,
}

/// How long the benchmark waits for an instance that is ready for the next injection, beyond
/// the age the injection needs.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Age an instance must have before a log storm is injected into it. The detector's log
/// scorer judges bursts of a template only on instances that have logged for its warm-up
/// (60 s, `ScorerConfig::default().warmup` in `crates/logmine`); on a younger instance only a
/// template never seen in the workload counts, so every storm after the first would go
/// unnoticed by design.
const LOG_STORM_MIN_AGE: Duration = Duration::from_secs(65);

/// Returns the age an instance must have before a fault of `kind` is injected into it.
fn min_age(kind: ChaosKind) -> Duration {
    if kind == ChaosKind::LogStorm {
        LOG_STORM_MIN_AGE
    } else {
        MIN_AGE
    }
}

/// Result of the classification part.
#[derive(Debug, Default)]
pub(super) struct Report {
    confusion: Confusion,
    /// Milliseconds from injection to the first fault, per injected kind.
    detect_ms: HashMap<ChaosKind, Vec<f64>>,
    /// Crash loops whose incident later showed a crash_loop fault, and crash loops detected.
    crash_loops_labelled: (usize, usize),
    /// Detected injections whose incident was neither recovered nor escalated in time.
    unfinished: usize,
}

/// Returns the workload an injection of `kind` goes to. Kills, hangs and crash loops go to the
/// off-the-shelf `web` in even rounds of kinds and to the sample workload `beat` in odd ones.
/// The other kinds need `beat`, which declares a file and serves the chaos hooks.
fn target_workload(kind: ChaosKind, number: usize) -> &'static str {
    let round = number / INJECTED.len();
    match kind {
        ChaosKind::Kill | ChaosKind::Hang | ChaosKind::CrashLoop if round.is_multiple_of(2) => {
            "web"
        }
        _ => "beat",
    }
}

/// Injects `args.count` faults and classifies each by the first fault event that follows it.
/// That is the first fault of the injected instance (its injected generation or a later one),
/// except for a corrupted file, where the first fault of any instance of the workload counts.
/// A declared file belongs to the workload and every instance checks it, so whichever check
/// reads it first reports it. The replacement that follows restores the file for all of them.
pub(super) async fn run(
    engine: &mut Engine,
    args: &ClassificationArgs,
    incident_timeout: Duration,
) -> anyhow::Result<Report> {
    let mut picker = Picker::connect(engine).await?;
    let mut report = Report::default();
    for number in 0..args.count {
        let kind = INJECTED[number % INJECTED.len()];
        let workload = target_workload(kind, number);
        let instance = picker.ready(engine, workload, min_age(kind)).await?;
        let log = &picker.log;
        let injection = engine.inject(kind, workload, &instance).await?;
        let target = injection
            .targets
            .first()
            .and_then(|t| t.instance.clone())
            .unwrap_or_default();
        let injected_at = aro_proto::time::micros(injection.injected_at.as_ref());
        let of_instance = (kind != ChaosKind::CorruptFile)
            .then_some((target.instance.as_str(), target.generation));
        let fault = wait_for(engine, args.detect_timeout, || {
            log.first_fault(workload, of_instance, injected_at)
        })
        .await;
        let detected = fault.as_ref().map(|fault| fault.kind);
        report.confusion.record(kind, detected);
        let detect_ms = fault
            .as_ref()
            .map(|fault| (fault.detected_at - injected_at) as f64 / 1e3);
        if let Some(ms) = detect_ms {
            report.detect_ms.entry(kind).or_default().push(ms);
        }
        if let Some(fault) = &fault {
            let finished = wait_for(engine, incident_timeout, || {
                log.finished(&fault.incident_id).then_some(())
            })
            .await;
            if finished.is_none() {
                report.unfinished += 1;
            }
            if kind == ChaosKind::CrashLoop {
                report.crash_loops_labelled.1 += 1;
                if log.incident_had(&fault.incident_id, FaultKind::CrashLoop) {
                    report.crash_loops_labelled.0 += 1;
                }
            }
        }
        engine
            .chaos
            .halt_all(v1::HaltAllRequest {})
            .await
            .context("halting the injection")?;
        eprintln!(
            "[{:>3}/{}] {:<15} {:<12} detected {:<35} {:>10} {}",
            number + 1,
            args.count,
            confusion::injected_name(kind),
            instance_name(Some(&target)),
            fault.as_ref().map_or_else(
                || confusion::detected_name(None).to_owned(),
                |fault| format!(
                    "{} on {}",
                    confusion::detected_name(detected),
                    fault.instance
                )
            ),
            detect_ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms")),
            if confusion::is_correct(kind, detected) {
                "right"
            } else {
                "wrong"
            },
        );
    }
    Ok(report)
}

/// Polls `check` until it returns a value or `timeout` passed, reading the engine's audit
/// trail in between so that it does not pile up.
async fn wait_for<T>(
    engine: &mut Engine,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        engine.settle(Duration::from_millis(50)).await;
    }
}

/// Picks the instance each injection goes to, from the faults of the audit trail and the
/// incidents the detector has open.
pub(super) struct Picker {
    /// Faults and incidents of the audit trail, filled while the picker lives.
    pub(super) log: AuditLog,
    _follower: Follower,
    detector: DetectorClient<Channel>,
    /// Generations the benchmark restarted itself.
    restarted: HashSet<(String, u64)>,
}

impl std::fmt::Debug for Picker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Picker")
            .field("restarted", &self.restarted)
            .finish_non_exhaustive()
    }
}

impl Picker {
    /// Follows the audit trail and connects to the detector of `engine`.
    pub(super) async fn connect(engine: &Engine) -> anyhow::Result<Self> {
        let (log, follower) = AuditLog::follow(&engine.bus).await?;
        let address = format!("http://{}", engine.stack.grpc_addr(Service::Detector));
        let detector = DetectorClient::connect(address.clone())
            .await
            .with_context(|| format!("connecting to the detector at {address}"))?;
        Ok(Self {
            log,
            _follower: follower,
            detector,
            restarted: HashSet::new(),
        })
    }

    /// Returns the serving instance of `workload` that started first among those ready for an
    /// injection: at least `min_age` old, without a fault in its current generation, and
    /// without an open incident at the detector.
    ///
    /// The detector raises at most one fault per generation, so an instance whose current
    /// generation already had one (a log anomaly that was only observed or escalated, a replica
    /// hit by another injection) cannot show the next fault. Such instances get a RESTART
    /// command of the benchmark's own, as an operator would send it, and become ready once
    /// their incident closes.
    pub(super) async fn ready(
        &mut self,
        engine: &mut Engine,
        workload: &str,
        min_age: Duration,
    ) -> anyhow::Result<String> {
        let Self {
            log: faults,
            detector,
            restarted,
            ..
        } = self;
        ready_instance(engine, detector, faults, (workload, min_age), restarted).await
    }
}

async fn ready_instance(
    engine: &mut Engine,
    detector: &mut DetectorClient<Channel>,
    faults: &AuditLog,
    (workload, min_age): (&str, Duration),
    restarted: &mut HashSet<(String, u64)>,
) -> anyhow::Result<String> {
    let wait = min_age + READY_TIMEOUT;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let workloads = engine.workloads().await?;
        let watched = detector
            .list_watched(v1::ListWatchedRequest {
                workload: workload.to_owned(),
            })
            .await
            .context("listing the instances the detector watches")?
            .into_inner()
            .instances;
        let open_incident: HashSet<String> = watched
            .iter()
            .filter(|watched| !watched.open_incident_id.is_empty())
            .filter_map(|watched| watched.instance.as_ref()?.r#ref.as_ref())
            .map(|reference| reference.instance.clone())
            .collect();
        let instances = serving_instances(&workloads, workload);
        let ready = instances
            .iter()
            .filter(|(instance, generation, age)| {
                *age >= min_age
                    && !faults.faulted(instance, *generation)
                    && !open_incident.contains(instance)
            })
            .max_by_key(|(_, _, age)| *age);
        if let Some((instance, _, _)) = ready {
            return Ok(instance.clone());
        }
        let stale = stale_instances(&workloads, workload, faults);
        for (instance, generation) in stale {
            if restarted.insert((instance.clone(), generation)) {
                restart(engine, workload, &instance, generation).await?;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no instance of {workload} was ready for an injection within {wait:?}: each was \
                 younger than {min_age:?}, had a fault in its current generation or an open \
                 incident"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Returns the instances of `workload` whose current generation had a fault and that serve or
/// have stopped, because nothing else will start their next generation.
fn stale_instances(
    workloads: &[v1::WorkloadStatus],
    workload: &str,
    faults: &AuditLog,
) -> Vec<(String, u64)> {
    workloads
        .iter()
        .filter(|status| status.name == workload)
        .flat_map(|status| &status.instances)
        .filter(|instance| {
            matches!(
                instance.state(),
                v1::InstanceState::Serving | v1::InstanceState::Stopped
            )
        })
        .filter_map(|instance| instance.r#ref.as_ref())
        .filter(|reference| faults.faulted(&reference.instance, reference.generation))
        .map(|reference| (reference.instance.clone(), reference.generation))
        .collect()
}

/// Publishes a RESTART command for one generation, as an operator would.
async fn restart(
    engine: &Engine,
    workload: &str,
    instance: &str,
    generation: u64,
) -> anyhow::Result<()> {
    let id = format!("cmd-bench-restart-{instance}-g{generation}");
    let command = v1::Command {
        id: id.clone(),
        incident_id: format!("bench-restart-{instance}-g{generation}"),
        attempt: 1,
        target: Some(v1::InstanceRef {
            workload: workload.to_owned(),
            instance: instance.to_owned(),
            generation,
            node: String::new(),
        }),
        action: v1::Action::Restart as i32,
        decision: Some(v1::Decision {
            action: v1::Action::Restart as i32,
            reason: "benchmark: the generation already had a fault, so it cannot show another"
                .to_owned(),
            ..v1::Decision::default()
        }),
        issued_at: Some(aro_proto::time::now()),
        ..v1::Command::default()
    };
    engine
        .bus
        .publish(aro_bus::subjects::command(workload), &id, &command)
        .await
        .with_context(|| format!("publishing the restart of {instance} generation {generation}"))
}

impl Report {
    /// Prints the confusion table, the accuracy and the time to detect per kind.
    pub(super) fn print(&self, args: &ClassificationArgs) {
        println!(
            "\nclassification: first fault event of the injected instance within {:?}, n={}",
            args.detect_timeout,
            self.confusion.total()
        );
        print!("{}", self.confusion.render());
        println!("  ({})", confusion::LEGEND);
        match self.confusion.accuracy() {
            Some(accuracy) => println!(
                "accuracy: {}/{} = {:.1} %",
                self.confusion.correct(),
                self.confusion.total(),
                accuracy * 100.0
            ),
            None => println!("accuracy: no injections"),
        }
        println!(
            "crash loop counts as right when detected as crash or crash_loop: its first kill is \
             an unexpected exit like any other, and the detector labels an exit crash_loop only \
             when the same instance id exited unexpectedly within its crash-loop window before; \
             {} of {} detected crash loops showed a crash_loop fault later in their incident",
            self.crash_loops_labelled.0, self.crash_loops_labelled.1
        );
        let mut medians = Vec::new();
        for kind in INJECTED {
            let p50 = self
                .detect_ms
                .get(&kind)
                .and_then(|values| percentile(values, 50.0));
            if let Some(p50) = p50 {
                medians.push(format!("{} {p50:.1}", confusion::injected_name(kind)));
            }
        }
        println!("time to detect p50 (ms): {}", medians.join(", "));
        if self.unfinished > 0 {
            println!(
                "{} detected injections were neither recovered nor escalated within the incident timeout",
                self.unfinished
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_workload_takes_hook_kinds() {
        for number in 0..32 {
            let kind = INJECTED[number % INJECTED.len()];
            let workload = target_workload(kind, number);
            match kind {
                ChaosKind::Kill | ChaosKind::Hang | ChaosKind::CrashLoop => {}
                _ => assert_eq!(workload, "beat", "{kind:?}"),
            }
        }
    }

    #[test]
    fn signal_kinds_alternate_between_workloads() {
        assert_eq!(target_workload(ChaosKind::Kill, 0), "web");
        assert_eq!(target_workload(ChaosKind::Kill, 8), "beat");
        assert_eq!(target_workload(ChaosKind::Hang, 17), "web");
        assert_eq!(target_workload(ChaosKind::CrashLoop, 26), "beat");
    }
}
