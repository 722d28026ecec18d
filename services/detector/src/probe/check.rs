//! One run of a health check against an instance.

use std::error::Error as _;
use std::io;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::domain::{ProbeOutcome, ProbeTarget};

/// Runs the check once and waits at most `timeout` for its answer. Every run opens a new
/// connection, so a frozen process that the kernel still accepts connections for shows up as
/// a timeout rather than as a reused healthy connection.
pub(crate) async fn run_check(target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
    let attempt = async {
        match target {
            ProbeTarget::Tcp { port } => tcp(*port).await,
            ProbeTarget::Http { uri } => http_get(uri).await,
            ProbeTarget::Grpc { uri } => grpc_health(uri).await,
            ProbeTarget::Exec { argv } => exec(argv).await,
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => unanswered(format!("no answer within {timeout:?}")),
    }
}

fn unanswered(error: String) -> ProbeOutcome {
    ProbeOutcome::Failed {
        answered: false,
        error,
    }
}

fn answered(error: String) -> ProbeOutcome {
    ProbeOutcome::Failed {
        answered: true,
        error,
    }
}

/// A refused connection is an answer: the host is up and nothing listens on the port.
fn connect_failed(target: &str, error: &io::Error) -> ProbeOutcome {
    let message = format!("connecting to {target} failed: {error}");
    if error.kind() == io::ErrorKind::ConnectionRefused {
        answered(message)
    } else {
        unanswered(message)
    }
}

async fn tcp(port: u16) -> ProbeOutcome {
    match TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
        Ok(_) => ProbeOutcome::Passed,
        Err(error) => connect_failed(&format!("127.0.0.1:{port}"), &error),
    }
}

async fn http_get(uri: &Uri) -> ProbeOutcome {
    let Some(authority) = uri.authority() else {
        return answered(format!("{uri} has no host"));
    };
    let port = uri.port_u16().unwrap_or(80);
    let stream = match TcpStream::connect((authority.host(), port)).await {
        Ok(stream) => stream,
        Err(error) => return connect_failed(authority.as_str(), &error),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(error) => {
                return unanswered(format!("HTTP handshake with {authority} failed: {error}"));
            }
        };
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let request = match http::Request::get(path)
        .header(HOST, authority.as_str())
        .header(USER_AGENT, "aro-detector")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
    {
        Ok(request) => request,
        Err(error) => return answered(format!("invalid request for {uri}: {error}")),
    };
    // The connection future drives the socket. Polling it beside the request keeps both in
    // this task, so a timeout drops them together. With `Connection: close` it may finish in
    // the same poll as the response, which is then already waiting.
    let response = sender.send_request(request);
    tokio::pin!(response);
    let response = tokio::select! {
        biased;
        response = &mut response => response,
        closed = connection => match closed {
            Ok(()) => response.await,
            Err(error) => return unanswered(format!("GET {uri} failed: {error}")),
        },
    };
    match response {
        Ok(response) if response.status().is_success() => ProbeOutcome::Passed,
        Ok(response) => answered(format!("GET {uri} returned HTTP {}", response.status())),
        Err(error) => unanswered(format!("GET {uri} failed: {error}")),
    }
}

async fn grpc_health(uri: &Uri) -> ProbeOutcome {
    let channel = match tonic::transport::Endpoint::from(uri.clone())
        .connect()
        .await
    {
        Ok(channel) => channel,
        Err(error) => {
            let message = format!("connecting to {uri} failed: {error}");
            return if refused(&error) {
                answered(message)
            } else {
                unanswered(message)
            };
        }
    };
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => match response.into_inner().status() {
            ServingStatus::Serving => ProbeOutcome::Passed,
            status => answered(format!("{uri} reports {}", status.as_str_name())),
        },
        Err(status) => {
            let message = format!("health check at {uri} failed: {status}");
            match status.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled => unanswered(message),
                _ => answered(message),
            }
        }
    }
}

/// Returns true when the error was caused by a refused TCP connection.
fn refused(error: &tonic::transport::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Maximum length of a failing command's standard error kept in the evidence.
const STDERR_TAIL: usize = 200;

async fn exec(argv: &[String]) -> ProbeOutcome {
    let Some((program, args)) = argv.split_first() else {
        return answered("the exec check has no command".to_owned());
    };
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(output) if output.status.success() => ProbeOutcome::Passed,
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = stderr.trim();
            let tail_start = stderr
                .char_indices()
                .rev()
                .nth(STDERR_TAIL)
                .map_or(0, |(index, _)| index);
            answered(format!(
                "{program} ended with {}: {}",
                output.status,
                &stderr[tail_start..]
            ))
        }
        // A command that cannot start fails every time, which is an answer, not a silence.
        Err(error) => answered(format!("running {program} failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    /// Binds a loopback listener on an ephemeral port.
    async fn listener() -> (tokio::net::TcpListener, u16) {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binding an ephemeral port");
        let port = listener.local_addr().expect("bound address").port();
        (listener, port)
    }

    /// Asserts that `outcome` is a failure that was answered or not, as `answered` says.
    fn assert_failed(outcome: &ProbeOutcome, answered: bool) {
        let failed_as_expected = matches!(
            outcome,
            ProbeOutcome::Failed { answered: actual, .. } if *actual == answered
        );
        assert!(failed_as_expected, "{outcome:?}");
    }

    /// Returns a loopback port that nothing listens on.
    async fn closed_port() -> u16 {
        listener().await.1
    }

    #[tokio::test]
    async fn tcp_check_passes_on_listening_port() {
        let (_listener, port) = listener().await;
        let outcome = run_check(&ProbeTarget::Tcp { port }, TIMEOUT).await;
        assert_eq!(outcome, ProbeOutcome::Passed);
    }

    #[tokio::test]
    async fn refused_connection_is_answered_failure() {
        let port = closed_port().await;
        let outcome = run_check(&ProbeTarget::Tcp { port }, TIMEOUT).await;
        assert_failed(&outcome, true);
    }

    #[tokio::test]
    async fn http_status_decides_outcome() {
        let (listener, port) = listener().await;
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let uri = |path: &str| {
            format!("http://127.0.0.1:{port}{path}")
                .parse::<Uri>()
                .expect("valid URI")
        };
        let passed = run_check(&ProbeTarget::Http { uri: uri("/ok") }, TIMEOUT).await;
        assert_eq!(passed, ProbeOutcome::Passed);
        let failed = run_check(&ProbeTarget::Http { uri: uri("/down") }, TIMEOUT).await;
        let ProbeOutcome::Failed { answered, error } = failed else {
            panic!("HTTP 503 must fail");
        };
        assert!(answered);
        assert!(error.contains("503"), "{error}");
    }

    #[tokio::test]
    async fn silent_server_times_out_unanswered() {
        // A listener that never accepts: the kernel completes the handshake, and nothing reads the
        // request.
        let (listener, port) = listener().await;
        let uri: Uri = format!("http://127.0.0.1:{port}/healthz")
            .parse()
            .expect("valid URI");
        let outcome = run_check(&ProbeTarget::Http { uri }, Duration::from_millis(200)).await;
        assert_failed(&outcome, false);
        drop(listener);
    }

    #[tokio::test]
    async fn grpc_check_on_closed_port_is_answered_failure() {
        let port = closed_port().await;
        let uri: Uri = format!("http://127.0.0.1:{port}")
            .parse()
            .expect("valid URI");
        let outcome = run_check(&ProbeTarget::Grpc { uri }, TIMEOUT).await;
        assert_failed(&outcome, true);
    }

    #[tokio::test]
    async fn grpc_check_passes_on_serving_server() {
        let (listener, port) = listener().await;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (_reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        let uri: Uri = format!("http://{addr}").parse().expect("valid URI");
        let outcome = run_check(&ProbeTarget::Grpc { uri }, TIMEOUT).await;
        assert_eq!(outcome, ProbeOutcome::Passed);
    }

    #[tokio::test]
    async fn exec_exit_status_decides_outcome() {
        let pass = ProbeTarget::Exec {
            argv: vec!["true".to_owned()],
        };
        assert_eq!(run_check(&pass, TIMEOUT).await, ProbeOutcome::Passed);
        let fail = ProbeTarget::Exec {
            argv: vec![
                "sh".to_owned(),
                "-c".to_owned(),
                "echo broken >&2; exit 3".to_owned(),
            ],
        };
        let ProbeOutcome::Failed { answered, error } = run_check(&fail, TIMEOUT).await else {
            panic!("exit status 3 must fail");
        };
        assert!(answered);
        assert!(error.contains("broken"), "{error}");
        assert!(error.contains('3'), "{error}");
    }

    #[tokio::test]
    async fn slow_exec_times_out_unanswered() {
        let slow = ProbeTarget::Exec {
            argv: vec!["sleep".to_owned(), "5".to_owned()],
        };
        let outcome = run_check(&slow, Duration::from_millis(100)).await;
        assert_failed(&outcome, false);
    }
}
