//! `aro inject`: one fault through the deployer's Chaos API.

use std::time::Duration;

use anyhow::Context as _;
use aro_proto::v1;
use aro_proto::v1::chaos_client::ChaosClient;

use aro_stack::timeline::instance_name;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Fault to inject.
    #[arg(value_parser = ["kill", "hang", "crash-loop"])]
    kind: String,

    /// Workload to inject into.
    #[arg(long)]
    workload: String,

    /// Instance of the workload; one serving instance is picked when omitted.
    #[arg(long, default_value = "")]
    instance: String,

    /// Crash loops: restarts to kill after the first kill.
    #[arg(long, default_value_t = 0)]
    count: u32,

    /// Hangs: resume the instance after this long unless the engine recovered it first.
    #[arg(long, value_parser = aro_service::humantime_duration)]
    duration: Option<Duration>,

    /// Repeating a request with the same key returns the first injection.
    #[arg(long, default_value = "")]
    idempotency_key: String,

    /// Deployer gRPC address.
    #[arg(long, env = "ARO_DEPLOYER_ADDR", default_value = "127.0.0.1:7403")]
    deployer: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let kind = match args.kind.as_str() {
        "kill" => v1::ChaosKind::Kill,
        "hang" => v1::ChaosKind::Hang,
        _ => v1::ChaosKind::CrashLoop,
    };
    let mut client = ChaosClient::connect(crate::endpoint(&args.deployer))
        .await
        .with_context(|| format!("connecting to the deployer at {}", args.deployer))?;
    let request = v1::InjectFaultRequest {
        kind: kind as i32,
        workload: args.workload,
        instance: args.instance,
        count: args.count,
        duration: args.duration.map(aro_proto::time::duration),
        idempotency_key: args.idempotency_key,
        path: String::new(),
    };
    let injection = client
        .inject_fault(request)
        .await?
        .into_inner()
        .injection
        .context("no injection returned")?;
    println!(
        "{} {} into {}",
        injection.id,
        kind.as_str_name(),
        instance_name(injection.target.as_ref())
    );
    Ok(())
}
