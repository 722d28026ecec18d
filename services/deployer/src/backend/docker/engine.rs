//! The calls the Docker runtime makes to the engine, with the engine's errors turned into the
//! runtime's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, KillContainerOptions,
    ListContainersOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use futures::TryStreamExt;
use tracing::{info, warn};

use super::archive::{self, ArchiveFile};
use super::{INSTANCE_LABEL, REPLICA_LABEL};
use crate::backend::{Error, Result};

/// Label that marks every container, network and image the project creates.
pub const MANAGED_LABEL: &str = "io.aro.managed";

/// Label of the throw-away containers from which an image's files are read.
const PURPOSE_LABEL: &str = "io.aro.purpose";

/// A connection to the local Docker engine, with the project network and the replica name
/// that label what this deployer creates. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    network: String,
    replica: String,
}

/// Facts about a started container that the runtime records.
#[derive(Clone, Debug)]
pub(super) struct Inspected {
    pub(super) pid: u32,
    /// Address on the project network.
    pub(super) address: Option<IpAddr>,
    /// Id of the container's image.
    pub(super) image: String,
}

/// State of a container whose wait ended: how it ended, or that it still runs.
#[derive(Clone, Copy, Debug)]
pub(super) struct ExitState {
    pub(super) running: bool,
    pub(super) code: i64,
    pub(super) oom_killed: bool,
}

fn engine_error(what: impl Into<String>) -> impl FnOnce(DockerError) -> Error {
    let what = what.into();
    move |error| Error::Engine {
        what,
        message: error.to_string(),
    }
}

fn is_not_found(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Turns `name` into a valid container name: letters, digits, `_`, `.` and `-`, starting with
/// a letter or digit.
pub(super) fn container_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Engine {
    /// Connects to the local engine (`DOCKER_HOST` or `/var/run/docker.sock`) and agrees on an
    /// API version with it. `network` is the project network; `replica` labels what this
    /// deployer creates.
    ///
    /// # Errors
    ///
    /// Fails when the engine cannot be reached.
    pub async fn connect(network: &str, replica: &str) -> Result<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(engine_error("connect to the local Docker engine"))?
            .negotiate_version()
            .await
            .map_err(engine_error(
                "agree on an API version with the Docker engine",
            ))?;
        Ok(Self {
            docker,
            network: network.to_owned(),
            replica: replica.to_owned(),
        })
    }

    /// Returns the API client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Name of the project network.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Name of the deployer replica.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Returns the managed and replica labels, with `extra`.
    pub(super) fn labels<const N: usize>(
        &self,
        extra: [(&str, String); N],
    ) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (REPLICA_LABEL.to_owned(), self.replica.clone()),
        ]);
        labels.extend(
            extra
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value)),
        );
        labels
    }

    /// Creates the project network when it does not exist, labelled as managed, with the
    /// subnet the engine picks written into its configuration, so that a container can get
    /// its address back when a partition ends. Returns true when it created it.
    ///
    /// # Errors
    ///
    /// Fails when the engine cannot inspect or create the network.
    pub async fn ensure_network(&self) -> Result<bool> {
        let what = format!("create the network {}", self.network);
        match self.docker.inspect_network(&self.network, None).await {
            Ok(_) => return Ok(false),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(engine_error(what)(error)),
        }
        let labels = HashMap::from([(MANAGED_LABEL.to_owned(), "true".to_owned())]);
        let request = |ipam: Option<Ipam>| NetworkCreateRequest {
            name: self.network.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels.clone()),
            ipam,
            ..NetworkCreateRequest::default()
        };
        // The engine gives fixed container addresses only on a network created with a subnet.
        // So a first network lets the engine pick a subnet that no other network uses, and the
        // network is then created again with that subnet set.
        self.docker
            .create_network(request(None))
            .await
            .map_err(engine_error(what.clone()))?;
        let picked = self
            .docker
            .inspect_network(&self.network, None)
            .await
            .map_err(engine_error(what.clone()))?;
        let config = picked
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find(|config| config.subnet.is_some()));
        let Some(config) = config else {
            warn!(network = %self.network, "the engine picked no subnet for the network; partitions may change container addresses");
            return Ok(true);
        };
        self.docker
            .remove_network(&self.network)
            .await
            .map_err(engine_error(what.clone()))?;
        let ipam = Ipam {
            config: Some(vec![IpamConfig {
                subnet: config.subnet.clone(),
                gateway: config.gateway.clone(),
                ..IpamConfig::default()
            }]),
            ..Ipam::default()
        };
        self.docker
            .create_network(request(Some(ipam)))
            .await
            .map_err(engine_error(what))?;
        info!(network = %self.network, subnet = ?config.subnet, "created the project network");
        Ok(true)
    }

    /// Address of the project network's gateway: the host's address on it.
    ///
    /// # Errors
    ///
    /// Fails when the network cannot be inspected or has no gateway.
    pub async fn gateway(&self) -> Result<IpAddr> {
        let what = format!("find the gateway of network {}", self.network);
        let network = self
            .docker
            .inspect_network(&self.network, None)
            .await
            .map_err(engine_error(what.clone()))?;
        network
            .ipam
            .and_then(|ipam| ipam.config)
            .into_iter()
            .flatten()
            .filter_map(|config| config.gateway)
            .find_map(|gateway| gateway.parse().ok())
            .ok_or_else(|| Error::Engine {
                what,
                message: "the network has no IPv4 gateway".to_owned(),
            })
    }

    /// Id of the local image `reference`, `sha256:<hex>`.
    ///
    /// # Errors
    ///
    /// Fails when no such image exists here: no image is ever pulled.
    pub async fn resolve_image(&self, reference: &str) -> Result<String> {
        let what = format!("find the image {reference}");
        let image = self
            .docker
            .inspect_image(reference)
            .await
            .map_err(|error| {
                let message = if is_not_found(&error) {
                    format!(
                        "no such image on this engine, and images are never pulled: build the \
                         images first: make images ({error})"
                    )
                } else {
                    error.to_string()
                };
                Error::Engine {
                    what: what.clone(),
                    message,
                }
            })?;
        image.id.ok_or_else(|| Error::Engine {
            what,
            message: "the engine reported no image id".to_owned(),
        })
    }

    /// Reads `paths` from image `image` through a container that is created for it, never
    /// started, and removed afterwards. Returns each file's content, in order.
    ///
    /// # Errors
    ///
    /// Fails when the container cannot be created or a file cannot be read; the error names
    /// the file.
    pub async fn image_files(
        &self,
        image: &str,
        paths: &[&Path],
    ) -> std::result::Result<Vec<Vec<u8>>, (usize, Error)> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(self.labels([(PURPOSE_LABEL, "read-image-files".to_owned())])),
            network_disabled: Some(true),
            ..ContainerCreateBody::default()
        };
        let name = container_name(&format!(
            "aro-{}-files-{:08x}",
            self.replica,
            rand::random::<u32>()
        ));
        let options = CreateContainerOptions {
            name: Some(name),
            ..CreateContainerOptions::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|error| {
                (
                    0,
                    engine_error(format!("read files of image {image}"))(error),
                )
            })?;
        let mut contents = Vec::with_capacity(paths.len());
        let mut failure = None;
        for (index, path) in paths.iter().enumerate() {
            match self.download_file(&created.id, path).await {
                Ok(file) => contents.push(file.content),
                Err(source) => {
                    failure = Some((
                        index,
                        Error::Engine {
                            what: format!("read {} from image {image}", path.display()),
                            message: source.to_string(),
                        },
                    ));
                    break;
                }
            }
        }
        self.remove_container(&created.id).await;
        match failure {
            Some(failure) => Err(failure),
            None => Ok(contents),
        }
    }

    /// Pid, address on the project network and image of a container.
    pub(super) async fn inspect(&self, id: &str) -> Result<Inspected> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(engine_error(format!("inspect container {id}")))?;
        let pid = inspected
            .state
            .as_ref()
            .and_then(|state| state.pid)
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or_default();
        let address = inspected
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(&self.network))
            .and_then(|endpoint| endpoint.ip_address)
            .and_then(|address| address.parse().ok());
        Ok(Inspected {
            pid,
            address,
            image: inspected.image.unwrap_or_default(),
        })
    }

    /// Running flag, exit status and out-of-memory flag of a container; `None` when it cannot
    /// be inspected.
    pub(super) async fn exit_state(&self, id: &str) -> Option<ExitState> {
        match self.docker.inspect_container(id, None).await {
            Ok(inspected) => {
                let state = inspected.state?;
                Some(ExitState {
                    running: state.running.unwrap_or_default() || state.paused.unwrap_or_default(),
                    code: state.exit_code.unwrap_or_default(),
                    oom_killed: state.oom_killed.unwrap_or_default(),
                })
            }
            Err(error) => {
                warn!(container = %id, %error, "inspecting an exited container failed");
                None
            }
        }
    }

    /// Removes a container with its anonymous volumes, killing it if it still runs. A
    /// container that is already gone is fine; another failure is logged.
    pub(super) async fn remove_container(&self, id: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..RemoveContainerOptions::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => {}
            // Removal already in progress (409) ends on its own.
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(error) => warn!(container = %id, %error, "removing a container failed"),
        }
    }

    /// Sends `signal` to the container's main process.
    pub(super) async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        match self.docker.kill_container(id, Some(options)).await {
            // Not running (409) or gone (404): its exit is on its way.
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => Ok(()),
            Err(error) => Err(engine_error(format!("send {signal} to container {id}"))(
                error,
            )),
        }
    }

    pub(super) async fn pause(&self, id: &str) -> Result<()> {
        self.docker
            .pause_container(id)
            .await
            .map_err(engine_error(format!("pause container {id}")))
    }

    pub(super) async fn unpause(&self, id: &str) -> Result<()> {
        self.docker
            .unpause_container(id)
            .await
            .map_err(engine_error(format!("unpause container {id}")))
    }

    /// Unpauses a container that is paused; does nothing to one that is not.
    pub(super) async fn unpause_if_paused(&self, id: &str) -> Result<()> {
        let paused = match self.docker.inspect_container(id, None).await {
            Ok(inspected) => inspected
                .state
                .and_then(|state| state.paused)
                .unwrap_or_default(),
            Err(error) if is_not_found(&error) => false,
            Err(error) => return Err(engine_error(format!("inspect container {id}"))(error)),
        };
        if paused {
            self.unpause(id).await?;
        }
        Ok(())
    }

    /// Networks the container is on, with its address on each.
    pub(super) async fn networks_of(&self, id: &str) -> Result<Vec<(String, IpAddr)>> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(engine_error(format!("inspect container {id}")))?;
        let networks = inspected
            .network_settings
            .and_then(|settings| settings.networks)
            .unwrap_or_default();
        Ok(networks
            .into_iter()
            .filter_map(|(name, endpoint)| {
                let address = endpoint.ip_address?.parse().ok()?;
                Some((name, address))
            })
            .collect())
    }

    pub(super) async fn disconnect(&self, network: &str, id: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: id.to_owned(),
            force: Some(true),
        };
        self.docker
            .disconnect_network(network, request)
            .await
            .map_err(engine_error(format!(
                "disconnect container {id} from network {network}"
            )))
    }

    /// Connects a container to `network` at `address`; when the network does not allow a
    /// fixed address, at the one the engine picks.
    pub(super) async fn connect_network(
        &self,
        network: &str,
        id: &str,
        address: IpAddr,
    ) -> Result<()> {
        let request = |address: Option<IpAddr>| NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: address.map(|address| EndpointIpamConfig {
                    ipv4_address: Some(address.to_string()),
                    ..EndpointIpamConfig::default()
                }),
                ..EndpointSettings::default()
            }),
        };
        let what = format!("connect container {id} to network {network}");
        match self
            .docker
            .connect_network(network, request(Some(address)))
            .await
        {
            Ok(()) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 400,
                message,
            }) => {
                warn!(container = %id, %network, %address, reason = %message, "the network takes no fixed address; the container gets a new one");
                self.docker
                    .connect_network(network, request(None))
                    .await
                    .map_err(engine_error(what))
            }
            Err(error) => Err(engine_error(what)(error)),
        }
    }

    /// Reads a regular file out of a container.
    pub(super) async fn download_file(
        &self,
        id: &str,
        path: &Path,
    ) -> std::io::Result<ArchiveFile> {
        let options = DownloadFromContainerOptions {
            path: path.display().to_string(),
        };
        let chunks: Vec<bytes::Bytes> = self
            .docker
            .download_from_container(id, Some(options))
            .try_collect()
            .await
            .map_err(docker_io_error)?;
        archive::read_file(&chunks.concat())
    }

    /// Writes `file` to `path` in a container, replacing the file there.
    pub(super) async fn upload_file(
        &self,
        id: &str,
        path: &Path,
        file: &ArchiveFile,
    ) -> std::io::Result<()> {
        let (directory, tar) = archive::write_file(path, file)?;
        let options = UploadToContainerOptions {
            path: directory,
            ..UploadToContainerOptions::default()
        };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(docker_io_error)
    }

    /// Removes every container that this deployer replica created in an earlier run.
    /// Returns how many it removed.
    ///
    /// # Errors
    ///
    /// Fails when the containers cannot be listed.
    pub async fn remove_leftovers(&self) -> Result<usize> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{MANAGED_LABEL}=true"),
                format!("{REPLICA_LABEL}={}", self.replica),
            ],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..ListContainersOptions::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_error("list the containers of an earlier run"))?;
        for container in &containers {
            let Some(id) = &container.id else { continue };
            let instance = container
                .labels
                .as_ref()
                .and_then(|labels| labels.get(INSTANCE_LABEL))
                .map_or("", String::as_str);
            info!(container = %id, instance, "removing a container of an earlier run");
            self.remove_container(id).await;
        }
        Ok(containers.len())
    }
}

/// Converts the engine's error to an I/O error, keeping "not found" recognisable.
fn docker_io_error(error: DockerError) -> std::io::Error {
    let kind = if is_not_found(&error) {
        std::io::ErrorKind::NotFound
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, error.to_string())
}
