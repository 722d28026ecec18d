use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(2);

async fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let port = listener.local_addr().expect("bound address").port();
    (listener, port)
}

/// Returns a port nothing listens on.
async fn closed_port() -> u16 {
    let (listener, port) = listener().await;
    drop(listener);
    port
}

/// Serves every connection with `response`, after reading the request head.
async fn http_server(response: &'static str) -> u16 {
    let (listener, port) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await;
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn tcp_probe_passes_on_open_port() {
    let (_listener, port) = listener().await;
    check(&ProbeTarget::Tcp { port }, TIMEOUT)
        .await
        .expect("the port is open");
}

#[tokio::test]
async fn tcp_probe_fails_on_closed_port() {
    let port = closed_port().await;
    let error = check(&ProbeTarget::Tcp { port }, TIMEOUT)
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ProbeError::Connect(_)), "{error}");
}

#[tokio::test]
async fn http_probe_passes_on_2xx() {
    let port = http_server("HTTP/1.0 204 No Content\r\n\r\n").await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    check(&ProbeTarget::Http { url }, TIMEOUT)
        .await
        .expect("204 passes");
}

#[tokio::test]
async fn http_probe_fails_on_5xx() {
    let port = http_server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
    let url = format!("http://127.0.0.1:{port}/");
    let error = check(&ProbeTarget::Http { url }, TIMEOUT)
        .await
        .expect_err("503 fails");
    assert!(matches!(error, ProbeError::Status(503)), "{error}");
}

#[tokio::test]
async fn http_probe_rejects_garbage() {
    let port = http_server("hello\r\n").await;
    let url = format!("http://127.0.0.1:{port}/");
    let error = check(&ProbeTarget::Http { url }, TIMEOUT)
        .await
        .expect_err("not HTTP");
    assert!(matches!(error, ProbeError::InvalidResponse(_)), "{error}");
}

#[tokio::test]
async fn http_probe_times_out_on_silent_server() {
    let (listener, port) = listener().await;
    let _server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            accepted.push(stream);
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let timeout = Duration::from_millis(200);
    let error = check(&ProbeTarget::Http { url }, timeout)
        .await
        .expect_err("no answer");
    assert!(matches!(error, ProbeError::TimedOut(_)), "{error}");
}

#[tokio::test]
async fn exec_probe_follows_exit_status() {
    let pass = ProbeTarget::Exec {
        argv: vec!["true".to_owned()],
    };
    let fail = ProbeTarget::Exec {
        argv: vec!["false".to_owned()],
    };
    check(&pass, TIMEOUT).await.expect("true exits 0");
    let error = check(&fail, TIMEOUT).await.expect_err("false exits 1");
    assert!(matches!(error, ProbeError::Exec(_)), "{error}");
}

#[tokio::test]
async fn exec_probe_reports_missing_program() {
    let target = ProbeTarget::Exec {
        argv: vec!["aro-no-such-program".to_owned()],
    };
    let error = check(&target, TIMEOUT).await.expect_err("not found");
    assert!(matches!(error, ProbeError::Spawn { .. }), "{error}");
}

async fn grpc_server(serving: bool) -> SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

#[tokio::test]
async fn grpc_probe_passes_when_serving() {
    let addr = grpc_server(true).await;
    let target = ProbeTarget::Grpc {
        address: addr.to_string(),
    };
    check(&target, TIMEOUT)
        .await
        .expect("the server is serving");
}

#[tokio::test]
async fn grpc_probe_fails_when_not_serving() {
    let addr = grpc_server(false).await;
    let target = ProbeTarget::Grpc {
        address: addr.to_string(),
    };
    let error = check(&target, TIMEOUT).await.expect_err("not serving");
    assert!(
        matches!(error, ProbeError::NotServing("NOT_SERVING")),
        "{error}"
    );
}

#[test]
fn status_line_is_parsed() {
    assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n").ok(), Some(200));
    assert_eq!(parse_status(b"HTTP/1.0 404 Not Found").ok(), Some(404));
    assert!(parse_status(b"SSH-2.0-OpenSSH\r\n").is_err());
    assert!(parse_status(b"").is_err());
}
