//! Removal of what the deployer's Docker runtime created for one replica, through the
//! `docker` CLI of the local engine.

use std::process::{Command, Stdio};

/// Removes the containers labelled `io.aro.managed=true` with the deployer replica `replica`,
/// and the network `network` when it carries the label `io.aro.managed=true`. Nothing else
/// is touched. Returns what could not be removed, as a message for the operator.
pub fn remove_docker_fleet(network: &str, replica: &str) -> Result<(), String> {
    let mut failed = Vec::new();
    let containers = docker_fleet_containers(replica);
    if !containers.is_empty() {
        let mut args = vec!["rm", "--force", "--volumes"];
        args.extend(containers.iter().map(String::as_str));
        if docker(&args).is_none() {
            failed.push(format!("the containers {}", containers.join(" ")));
        }
    }
    let name = format!("name=^{network}$");
    let managed = docker(&[
        "network",
        "ls",
        "--quiet",
        "--filter",
        &name,
        "--filter",
        "label=io.aro.managed=true",
    ])
    .is_some_and(|listed| !listed.trim().is_empty());
    // Removing a network right after its last container can fail while the engine still
    // releases that container's endpoint, so the removal is retried for about 2 s.
    if managed
        && !(0..10).any(|attempt| {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            docker(&["network", "rm", network]).is_some()
        })
    {
        failed.push(format!("the network {network}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed to remove {}", failed.join(" and ")))
    }
}

/// Returns the ids of the containers labelled `io.aro.managed=true` with the deployer replica
/// `replica`, running or not.
pub fn docker_fleet_containers(replica: &str) -> Vec<String> {
    let label = format!("label=io.aro.replica={replica}");
    docker(&[
        "ps",
        "--all",
        "--quiet",
        "--filter",
        "label=io.aro.managed=true",
        "--filter",
        &label,
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// Runs `docker` with `args` and returns its standard output; `None` when it failed.
pub fn docker(args: &[&str]) -> Option<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
