//! The runtime signals consumer: exits become CRASH or CRASH_LOOP faults. A signal is
//! acknowledged only after the fault it raised is stored, so a detector that dies in between
//! gets the signal again and publishes the same fault id, which JetStream drops as a
//! duplicate.

use std::sync::Arc;
use std::time::Duration;

use aro_bus::{Bus, ConsumerSpec, Delivery, Disposition, subjects};
use aro_proto::v1::Signal;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::domain::{Ignored, SignalVerdict};
use crate::metrics::{Metrics, VerdictLabels};
use crate::publisher::Publisher;
use crate::watcher::Watcher;

/// Durable consumer name that every detector replica shares.
const DURABLE: &str = "detector";

/// Delay before a signal whose fault could not be published is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Consumes runtime signals until `shutdown` is cancelled.
pub(crate) async fn consume(
    bus: Bus,
    watcher: Arc<Watcher>,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let spec = ConsumerSpec::new(subjects::SIGNALS_STREAM, DURABLE, "aro.signals.>");
    let result = aro_bus::consume(&bus, spec, shutdown, |delivery: Delivery<Signal>| {
        handle(delivery, &watcher, &publisher, &metrics)
    })
    .await;
    if let Err(error) = result {
        error!(%error, "signal consumer stopped");
    }
}

async fn handle(
    delivery: Delivery<Signal>,
    watcher: &Arc<Watcher>,
    publisher: &Publisher,
    metrics: &Metrics,
) {
    let verdict = watcher.signal(&delivery.message);
    let label = match &verdict {
        Ok(SignalVerdict::Fault(_)) => "fault",
        Ok(SignalVerdict::Ignored(Ignored::Started)) => "started",
        Ok(SignalVerdict::Ignored(Ignored::Expected)) => "expected",
        Ok(SignalVerdict::Ignored(Ignored::Isolated)) => "isolated",
        Ok(SignalVerdict::Ignored(Ignored::Superseded { .. })) => "superseded",
        Ok(SignalVerdict::Ignored(Ignored::AlreadyFaulted { .. })) => "already_faulted",
        Err(_) => "invalid",
    };
    metrics
        .signals
        .get_or_create(&VerdictLabels { verdict: label })
        .inc();
    match verdict {
        Err(error) => {
            warn!(subject = %delivery.subject, %error, "invalid signal rejected");
            delivery.settle(Disposition::Reject).await;
        }
        Ok(SignalVerdict::Ignored(reason)) => {
            debug!(signal = %delivery.message.id, %reason, "signal raises no fault");
            delivery.settle(Disposition::Ack).await;
        }
        Ok(SignalVerdict::Fault(fault)) => {
            match publisher.publish(&fault, Some(&delivery.parent)).await {
                Ok(()) => delivery.settle(Disposition::Ack).await,
                Err(error) => {
                    error!(signal = %delivery.message.id, fault = %fault.id, %error, "publishing a fault failed, the signal will be redelivered");
                    delivery.settle(Disposition::Retry(RETRY_DELAY)).await;
                }
            }
        }
    }
}
