//! Probes: one task per watched generation that has a health check. It runs the check at the
//! check's interval and reports every result to the watcher, until the generation is
//! unwatched.

mod check;

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::domain::{InstanceKey, ProbeSpec};
use crate::watcher::Watcher;

pub(crate) use check::run_check;

/// Probes one generation until `cancel` is cancelled.
pub(crate) async fn run(
    watcher: Arc<Watcher>,
    key: InstanceKey,
    generation: u64,
    spec: ProbeSpec,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(spec.interval);
    // A check slower than the interval delays the next one instead of starting a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            outcome = run_check(&spec.target, spec.timeout) => outcome,
        };
        watcher.probe_result(&key, generation, spec.kind(), outcome);
    }
}
