//! Calls to a workload's own chaos hooks: `POST /chaos/<hook>` on the instance's address and
//! port, which the sample workload serves. Faults that only the program itself can produce
//! (a log storm, lost heartbeats, memory growth, corrupt data in memory) go through them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::probe::{self, ProbeError};

/// Time a hook call may take, from connecting to reading the response.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A chaos hook and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Write `lines` error lines to standard error as fast as they drain.
    LogStorm { lines: u32 },
    /// Keep serving but stop pushing heartbeats.
    StopHeartbeats,
    /// Allocate and touch `mib_per_sec` MiB every second, up to `max_mib` MiB in all.
    GrowMemory { mib_per_sec: u64, max_mib: u64 },
    /// Report a different data checksum from now on.
    CorruptData,
    /// Undo every hook fault: heartbeats resume, grown memory is freed, data is intact.
    Reset,
}

impl Hook {
    /// Path and query of the hook.
    pub fn path(self) -> String {
        match self {
            Hook::LogStorm { lines } => format!("/chaos/log-storm?lines={lines}"),
            Hook::StopHeartbeats => "/chaos/stop-heartbeats".to_owned(),
            Hook::GrowMemory {
                mib_per_sec,
                max_mib,
            } => format!("/chaos/grow-memory?mib_per_sec={mib_per_sec}&max_mib={max_mib}"),
            Hook::CorruptData => "/chaos/corrupt-data".to_owned(),
            Hook::Reset => "/chaos/reset".to_owned(),
        }
    }
}

/// Reasons a hook call did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program responded that it has no such hook, so it is not the sample workload.
    #[error("POST {path} returned HTTP {status}")]
    NotServed { path: String, status: u16 },
    /// The program has the hook but rejected or failed the call.
    #[error("POST {path} returned HTTP {status}")]
    Failed { path: String, status: u16 },
    /// No response: nothing listens on the port, or the program does not respond.
    #[error("POST {path} failed: {source}")]
    Unreachable {
        path: String,
        #[source]
        source: ProbeError,
    },
}

/// Calls `hook` on the instance that listens on loopback `port`.
///
/// # Errors
///
/// Returns why the hook did not take effect.
pub async fn call(port: u16, hook: Hook) -> Result<(), HookError> {
    call_at(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port, hook).await
}

/// Calls `hook` on the instance that listens on `address` and `port`: loopback for a local
/// process, the container's address for a container.
///
/// # Errors
///
/// Returns why the hook did not take effect.
pub async fn call_at(address: IpAddr, port: u16, hook: Hook) -> Result<(), HookError> {
    let path = hook.path();
    let url = format!("http://{}{path}", SocketAddr::new(address, port));
    let unreachable = |source| HookError::Unreachable {
        path: path.clone(),
        source,
    };
    let status = tokio::time::timeout(CALL_TIMEOUT, probe::http_status("POST", &url))
        .await
        .map_err(|_| unreachable(ProbeError::TimedOut(CALL_TIMEOUT)))?
        .map_err(unreachable)?;
    match status {
        200..=299 => Ok(()),
        // Not found, method not allowed, not implemented: a program without the hooks, such
        // as Python's http.server, which answers 501 to every POST.
        404 | 405 | 501 => Err(HookError::NotServed { path, status }),
        _ => Err(HookError::Failed { path, status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_have_their_paths() {
        assert_eq!(
            Hook::LogStorm { lines: 2000 }.path(),
            "/chaos/log-storm?lines=2000"
        );
        assert_eq!(Hook::StopHeartbeats.path(), "/chaos/stop-heartbeats");
        assert_eq!(
            Hook::GrowMemory {
                mib_per_sec: 16,
                max_mib: 384
            }
            .path(),
            "/chaos/grow-memory?mib_per_sec=16&max_mib=384"
        );
        assert_eq!(Hook::CorruptData.path(), "/chaos/corrupt-data");
        assert_eq!(Hook::Reset.path(), "/chaos/reset");
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
            listener.local_addr().expect("address").port()
        };
        let error = call(port, Hook::Reset).await.expect_err("nothing listens");
        assert!(matches!(error, HookError::Unreachable { .. }), "{error}");
    }
}
