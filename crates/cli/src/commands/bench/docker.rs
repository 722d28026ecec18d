//! The benchmark's fleet on the deployer's Docker runtime: the image check, the workload file
//! and the removal of every container and the network when the run ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Image every instance of the container fleet runs.
pub(super) const IMAGE: &str = "aro-sample-workload:dev";

/// Docker network the containers join.
pub(super) const NETWORK: &str = "aro-bench-fleet";

/// Deployer replica name the containers are labelled with. It is fixed, so that the deployer
/// of a later run removes what an interrupted run left behind.
pub(super) const REPLICA: &str = "aro-bench";

/// Returns the workload file of the container fleet: `web` and `beat`, as in the process
/// fleet, both running the sample workload and probed over HTTP at their container
/// addresses. `beat` declares its data file, so that every fault kind applies to it. No
/// heartbeat reaches the detector, which listens on the host's loopback.
fn fleet(image: &str) -> String {
    format!(
        r#"[[workload]]
name = "web"
image = "{image}"
replicas = 2
start_timeout = "20s"

[workload.health]
http = "http://{{host}}:{{port}}/healthz"
interval = "250ms"
timeout = "200ms"

[[workload]]
name = "beat"
image = "{image}"
env = {{ ARO_DATA_FILE = "beat-data.txt" }}
replicas = 3
start_timeout = "20s"
checksum_files = ["/srv/aro/beat-data.txt"]
memory_limit = "256MiB"

[workload.health]
http = "http://{{host}}:{{port}}/healthz"
interval = "250ms"
timeout = "200ms"
"#
    )
}

/// Writes the container fleet into `dir` and returns the workload file's path.
pub(super) fn write_fleet(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("docker-fleet.toml");
    std::fs::write(&path, fleet(IMAGE)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Checks that the local Docker engine is reachable and has the image [`IMAGE`].
pub(super) fn check_image() -> anyhow::Result<()> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .stdin(Stdio::null())
        .output()
        .context("running `docker image inspect`: is the docker CLI installed?")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "--runtime docker needs the image {IMAGE}, which the local Docker engine does not \
             hold ({}): build the images first with `make images` or \
             `ARO_PROFILE=debug scripts/build-images.sh`",
            stderr.trim()
        );
    }
    Ok(())
}

/// Removes the benchmark's containers and its network when dropped, whether the run passed
/// or failed.
#[derive(Debug)]
pub(super) struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(message) = aro_stack::remove_docker_fleet(NETWORK, REPLICA) {
            eprintln!("{message}: remove them with `docker rm --force` and `docker network rm`");
        }
    }
}
