//! `aro status`: workloads, instances and recent incidents of a running engine.

use anyhow::Context as _;
use aro_proto::v1;
use aro_proto::v1::brain_client::BrainClient;
use aro_proto::v1::deployer_client::DeployerClient;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Deployer gRPC address.
    #[arg(long, env = "ARO_DEPLOYER_ADDR", default_value = "127.0.0.1:7403")]
    deployer: String,

    /// Brain gRPC address.
    #[arg(long, env = "ARO_BRAIN_ADDR", default_value = "127.0.0.1:7402")]
    brain: String,

    /// Incidents to show.
    #[arg(long, default_value_t = 10)]
    incidents: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut deployer = DeployerClient::connect(crate::endpoint(&args.deployer))
        .await
        .with_context(|| format!("connecting to the deployer at {}", args.deployer))?;
    let response = deployer
        .list_workloads(v1::ListWorkloadsRequest {})
        .await?
        .into_inner();
    println!("runtime: {}", response.runtime);
    println!(
        "{:<10} {:<14} {:>4} {:<10} {:>7}  artifact",
        "workload", "instance", "gen", "state", "pid"
    );
    for workload in response.workloads {
        for instance in workload.instances {
            let reference = instance.r#ref.clone().unwrap_or_default();
            println!(
                "{:<10} {:<14} {:>4} {:<10} {:>7}  {}",
                workload.name,
                reference.instance,
                reference.generation,
                instance
                    .state()
                    .as_str_name()
                    .trim_start_matches("INSTANCE_STATE_"),
                instance.pid,
                instance
                    .artifact_digest
                    .chars()
                    .take(19)
                    .collect::<String>(),
            );
        }
    }

    let mut brain = BrainClient::connect(crate::endpoint(&args.brain))
        .await
        .with_context(|| format!("connecting to the brain at {}", args.brain))?;
    let request = v1::ListIncidentsRequest {
        workload: String::new(),
        limit: args.incidents,
    };
    let incidents = brain.list_incidents(request).await?.into_inner().incidents;
    println!(
        "\n{:<28} {:<20} {:<10} {:>7}  reason",
        "incident", "fault", "state", "actions"
    );
    for incident in incidents {
        println!(
            "{:<28} {:<20} {:<10} {:>7}  {}",
            incident.id,
            incident
                .kind()
                .as_str_name()
                .trim_start_matches("FAULT_KIND_"),
            incident.state,
            incident.attempt,
            incident.reason
        );
    }
    Ok(())
}
