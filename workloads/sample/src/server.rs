use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::chaos::{self, Chaos};

/// One request in this many is logged, so the log shows traffic without a line per probe.
const LOG_EVERY: u64 = 100;

/// Serves `GET /healthz`, `GET /`, the data set at `GET /data` and the chaos hooks on
/// `addr` until `shutdown` is cancelled.
pub(crate) async fn serve(
    addr: SocketAddr,
    instance: String,
    chaos: Arc<Chaos>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind {addr}"))?;
    let greeting = format!("sample workload {instance}\n");
    let requests = Arc::new(AtomicU64::new(0));
    let data = Arc::clone(&chaos);
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(move || async move { greeting }))
        .route("/data", get(move || async move { data.data.content() }))
        .merge(chaos::routes(chaos, addr.ip()))
        .layer(middleware::from_fn_with_state(requests, log_sampled));
    info!(addr = %listener.local_addr()?, "serving HTTP");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .context("HTTP server failed")
}

/// Logs the first request and every `LOG_EVERY`th after it.
async fn log_sampled(
    State(count): State<Arc<AtomicU64>>,
    request: Request,
    next: Next,
) -> Response {
    let number = count.fetch_add(1, Ordering::Relaxed) + 1;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if number == 1 || number % LOG_EVERY == 0 {
        info!(%method, %path, status = response.status().as_u16(), requests = number, "request served");
    }
    response
}

/// Returns a token that is cancelled on SIGTERM or SIGINT.
pub(crate) fn shutdown_on_signal() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut terminate =
        signal(SignalKind::terminate()).context("failed to install a SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("failed to install a SIGINT handler")?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => info!(signal = "SIGTERM", "shutting down"),
            _ = interrupt.recv() => info!(signal = "SIGINT", "shutting down"),
        }
        cancel.cancel();
    });
    Ok(token)
}
