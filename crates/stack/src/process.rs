use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Returns a TCP port that was free on 127.0.0.1 a moment ago.
///
/// # Panics
///
/// Panics when no port can be bound on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding a free port on 127.0.0.1")
}

/// Waits until the gRPC server at `addr` reports `SERVING` for the whole server, or `timeout`
/// passes. Returns true when it reported `SERVING`.
pub async fn wait_for_health(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a socket address forms a valid URI");
        if let Ok(channel) = endpoint.connect().await {
            let mut client = HealthClient::new(channel);
            let request = HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(response) = client.check(request).await
                && response.into_inner().status() == ServingStatus::Serving
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
