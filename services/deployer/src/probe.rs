//! Health probes: TCP connect, HTTP GET, gRPC health and a command's exit status. The HTTP
//! client also carries the deployer's calls to a workload's chaos hooks.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::domain::workload::ProbeTarget;

/// Bytes of an HTTP response read before the connection is closed.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Reasons a probe did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("connection failed: {0}")]
    Connect(#[source] std::io::Error),
    #[error("invalid URL {url:?}")]
    InvalidUrl { url: String },
    #[error("HTTP request failed: {0}")]
    Http(#[source] std::io::Error),
    #[error("invalid HTTP response: {0:?}")]
    InvalidResponse(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("gRPC health check failed: {0}")]
    Grpc(String),
    #[error("gRPC health status {0}")]
    NotServing(&'static str),
    #[error("failed to run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("command exited with {0}")]
    Exec(std::process::ExitStatus),
}

/// Runs one probe, limited to `timeout`.
///
/// # Errors
///
/// Returns why the probe did not pass.
pub async fn check(target: &ProbeTarget, timeout: Duration) -> Result<(), ProbeError> {
    let probe = async {
        match target {
            ProbeTarget::Tcp { port } => tcp(*port).await,
            ProbeTarget::Http { url } => http(url).await,
            ProbeTarget::Grpc { address } => grpc(address, timeout).await,
            ProbeTarget::Exec { argv } => exec(argv).await,
        }
    };
    tokio::time::timeout(timeout, probe)
        .await
        .map_err(|_| ProbeError::TimedOut(timeout))?
}

async fn tcp(port: u16) -> Result<(), ProbeError> {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .map(drop)
        .map_err(ProbeError::Connect)
}

/// An HTTP/1.0 GET: enough for a health endpoint, and no connection pool to manage.
async fn http(url: &str) -> Result<(), ProbeError> {
    let status = http_status("GET", url).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

/// Sends one HTTP/1.0 request without a body to an `http://` URL and returns the response's
/// status code. The caller bounds the time it may take.
///
/// # Errors
///
/// Returns why no status came back: an invalid URL, a failed connection, a failed read or
/// write, or a response that is not HTTP/1.x.
pub async fn http_status(method: &str, url: &str) -> Result<u16, ProbeError> {
    let invalid = || ProbeError::InvalidUrl {
        url: url.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid())?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid());
    }
    let host = uri.host().ok_or_else(invalid)?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());

    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(ProbeError::Connect)?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: aro-deployer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(ProbeError::Http)?;
    // Read the whole (bounded) response, so the server does not see its reply cut off.
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .await
        .map_err(ProbeError::Http)?;
    parse_status(&response)
}

/// Status code of an HTTP/1.x response.
fn parse_status(response: &[u8]) -> Result<u16, ProbeError> {
    let line_end = response
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .unwrap_or(response.len());
    let line = String::from_utf8_lossy(&response[..line_end.min(200)]);
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => Ok(code),
        _ => Err(ProbeError::InvalidResponse(line.into_owned())),
    }
}

async fn grpc(address: &str, timeout: Duration) -> Result<(), ProbeError> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| ProbeError::Grpc(error.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| ProbeError::Grpc(error.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| ProbeError::Grpc(status.message().to_owned()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(ProbeError::NotServing(other.as_str_name())),
    }
}

async fn exec(argv: &[String]) -> Result<(), ProbeError> {
    let (program, args) = argv.split_first().ok_or_else(|| ProbeError::Spawn {
        program: String::new(),
        source: std::io::Error::other("empty command"),
    })?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|source| ProbeError::Spawn {
            program: program.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(ProbeError::Exec(status))
    }
}

#[cfg(test)]
mod tests;
