//! `aro demo`: the whole loop on real processes.

use std::time::Duration;

use anyhow::bail;
use aro_proto::v1;
use aro_stack::audit::{AuditEvent, Audited};

use aro_stack::Engine;
use aro_stack::timeline::{Timeline, instance_name};

use super::local::LocalArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    local: LocalArgs,
}

/// Faults the demo injects, in order: (kind, workload).
const SCRIPT: [(v1::ChaosKind, &str); 4] = [
    (v1::ChaosKind::Kill, "web"),
    (v1::ChaosKind::Hang, "beat"),
    (v1::ChaosKind::Hang, "web"),
    (v1::ChaosKind::CrashLoop, "beat"),
];

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    println!("starting nats-server, detector, brain and deployer on loopback...");
    let (mut engine, run_dir) =
        super::local::start(&args.local, "demo", Default::default()).await?;
    println!("logs and JetStream store: {}", run_dir.display());
    let result = script(&mut engine, &args.local).await;
    println!("\nstopping every process the demo started...");
    engine.stop().await;
    println!("stopped.");
    let timelines = result?;
    print_summary(&timelines);
    if let Some(failed) = timelines
        .iter()
        .find(|timeline| timeline.recovered().is_none())
    {
        bail!("injection {} was not recovered", failed.chaos.id);
    }
    Ok(())
}

async fn script(engine: &mut Engine, args: &LocalArgs) -> anyhow::Result<Vec<Timeline>> {
    let workloads = engine.wait_until_serving(Duration::from_secs(30)).await?;
    println!("\nfleet serving:");
    for workload in &workloads {
        let instances: Vec<String> = workload
            .instances
            .iter()
            .map(|i| instance_name(i.r#ref.as_ref()))
            .collect();
        println!(
            "  {:<6} {} replicas: {}",
            workload.name,
            workload.replicas,
            instances.join(", ")
        );
    }

    // The detector gives each instance a start-up grace of 1 s from when it first serves
    // before silence counts, so hangs injected earlier would be detected late.
    println!("\nletting the detector learn each instance's heartbeat rhythm (2 s)...");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut timelines = Vec::new();
    // Each fault goes to an instance no earlier fault touched: a fault soon after a recovery of
    // the same instance joins that instance's incident as a relapse, which is not what the demo
    // sets out to show.
    let mut touched = std::collections::HashSet::new();
    for (number, (kind, workload)) in SCRIPT.into_iter().enumerate() {
        let workloads = engine.wait_until_serving(Duration::from_secs(30)).await?;
        let instance = workloads
            .iter()
            .filter(|status| status.name == workload)
            .flat_map(|status| &status.instances)
            .filter(|instance| instance.state() == v1::InstanceState::Serving)
            .filter_map(|instance| instance.r#ref.as_ref())
            .map(|reference| reference.instance.clone())
            .find(|instance| !touched.contains(instance))
            .unwrap_or_default();
        touched.insert(instance.clone());
        let injection = engine.inject(kind, workload, &instance).await?;
        let target = instance_name(injection.targets.first().and_then(|t| t.instance.as_ref()));
        println!(
            "\n[{}/{}] inject {} into {target}",
            number + 1,
            SCRIPT.len(),
            kind.as_str_name()
        );
        let injected_at = aro_proto::time::micros(injection.injected_at.as_ref());
        let timeline = engine
            .follow_until_finished(&injection.id, args.incident_timeout, |audited| {
                print_event(audited, injected_at)
            })
            .await?;
        timelines.push(timeline);
    }
    Ok(timelines)
}

fn print_event(audited: &Audited, injected_at: i64) {
    let since = |at: Option<&prost_types::Timestamp>| {
        (aro_proto::time::micros(at) - injected_at) as f64 / 1e3
    };
    let line = match &audited.event {
        AuditEvent::Fault(fault) => format!(
            "{:>9.1} ms  detected  {} on {} ({})",
            since(fault.detected_at.as_ref()),
            fault.kind().as_str_name(),
            instance_name(fault.target.as_ref()),
            fault
                .evidence
                .first()
                .map_or("", |evidence| evidence.summary.as_str()),
        ),
        AuditEvent::Command(command) => format!(
            "{:>9.1} ms  decided   {} {} [{}]",
            since(command.issued_at.as_ref()),
            command.action().as_str_name(),
            instance_name(command.target.as_ref()),
            command
                .decision
                .as_ref()
                .map_or("", |decision| decision.reason.as_str()),
        ),
        AuditEvent::Outcome(outcome) => {
            let mut parts = Vec::new();
            if outcome.isolated_at.is_some() {
                parts.push(format!(
                    "isolated at {:.1} ms",
                    since(outcome.isolated_at.as_ref())
                ));
            }
            if outcome.replaced_at.is_some() {
                parts.push(format!(
                    "{} started at {:.1} ms",
                    instance_name(outcome.replacement.as_ref()),
                    since(outcome.replaced_at.as_ref())
                ));
            }
            format!(
                "{:>9.1} ms  verified  {} {} ({})",
                since(outcome.verified_at.as_ref().or(outcome.started_at.as_ref())),
                outcome.status().as_str_name(),
                instance_name(outcome.target.as_ref()),
                parts.join(", "),
            )
        }
        AuditEvent::Chaos(_) | AuditEvent::Signal(_) | AuditEvent::Decision(_) => return,
    };
    println!("  {line}");
}

fn print_summary(timelines: &[Timeline]) {
    let ms =
        |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"));
    println!(
        "\n{:<22} {:<12} {:>7} {:>12} {:>14} {:>14}  actions",
        "fault", "instance", "faults", "detect ms", "fault→cmd ms", "recover ms"
    );
    for timeline in timelines {
        let actions: Vec<&str> = timeline
            .commands
            .iter()
            .map(|command| command.action().as_str_name())
            .collect();
        println!(
            "{:<22} {:<12} {:>7} {:>12} {:>14} {:>14}  {}",
            timeline.chaos.kind().as_str_name(),
            instance_name(timeline.chaos.targets.first()),
            timeline.faults.len(),
            ms(timeline.detect_ms()),
            ms(timeline.decide_ms()),
            ms(timeline.recover_ms()),
            actions.join(" → "),
        );
    }
}
