//! A sample workload for the engine to guard: it serves HTTP and pushes heartbeats to the
//! detector. The heartbeat task and the HTTP server share one single-threaded runtime, so
//! anything that stalls the runtime, a SIGSTOP included, silences both at once.

mod args;
mod heartbeat;
mod server;

use clap::Parser;
use tracing::info;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let heartbeat = args.heartbeat_config()?;
    let shutdown = server::shutdown_on_signal()?;
    info!(
        port = args.port,
        pid = std::process::id(),
        "sample workload starting"
    );

    if let Some(config) = heartbeat {
        tokio::spawn(heartbeat::run(config, shutdown.clone()));
    }
    server::serve(args.port, args.instance.unwrap_or_default(), shutdown).await?;
    info!("sample workload stopped");
    Ok(())
}
