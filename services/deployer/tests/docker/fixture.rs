//! A scope of Docker objects for one test: a network and a deployer replica name of its own,
//! under which every container is labelled. Dropping the scope removes them.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use aro_deployer::backend::docker::{Engine, MANAGED_LABEL, REPLICA_LABEL};
use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{DownloadFromContainerOptions, ListContainersOptions};
use futures::TryStreamExt;

/// Image every test runs.
pub(crate) fn image() -> String {
    std::env::var("ARO_TEST_IMAGE").unwrap_or_else(|_| "aro-sample-workload:dev".to_owned())
}

/// How long a test waits for a container to change state.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A network and a replica name that belong to one test.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) docker: Docker,
    pub(crate) network: String,
    pub(crate) replica: String,
}

impl Scope {
    /// Creates the scope's names and checks that the engine has the test image.
    ///
    /// # Panics
    ///
    /// Panics when the engine cannot be reached or the image is missing.
    pub(crate) async fn new(test: &str) -> Self {
        let name = format!("aro-test-{test}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let docker = Docker::connect_with_local_defaults()
            .expect("connecting to the local Docker engine")
            .negotiate_version()
            .await
            .expect("agreeing on an API version with the Docker engine");
        let image = image();
        if docker.inspect_image(&image).await.is_err() {
            panic!("image {image} not found: build the images first: make images");
        }
        Self {
            docker,
            network: name.clone(),
            replica: name,
        }
    }

    /// Connects to the engine with the scope's network and replica, and creates the network.
    pub(crate) async fn engine(&self) -> Engine {
        let engine = Engine::connect(&self.network, &self.replica)
            .await
            .expect("connecting to the engine");
        engine
            .ensure_network()
            .await
            .expect("creating the test network");
        engine
    }

    /// Containers labelled with the scope's replica, stopped ones included.
    pub(crate) async fn containers(&self) -> Vec<ContainerSummary> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{MANAGED_LABEL}=true"),
                format!("{REPLICA_LABEL}={}", self.replica),
            ],
        )]);
        self.docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..ListContainersOptions::default()
            }))
            .await
            .expect("listing containers")
    }

    /// Reads a regular file out of a container.
    pub(crate) async fn read_file(&self, id: &str, path: &str) -> Vec<u8> {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .download_from_container(id, Some(options))
            .try_collect()
            .await
            .expect("downloading the file");
        let tar = chunks.concat();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entry = archive
            .entries()
            .expect("reading the archive")
            .next()
            .expect("an entry")
            .expect("a readable entry");
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("reading the file");
        content
    }

    /// Id of the container of `instance`, of any generation.
    pub(crate) async fn container_of(&self, instance: &str) -> String {
        self.containers()
            .await
            .into_iter()
            .find(|container| {
                container.labels.as_ref().is_some_and(|labels| {
                    labels.get("io.aro.instance").map(String::as_str) == Some(instance)
                })
            })
            .and_then(|container| container.id)
            .unwrap_or_else(|| panic!("no container of {instance}"))
    }

    /// Returns whether the container is paused, and the networks it is on.
    pub(crate) async fn state(&self, id: &str) -> (bool, Vec<String>) {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .expect("inspecting the container");
        let paused = inspected
            .state
            .and_then(|state| state.paused)
            .unwrap_or_default();
        let networks = inspected
            .network_settings
            .and_then(|settings| settings.networks)
            .map(|networks| networks.into_keys().collect())
            .unwrap_or_default();
        (paused, networks)
    }
}

impl Drop for Scope {
    /// Removes the scope's containers and network through the Docker CLI, which works in a
    /// panicking test without an async runtime.
    fn drop(&mut self) {
        let listed = Command::new("docker")
            .args(["ps", "--all", "--quiet"])
            .args(["--filter", &format!("label={MANAGED_LABEL}=true")])
            .args([
                "--filter",
                &format!("label={REPLICA_LABEL}={}", self.replica),
            ])
            .stderr(Stdio::null())
            .output();
        if let Ok(listed) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "--force", "--volumes"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let labelled = Command::new("docker")
            .args(["network", "ls", "--quiet"])
            .args(["--filter", &format!("name=^{}$", self.network)])
            .args(["--filter", &format!("label={MANAGED_LABEL}=true")])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|listed| !listed.stdout.trim_ascii().is_empty());
        if labelled {
            let _ = Command::new("docker")
                .args(["network", "rm", &self.network])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
