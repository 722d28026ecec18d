//! `aro approve`: carries out or drops a command proposed in propose mode.

use anyhow::Context as _;
use aro_proto::v1;
use aro_proto::v1::brain_client::BrainClient;
use aro_stack::timeline::instance_name;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Incident whose proposed command to approve.
    incident: String,

    /// Reject the command instead and hand the incident to a person.
    #[arg(long)]
    reject: bool,

    /// Reason for the rejection, recorded in the incident.
    #[arg(long, default_value = "")]
    reason: String,

    /// Name recorded as the approver. Default: the USER environment variable.
    #[arg(long, env = "USER", default_value = "unnamed")]
    approver: String,

    /// Brain gRPC address.
    #[arg(long, env = "ARO_BRAIN_ADDR", default_value = "127.0.0.1:7402")]
    brain: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut brain = BrainClient::connect(crate::endpoint(&args.brain))
        .await
        .with_context(|| format!("connecting to the brain at {}", args.brain))?;
    if args.reject {
        let request = v1::RejectRequest {
            incident_id: args.incident,
            approver: args.approver,
            reason: args.reason,
        };
        let incident = brain
            .reject(request)
            .await?
            .into_inner()
            .incident
            .context("no incident returned")?;
        println!("{} {}: {}", incident.id, incident.state, incident.reason);
    } else {
        let request = v1::ApproveRequest {
            incident_id: args.incident,
            approver: args.approver,
        };
        let command = brain
            .approve(request)
            .await?
            .into_inner()
            .command
            .context("no command returned")?;
        println!(
            "{} {} {} issued",
            command.id,
            command.action().as_str_name(),
            instance_name(command.target.as_ref())
        );
    }
    Ok(())
}
