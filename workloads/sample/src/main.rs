//! A sample workload for the engine to guard. It serves a data set over HTTP and pushes
//! heartbeats with the data's checksum and its resident memory to the detector. Its chaos
//! hooks inject the faults that only a program can produce itself. The heartbeat task and the
//! HTTP server share one single-threaded runtime, so anything that stalls the runtime, a
//! SIGSTOP included, silences both at once.

mod args;
mod chaos;
mod data;
mod heartbeat;
mod log_storm;
mod memory;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

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
    let data = data::DataSet::load(args.data_file.as_deref())?;
    let shutdown = server::shutdown_on_signal()?;
    info!(
        host = %args.host,
        port = args.port,
        pid = std::process::id(),
        data_checksum = %data.checksum(),
        "sample workload starting"
    );

    let chaos = Arc::new(chaos::Chaos::new(data));
    if let Some(config) = heartbeat {
        tokio::spawn(heartbeat::run(config, Arc::clone(&chaos), shutdown.clone()));
    }
    server::serve(
        SocketAddr::new(args.host, args.port),
        args.instance.unwrap_or_default(),
        chaos,
        shutdown,
    )
    .await?;
    info!("sample workload stopped");
    Ok(())
}
