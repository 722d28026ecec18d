//! `aro faults`: lists, shows, cancels, watches and halts injections through the deployer's
//! Chaos API.

use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use aro_proto::v1::chaos_client::ChaosClient;
use aro_proto::v1::{self, InjectionState};
use futures::StreamExt;
use tonic::transport::Channel;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,

    /// Deployer gRPC address.
    #[arg(
        long,
        global = true,
        env = "ARO_DEPLOYER_ADDR",
        default_value = "127.0.0.1:7403"
    )]
    deployer: String,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Lists injections, newest first.
    List {
        /// Only injections that are still active.
        #[arg(long)]
        active: bool,
        /// Only injections into this workload.
        #[arg(long, default_value = "")]
        workload: String,
    },
    /// Shows one injection with each of its targets.
    Get { id: String },
    /// Undoes an active injection now.
    Cancel { id: String },
    /// Prints the active injections, then every change until interrupted.
    Watch {
        /// Only injections into this workload.
        #[arg(long, default_value = "")]
        workload: String,
    },
    /// Undoes every active injection.
    Halt,
}

/// Connects to the Chaos API of the deployer at `address`.
pub(crate) async fn connect(address: &str) -> anyhow::Result<ChaosClient<Channel>> {
    ChaosClient::connect(crate::endpoint(address))
        .await
        .with_context(|| format!("connecting to the deployer at {address}"))
}

fn state_name(injection: &v1::Injection) -> &'static str {
    let name = injection.state().as_str_name();
    name.strip_prefix("INJECTION_STATE_").unwrap_or(name)
}

/// Formats an injection as one line: id, kind, state, targets and deadline.
pub(crate) fn describe(injection: &v1::Injection) -> String {
    let targets: Vec<String> = injection
        .targets
        .iter()
        .map(|target| {
            let name = aro_stack::timeline::instance_name(target.instance.as_ref());
            if injection.state() == InjectionState::Active && !target.active {
                format!("{name} (ended)")
            } else {
                name
            }
        })
        .collect();
    let kind = injection.kind().as_str_name();
    let mut line = format!(
        "{} {} {} into {}",
        injection.id,
        kind.strip_prefix("CHAOS_KIND_").unwrap_or(kind),
        state_name(injection),
        targets.join(", ")
    );
    if let Some(expires) = injection
        .expires_at
        .and_then(|at| SystemTime::try_from(at).ok())
        .filter(|_| injection.state() == InjectionState::Active)
    {
        match expires.duration_since(SystemTime::now()) {
            Ok(left) => line.push_str(&format!(", undone in {:.1}s", left.as_secs_f64())),
            Err(_) => line.push_str(", undo due now"),
        }
    }
    if !injection.revertible {
        line.push_str(", nothing to undo");
    }
    line
}

/// Formats every detail of an injection, one line each.
fn details(injection: &v1::Injection) -> String {
    let mut lines = vec![
        describe(injection),
        format!("  message: {}", injection.message),
    ];
    if !injection.idempotency_key.is_empty() {
        lines.push(format!("  idempotency key: {}", injection.idempotency_key));
    }
    for target in &injection.targets {
        let name = aro_stack::timeline::instance_name(target.instance.as_ref());
        let state = if target.active { "active" } else { "ended" };
        let mut line = format!("  target {name}: {state}");
        if target.remaining > 0 {
            line.push_str(&format!(", {} crash-loop kills to come", target.remaining));
        }
        if !target.message.is_empty() {
            line.push_str(&format!(", {}", target.message));
        }
        lines.push(line);
    }
    lines.join("\n")
}

fn failed(call: &'static str) -> impl Fn(tonic::Status) -> anyhow::Error {
    move |status| anyhow!("{call} failed: {}", status.message())
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = connect(&args.deployer).await?;
    match args.command {
        Command::List { active, workload } => {
            let injections = client
                .list_faults(v1::ListFaultsRequest {
                    active_only: active,
                    workload,
                })
                .await
                .map_err(failed("ListFaults"))?
                .into_inner()
                .injections;
            if injections.is_empty() {
                println!("no injections");
            }
            for injection in &injections {
                println!("{}", describe(injection));
            }
        }
        Command::Get { id } => {
            let injection = client
                .get_fault(v1::GetFaultRequest { id })
                .await
                .map_err(failed("GetFault"))?
                .into_inner()
                .injection
                .context("no injection returned")?;
            println!("{}", details(&injection));
        }
        Command::Cancel { id } => {
            let injection = client
                .cancel_fault(v1::CancelFaultRequest { id })
                .await
                .map_err(failed("CancelFault"))?
                .into_inner()
                .injection
                .context("no injection returned")?;
            println!("{}", details(&injection));
        }
        Command::Watch { workload } => {
            let mut changes = client
                .watch_faults(v1::WatchFaultsRequest { workload })
                .await
                .map_err(failed("WatchFaults"))?
                .into_inner();
            while let Some(change) = changes.next().await {
                let change = change.map_err(failed("WatchFaults"))?;
                match &change.injection {
                    Some(injection) => {
                        println!("{:<16} {}", change.phase, describe(injection));
                        if !change.message.is_empty() && change.phase != "active" {
                            println!("{:<16} {}", "", change.message);
                        }
                    }
                    None => println!("{:<16} (changes follow)", change.phase),
                }
            }
        }
        Command::Halt => {
            let halted = client
                .halt_all(v1::HaltAllRequest {})
                .await
                .map_err(failed("HaltAll"))?
                .into_inner()
                .halted;
            println!("halted {halted} injections");
        }
    }
    Ok(())
}
