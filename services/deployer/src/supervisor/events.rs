//! Runtime events become signals: every start and exit is published for the detector, and an
//! exit marks the instance stopped.

use std::time::Duration;

use aro_bus::subjects;
use aro_proto::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Supervisor;
use crate::backend::{InstanceKey, Runtime, RuntimeEvent};
use crate::convert;

impl<R: Runtime> Supervisor<R> {
    /// Publishes signals and records exits for each runtime event, until `drain` is
    /// cancelled; then handles the events already queued and returns.
    pub async fn run_events(
        &self,
        mut events: mpsc::UnboundedReceiver<RuntimeEvent>,
        drain: CancellationToken,
    ) {
        loop {
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(event) => self.handle_event(event).await,
                    None => return,
                },
                () = drain.cancelled() => break,
            }
        }
        while let Ok(event) = events.try_recv() {
            self.handle_event(event).await;
        }
    }

    async fn handle_event(&self, event: RuntimeEvent) {
        match event {
            RuntimeEvent::Started { key, pid, at } => {
                let signal = convert::started_signal(&key, pid, at, &self.settings.node);
                self.publish_signal(&key, &signal).await;
            }
            RuntimeEvent::Exited { key, exit } => {
                if exit.expected {
                    info!(instance = %key.instance, generation = key.generation, status = %exit, "instance stopped");
                } else {
                    warn!(instance = %key.instance, generation = key.generation, status = %exit, "instance exited unexpectedly");
                }
                let signal = convert::exited_signal(&key, &exit, &self.settings.node);
                self.publish_signal(&key, &signal).await;
                let write = {
                    let mut fleet = self.fleet();
                    fleet
                        .mark_exited(&key.workload, &key.instance, key.generation, exit.at)
                        .map(|record| self.queue_put(&fleet, &record))
                };
                if let Some(write) = write {
                    write.stored().await;
                }
            }
        }
    }

    /// Publishes a signal, retrying until it is stored: the detector learns of exits only
    /// through signals. Once the deployer is stopping, one failed attempt gives up.
    async fn publish_signal(&self, key: &InstanceKey, signal: &v1::Signal) {
        let subject = subjects::signal(&key.workload, &key.instance);
        loop {
            match self.bus.publish(subject.clone(), &signal.id, signal).await {
                Ok(()) => return,
                Err(error) if self.stopping.is_cancelled() => {
                    error!(signal = %signal.id, %error, "publishing a signal failed during shutdown, signal lost");
                    return;
                }
                Err(error) => {
                    error!(signal = %signal.id, %error, "publishing a signal failed, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
