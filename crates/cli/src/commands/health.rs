//! `aro health`: a gRPC health check for container health checks, where no other client exists.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// gRPC address of the service to check, such as 127.0.0.1:7401.
    addr: SocketAddr,

    /// Time to wait for the server to report SERVING before the check fails.
    #[arg(long, default_value = "3s", value_parser = aro_service::humantime_duration)]
    timeout: Duration,
}

/// Succeeds when the server at the address reports SERVING through `grpc.health.v1` in time.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if aro_stack::wait_for_health(args.addr, args.timeout).await {
        println!("{}: SERVING", args.addr);
        Ok(())
    } else {
        anyhow::bail!(
            "{} did not report SERVING through grpc.health.v1 within {:?}",
            args.addr,
            args.timeout
        )
    }
}
