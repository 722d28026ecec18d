//! `aro inject`: one fault through the deployer's Chaos API.

use std::time::Duration;

use anyhow::{Context as _, bail};
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::{self, ChaosKind, fault_params};

use super::faults::{connect, describe};

/// How many matching instances an injection hits, as `--mode` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    One,
    All,
    Count(u32),
    Percent(u32),
}

/// Parses `one`, `all`, `count:N` (N at least 1) or `percent:P` (P from 1 to 100).
fn parse_mode(value: &str) -> Result<Mode, String> {
    let number = |text: &str, what: &str| {
        text.parse::<u32>()
            .map_err(|_| format!("{what} {text:?} is not a whole number"))
    };
    match value.split_once(':') {
        None if value == "one" => Ok(Mode::One),
        None if value == "all" => Ok(Mode::All),
        Some(("count", n)) => match number(n, "count")? {
            0 => Err("count must be at least 1".to_owned()),
            n => Ok(Mode::Count(n)),
        },
        Some(("percent", p)) => match number(p, "percent")? {
            p @ 1..=100 => Ok(Mode::Percent(p)),
            p => Err(format!("percent {p} is out of range, expected 1 to 100")),
        },
        _ => Err("expected one, all, count:N or percent:P".to_owned()),
    }
}

/// Parses one `KEY=VALUE` label.
fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, label)) if !key.is_empty() => Ok((key.to_owned(), label.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Fault to inject.
    #[arg(value_parser = [
        "kill", "hang", "crash-loop", "corrupt-file", "log-storm", "stop-heartbeats",
        "grow-memory", "corrupt-data", "partition",
    ])]
    kind: String,

    /// Workload to inject into.
    #[arg(long, default_value = "")]
    workload: String,

    /// Only workloads with this label (KEY=VALUE); repeat or separate with commas for
    /// several, which must all match.
    #[arg(long = "labels", value_parser = parse_label, value_delimiter = ',')]
    labels: Vec<(String, String)>,

    /// Instance to inject into; repeat or separate with commas for several. Without it,
    /// serving instances of the selected workloads are picked.
    #[arg(long = "instance", value_delimiter = ',')]
    instances: Vec<String>,

    /// How many of the matching instances to hit: one, all, count:N or percent:P.
    #[arg(long, value_parser = parse_mode, default_value = "one")]
    mode: Mode,

    /// Undo the fault after this long (for example 30s); kill and log-storm take none.
    #[arg(long, value_parser = aro_service::humantime_duration)]
    duration: Option<Duration>,

    /// Show the instances that would be hit and change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Repeating a request with the same key returns the first injection.
    #[arg(long, default_value = "")]
    idempotency_key: String,

    /// Allow hitting the last serving instance of a workload.
    #[arg(long)]
    allow_last_replica: bool,

    /// crash-loop: restarts to kill after the first kill (default 2).
    #[arg(long)]
    restarts: Option<u32>,

    /// corrupt-file: the declared file to corrupt (default: the first declared file).
    #[arg(long)]
    path: Option<String>,

    /// log-storm: error lines to write (default 2000).
    #[arg(long)]
    lines: Option<u32>,

    /// grow-memory: MiB to allocate per second (default: reach the memory limit in 16 s).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    mib_per_sec: Option<u64>,

    /// grow-memory: MiB to allocate in all (default: 1.5 times the memory limit).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_mib: Option<u64>,

    /// Deployer gRPC address.
    #[arg(long, env = "ARO_DEPLOYER_ADDR", default_value = "127.0.0.1:7403")]
    deployer: String,
}

fn kind_of(name: &str) -> ChaosKind {
    match name {
        "kill" => ChaosKind::Kill,
        "hang" => ChaosKind::Hang,
        "crash-loop" => ChaosKind::CrashLoop,
        "corrupt-file" => ChaosKind::CorruptFile,
        "log-storm" => ChaosKind::LogStorm,
        "stop-heartbeats" => ChaosKind::StopHeartbeats,
        "grow-memory" => ChaosKind::GrowMemory,
        "corrupt-data" => ChaosKind::CorruptData,
        "partition" => ChaosKind::Partition,
        _ => ChaosKind::Unspecified,
    }
}

/// Builds the parameters of the kind from its flags, rejecting flags of other kinds.
fn params(args: &Args) -> anyhow::Result<Option<v1::FaultParams>> {
    let given: Vec<(&str, &str, bool)> = vec![
        ("--restarts", "crash-loop", args.restarts.is_some()),
        ("--path", "corrupt-file", args.path.is_some()),
        ("--lines", "log-storm", args.lines.is_some()),
        ("--mib-per-sec", "grow-memory", args.mib_per_sec.is_some()),
        ("--max-mib", "grow-memory", args.max_mib.is_some()),
    ];
    for (flag, kind, set) in given {
        if set && args.kind != kind {
            bail!("{flag} applies to {kind} only, not to {}", args.kind);
        }
    }
    let kind = match args.kind.as_str() {
        "crash-loop" => fault_params::Kind::CrashLoop(v1::CrashLoopParams {
            restarts: args.restarts.unwrap_or(0),
        }),
        "corrupt-file" => fault_params::Kind::CorruptFile(v1::CorruptFileParams {
            path: args.path.clone().unwrap_or_default(),
        }),
        "log-storm" => fault_params::Kind::LogStorm(v1::LogStormParams {
            lines: args.lines.unwrap_or(0),
        }),
        "grow-memory" => fault_params::Kind::GrowMemory(v1::GrowMemoryParams {
            mib_per_sec: args.mib_per_sec.unwrap_or(0),
            max_mib: args.max_mib.unwrap_or(0),
        }),
        _ => return Ok(None),
    };
    if args.restarts == Some(0) {
        bail!("invalid value 0 for --restarts: at least 1 restart, or leave it out for 2");
    }
    if args.lines == Some(0) {
        bail!("invalid value 0 for --lines: at least 1 line, or leave it out for 2000");
    }
    Ok(Some(v1::FaultParams { kind: Some(kind) }))
}

fn blast_radius(mode: Mode) -> v1::BlastRadius {
    let (mode, count, percent) = match mode {
        Mode::One => (v1::BlastRadiusMode::One, 0, 0),
        Mode::All => (v1::BlastRadiusMode::All, 0, 0),
        Mode::Count(count) => (v1::BlastRadiusMode::Fixed, count, 0),
        Mode::Percent(percent) => (v1::BlastRadiusMode::Percent, 0, percent),
    };
    v1::BlastRadius {
        mode: mode as i32,
        count,
        percent,
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.workload.is_empty() && args.labels.is_empty() && args.instances.is_empty() {
        bail!("select the instances to inject into with --workload, --labels or --instance");
    }
    let params = params(&args)?;
    let kind = kind_of(&args.kind);
    let request = v1::InjectFaultRequest {
        kind: kind as i32,
        duration: args.duration.map(aro_proto::time::duration),
        idempotency_key: args.idempotency_key,
        selector: Some(v1::TargetSelector {
            workload: args.workload,
            labels: args.labels.into_iter().collect(),
            instances: args.instances,
        }),
        blast_radius: Some(blast_radius(args.mode)),
        dry_run: args.dry_run,
        allow_last_replica: args.allow_last_replica,
        params,
    };
    let mut client: ChaosClient<_> = connect(&args.deployer).await?;
    let response = client
        .inject_fault(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
        .context("InjectFault failed")?
        .into_inner();
    let injection = response.injection.context("no injection returned")?;
    if response.dry_run {
        println!("{}, nothing changed", injection.message);
    } else if response.replayed {
        println!(
            "{} (made earlier with this idempotency key)",
            describe(&injection)
        );
    } else {
        println!("{}", describe(&injection));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("one"), Ok(Mode::One));
        assert_eq!(parse_mode("all"), Ok(Mode::All));
        assert_eq!(parse_mode("count:3"), Ok(Mode::Count(3)));
        assert_eq!(parse_mode("percent:100"), Ok(Mode::Percent(100)));
    }

    #[test]
    fn invalid_modes_say_why() {
        assert_eq!(
            parse_mode("count:0"),
            Err("count must be at least 1".to_owned())
        );
        assert_eq!(
            parse_mode("percent:101"),
            Err("percent 101 is out of range, expected 1 to 100".to_owned())
        );
        assert_eq!(
            parse_mode("percent:x"),
            Err("percent \"x\" is not a whole number".to_owned())
        );
        assert!(parse_mode("some").is_err());
    }

    #[test]
    fn labels_need_a_key() {
        assert_eq!(
            parse_label("tier=front"),
            Ok(("tier".to_owned(), "front".to_owned()))
        );
        assert!(parse_label("=front").is_err());
        assert!(parse_label("tier").is_err());
    }
}
