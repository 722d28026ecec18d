use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Endpoint;

use crate::heartbeat::HeartbeatConfig;

/// Flags of the sample workload. The deployer passes them as environment variables.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub(crate) struct Args {
    /// TCP port that the HTTP server listens on.
    #[arg(long, env = "ARO_PORT")]
    pub(crate) port: u16,

    /// Address that the HTTP server listens on: loopback for a local process; the deployer's
    /// Docker runtime sets 0.0.0.0, the container's own interfaces.
    #[arg(long, env = "ARO_HOST", default_value = "127.0.0.1")]
    pub(crate) host: IpAddr,

    /// Address of the detector's gRPC server, as `host:port` or an `http://` URL.
    #[arg(long, env = "ARO_DETECTOR_ADDR", requires_all = ["workload", "instance"])]
    pub(crate) detector_addr: Option<String>,

    /// Time between two heartbeats, in milliseconds. Heartbeats are sent only when this and
    /// the detector's address are both set: the deployer sets the interval only for
    /// workloads that declare heartbeats.
    #[arg(
        long,
        env = "ARO_HEARTBEAT_INTERVAL_MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) heartbeat_interval_ms: Option<u64>,

    /// Workload name sent with each heartbeat.
    #[arg(long, env = "ARO_WORKLOAD")]
    pub(crate) workload: Option<String>,

    /// Instance id sent with each heartbeat.
    #[arg(long, env = "ARO_INSTANCE")]
    pub(crate) instance: Option<String>,

    /// File holding the data set to serve. Without it, the workload generates the same data
    /// set at every start.
    #[arg(long, env = "ARO_DATA_FILE")]
    pub(crate) data_file: Option<PathBuf>,
}

impl Args {
    /// Returns what the heartbeat task needs, or `None` when the detector's address or the
    /// heartbeat interval is not set.
    pub(crate) fn heartbeat_config(&self) -> anyhow::Result<Option<HeartbeatConfig>> {
        let (Some(addr), Some(interval_ms)) = (&self.detector_addr, self.heartbeat_interval_ms)
        else {
            return Ok(None);
        };
        let url = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(url)
            .with_context(|| format!("invalid ARO_DETECTOR_ADDR {addr:?}: expected host:port"))?;
        Ok(Some(HeartbeatConfig {
            endpoint,
            workload: self.workload.clone().unwrap_or_default(),
            instance: self.instance.clone().unwrap_or_default(),
            interval: Duration::from_millis(interval_ms),
        }))
    }
}
