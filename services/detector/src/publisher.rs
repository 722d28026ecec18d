//! Publishing faults on `aro.faults.<workload>`, each in the span that starts its incident's
//! trace.

use std::sync::Arc;
use std::time::Duration;

use aro_bus::{Bus, subjects};
use aro_proto::v1::FaultEvent;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::ids;
use crate::metrics::{FaultLabels, KindLabels, Metrics};

/// Publishes faults to JetStream and counts them.
#[derive(Clone, Debug)]
pub(crate) struct Publisher {
    bus: Bus,
    metrics: Arc<Metrics>,
}

impl Publisher {
    pub(crate) fn new(bus: Bus, metrics: Arc<Metrics>) -> Self {
        Self { bus, metrics }
    }

    /// Publishes `fault` with its id as the deduplication id, in a root span
    /// `detector.fault` that starts the incident's trace. `cause` is the trace context of the
    /// message that led to the fault, such as the runtime signal, and becomes a span link.
    ///
    /// # Errors
    ///
    /// Returns the bus error when JetStream did not store the fault within the bus's publish
    /// deadline.
    pub(crate) async fn publish(
        &self,
        fault: &FaultEvent,
        cause: Option<&opentelemetry::Context>,
    ) -> aro_bus::Result<()> {
        let target = fault.target.clone().unwrap_or_default();
        let kind = ids::kind_name(fault.kind());
        let subject = subjects::fault(&target.workload);
        let span = info_span!(
            parent: None,
            "detector.fault",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation.type = "send",
            messaging.destination.name = %subject,
            messaging.message.id = %fault.id,
            incident.id = %fault.incident_id,
            instance = %target.instance,
            generation = target.generation,
            fault.kind = %kind,
        );
        if let Some(cause) = cause {
            let context = cause.span().span_context().clone();
            if context.is_valid() {
                span.add_link(context);
            }
        }
        self.bus
            .publish(subject, &fault.id, fault)
            .instrument(span.clone())
            .await?;

        let time_to_detect =
            aro_proto::time::millis_between(fault.observed_at.as_ref(), fault.detected_at.as_ref())
                .unwrap_or_default()
                / 1e3;
        self.metrics
            .faults
            .get_or_create(&FaultLabels {
                workload: target.workload.clone(),
                kind: kind.clone(),
            })
            .inc();
        self.metrics
            .time_to_detect
            .get_or_create(&KindLabels { kind: kind.clone() })
            .observe(time_to_detect.max(0.0));
        span.in_scope(|| {
            info!(
                fault = %fault.id,
                incident = %fault.incident_id,
                instance = %target.instance,
                %kind,
                time_to_detect_ms = time_to_detect * 1e3,
                summary = fault.evidence.first().map_or("", |e| e.summary.as_str()),
                "fault published"
            );
        });
        Ok(())
    }
}

/// Delay between two attempts to publish a fault that the bus failed to store.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Publishes the faults that ticks and probes raise, each in its own task, so one slow
/// publish does not hold back the next fault. A failed publish is retried until it succeeds
/// or the process stops. On shutdown the faults still queued are published too, and
/// `publishing` tracks the tasks that the drain waits for.
pub(crate) async fn run_queue(
    publisher: Publisher,
    mut faults: mpsc::UnboundedReceiver<FaultEvent>,
    publishing: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let fault = tokio::select! {
            () = shutdown.cancelled() => break,
            fault = faults.recv() => fault,
        };
        let Some(fault) = fault else {
            break;
        };
        publishing.spawn(publish_until_stored(publisher.clone(), fault));
    }
    faults.close();
    while let Some(fault) = faults.recv().await {
        publishing.spawn(publish_until_stored(publisher.clone(), fault));
    }
}

async fn publish_until_stored(publisher: Publisher, fault: FaultEvent) {
    while let Err(error) = publisher.publish(&fault, None).await {
        error!(fault = %fault.id, %error, retry_in = ?RETRY_DELAY, "publishing a fault failed, retrying");
        tokio::time::sleep(RETRY_DELAY).await;
    }
}
