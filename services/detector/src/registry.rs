//! Following the instances registry: a full listing at start, then every change. The watch
//! is opened again when it ends, after a fresh listing that catches the deletions missed in
//! between.

use std::sync::Arc;
use std::time::Duration;

use aro_bus::Registry;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::watcher::Watcher;

/// Loads the full registry into the watcher.
///
/// # Errors
///
/// Returns the bus error when the listing fails.
pub(crate) async fn load(registry: &Registry, watcher: &Arc<Watcher>) -> aro_bus::Result<()> {
    let snapshot = registry.list().await?;
    info!(instances = snapshot.len(), "registry loaded");
    watcher.reconcile(snapshot);
    Ok(())
}

/// Applies registry changes until `shutdown` is cancelled.
pub(crate) async fn follow(registry: Registry, watcher: Arc<Watcher>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match registry.watch().await {
            Ok(changes) => {
                backoff = Duration::from_millis(100);
                let mut changes = std::pin::pin!(changes);
                loop {
                    let change = tokio::select! {
                        () = shutdown.cancelled() => return,
                        change = changes.next() => change,
                    };
                    match change {
                        Some(change) => watcher.apply_registry(change),
                        None => break,
                    }
                }
                warn!("registry watch ended, reloading the registry");
            }
            Err(error) => warn!(%error, retry_in = ?backoff, "registry watch failed, retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if let Err(error) = load(&registry, &watcher).await {
            warn!(%error, "reloading the registry failed");
        }
    }
}
