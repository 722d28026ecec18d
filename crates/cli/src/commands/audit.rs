//! `aro audit`: the audit trail, one line per event.

use aro_bus::Bus;
use aro_stack::audit::AuditEvent;
use futures::StreamExt;

use aro_stack::timeline::instance_name;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// NATS server URL.
    #[arg(long, env = "ARO_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,

    /// Output format: `text` or `json` (one JSON object per line).
    #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "json"])]
    output: String,

    /// Replay every stored event before following new ones.
    #[arg(long)]
    from_start: bool,

    /// Include runtime signals (starts and exits).
    #[arg(long)]
    signals: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let bus = Bus::connect(&args.nats_url, "aro-audit").await?;
    let mut events = aro_stack::audit::follow(&bus, args.from_start, args.signals).await?;
    while let Some(audited) = events.next().await {
        if args.output == "json" {
            println!("{}", crate::json::to_json(&audited));
        } else {
            println!("{}", text_line(&audited.event));
        }
    }
    Ok(())
}

fn text_line(event: &AuditEvent) -> String {
    let at = |timestamp: Option<&prost_types::Timestamp>| {
        timestamp.map_or_else(
            || "-".to_owned(),
            |t| format!("{}.{:06}", t.seconds, t.nanos / 1000),
        )
    };
    match event {
        AuditEvent::Fault(f) => format!(
            "{} fault    {:<28} {:<24} {}",
            at(f.detected_at.as_ref()),
            f.incident_id,
            f.kind().as_str_name(),
            instance_name(f.target.as_ref())
        ),
        AuditEvent::Decision(c) => format!(
            "{} decision {:<28} {:<24} {} ({})",
            at(c.issued_at.as_ref()),
            c.incident_id,
            c.action().as_str_name(),
            instance_name(c.target.as_ref()),
            c.decision.as_ref().map_or("", |d| d.mode().as_str_name()),
        ),
        AuditEvent::Command(c) => format!(
            "{} command  {:<28} {:<24} {}",
            at(c.issued_at.as_ref()),
            c.incident_id,
            c.action().as_str_name(),
            instance_name(c.target.as_ref())
        ),
        AuditEvent::Outcome(o) => format!(
            "{} outcome  {:<28} {:<24} {}",
            at(o.verified_at.as_ref().or(o.started_at.as_ref())),
            o.incident_id,
            o.status().as_str_name(),
            instance_name(o.replacement.as_ref().or(o.target.as_ref()))
        ),
        AuditEvent::Chaos(c) => format!(
            "{} chaos    {:<28} {:<24} {}",
            at(c.at.as_ref().or(c.injected_at.as_ref())),
            c.id,
            c.kind().as_str_name(),
            c.targets
                .iter()
                .map(|target| instance_name(Some(target)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        AuditEvent::Signal(s) => format!(
            "{} signal   {:<28} {:<24} {}",
            at(s.at.as_ref()),
            s.id,
            "",
            instance_name(s.instance.as_ref())
        ),
    }
}
