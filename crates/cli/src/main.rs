//! `aro`: runs the demo and the benchmark, shows the state of a running engine, injects faults
//! and follows the audit trail.

mod commands;
mod json;

use clap::{Parser, Subcommand};

/// Command-line tool of AI-Resilience-Orchestrator.
#[derive(Debug, Parser)]
#[command(name = "aro", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Starts NATS, the three services and a demo fleet, injects one fault of each kind
    /// through the Chaos API and prints the timeline of every incident.
    Demo(commands::demo::Args),
    /// Injects many crashes and hangs one after another and prints latency percentiles.
    Bench(commands::bench::Args),
    /// Shows workloads, instances and recent incidents of a running engine.
    Status(commands::status::Args),
    /// Injects a fault through the deployer's Chaos API.
    Inject(commands::inject::Args),
    /// Lists, shows, cancels, watches or halts fault injections.
    Faults(commands::faults::Args),
    /// Prints every fault, command, outcome and injection as it is stored, one line each.
    Audit(commands::audit::Args),
    /// Approves or rejects the command an incident in propose mode waits with.
    Approve(commands::approve::Args),
    /// Checks that a service reports SERVING through the gRPC health service; exits 1 if not.
    Health(commands::health::Args),
}

impl Command {
    /// Returns true for commands that only print what they read from a running engine.
    fn prints_listing(&self) -> bool {
        matches!(
            self,
            Self::Status(_) | Self::Inject(_) | Self::Faults(_) | Self::Audit(_)
        )
    }
}

/// Returns a gRPC endpoint URI for an address given as `host:port` or as a full URL.
pub(crate) fn endpoint(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.command.prints_listing() {
        // A listing piped into `head` ends quietly when the reader goes, as other Unix tools
        // do. Commands that run child processes keep SIGPIPE ignored.
        sigpipe::reset();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Bench(args) => commands::bench::run(args).await,
            Command::Status(args) => commands::status::run(args).await,
            Command::Inject(args) => commands::inject::run(args).await,
            Command::Faults(args) => commands::faults::run(args).await,
            Command::Audit(args) => commands::audit::run(args).await,
            Command::Approve(args) => commands::approve::run(args).await,
            Command::Health(args) => commands::health::run(args).await,
        }
    })
}
