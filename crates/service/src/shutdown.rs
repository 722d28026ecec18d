use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Returns a token that is cancelled on the first SIGINT or SIGTERM. A second signal exits the
/// process at once.
///
/// # Panics
///
/// Panics when the signal handlers cannot be installed, which only happens outside a Tokio
/// runtime.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => info!(signal = "SIGINT", "shutting down"),
            _ = terminate.recv() => info!(signal = "SIGTERM", "shutting down"),
        }
        cancel.cancel();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        warn!("second signal, exiting now");
        std::process::exit(130);
    });
    token
}
