//! The `deployer` consumer of the commands stream. Commands run concurrently (one at a time
//! per instance, which the supervisor enforces) and each is acknowledged only after its
//! outcome is stored. A redelivered or re-published command is not executed again: the ledger
//! remembers the last 10 000 command ids of this run with their outcomes, and an older one
//! gets a superseded outcome from the registry's generation check.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aro_bus::{Bus, ConsumerSpec, Delivery, Disposition, subjects};
use aro_proto::v1::{Action, Command, Outcome};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::backend::Runtime;
use crate::domain::plan::action_name;
use crate::supervisor::Supervisor;

/// Durable consumer name shared by deployer replicas.
pub const DURABLE: &str = "deployer";

/// Interval of the "still working" acknowledgements that keep JetStream from redelivering a
/// command whose verification takes longer than the ack wait.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Delay before a command whose outcome could not be stored is delivered again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Command ids remembered for deduplication.
const LEDGER_CAPACITY: usize = 10_000;

/// Consumes commands until `shutdown` is cancelled, then gives running commands `grace` to
/// finish. Commands still running after that are not acknowledged, so JetStream delivers
/// them again to the next deployer.
pub async fn run<R: Runtime>(
    bus: Bus,
    supervisor: Arc<Supervisor<R>>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let handler = Arc::new(Handler {
        bus: bus.clone(),
        supervisor,
        ledger: Mutex::default(),
    });
    let spec = ConsumerSpec::new(subjects::COMMANDS_STREAM, DURABLE, "aro.commands.>");
    consume_in_tasks(&bus, spec, shutdown, grace, move |delivery, _| {
        let handler = Arc::clone(&handler);
        async move { handler.handle(delivery).await }
    })
    .await;
}

/// Consumes commands with `spec` until `shutdown` is cancelled, each in a task of its own
/// that `handle` gets with the consumer's maximum deliveries. Then gives running commands
/// `grace` to finish; those still running are not acknowledged and come again.
pub(crate) async fn consume_in_tasks<H, F>(
    bus: &Bus,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    grace: Duration,
    handle: H,
) where
    H: Fn(Delivery<Command>, i64) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let max_deliver = spec.max_deliver;
    let consumed = aro_bus::consume(bus, spec, shutdown, |delivery: Delivery<Command>| {
        tracker.spawn(handle(delivery, max_deliver));
        std::future::ready(())
    })
    .await;
    if let Err(error) = consumed {
        error!(%error, "consuming commands failed");
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(
            ?grace,
            "commands still running at the end of the shutdown grace; they will be redelivered"
        );
    }
}

#[derive(Debug)]
struct Handler<R> {
    bus: Bus,
    supervisor: Arc<Supervisor<R>>,
    ledger: Mutex<Ledger>,
}

impl<R: Runtime> Handler<R> {
    async fn handle(&self, delivery: Delivery<Command>) {
        let received_at = SystemTime::now();
        let command = &delivery.message;
        let target = command.target.clone().unwrap_or_default();
        let action = Action::try_from(command.action).unwrap_or(Action::Unspecified);
        let span = info_span!(
            "deployer.command",
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = %delivery.subject,
            incident.id = %command.incident_id,
            command.id = %command.id,
            command.action = action_name(action),
            workload = %target.workload,
            instance = %target.instance,
            generation = target.generation,
            delivered = delivery.delivered,
        );
        if let Err(error) = span.set_parent(delivery.parent.clone()) {
            debug!(%error, "command span keeps no trace parent");
        }
        self.handle_in_span(delivery, received_at)
            .instrument(span)
            .await;
    }

    async fn handle_in_span(&self, delivery: Delivery<Command>, received_at: SystemTime) {
        let id = delivery.message.id.clone();
        let begin = if id.is_empty() {
            // Rejected at once without an id to remember it by.
            Begin::New(watch::channel(false).0)
        } else {
            self.ledger().begin(&id)
        };
        match begin {
            Begin::New(done) => {
                let disposition = self.execute(&delivery, received_at).await;
                let _ = done.send(true);
                delivery.settle(disposition).await;
            }
            Begin::Running(mut done) => {
                debug!("command is running already, waiting for its outcome");
                let _ = done.wait_for(|finished| *finished).await;
                let disposition = self.republish(&id, &delivery.subject).await;
                delivery.settle(disposition).await;
            }
            Begin::Done => {
                info!("command was executed before, not running it again");
                let disposition = self.republish(&id, &delivery.subject).await;
                delivery.settle(disposition).await;
            }
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("command ledger lock poisoned")
    }

    async fn execute(&self, delivery: &Delivery<Command>, received_at: SystemTime) -> Disposition {
        let command = &delivery.message;
        let execution = self.supervisor.execute(command, received_at);
        tokio::pin!(execution);
        let mut progress = tokio::time::interval(PROGRESS_INTERVAL);
        progress.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut execution => break result,
                _ = progress.tick() => delivery.in_progress().await,
            }
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                warn!(%error, "reading the registry failed, command will be redelivered");
                self.ledger().forget(&command.id);
                return Disposition::Retry(RETRY_DELAY);
            }
        };
        info!(
            status = outcome.status().as_str_name(),
            message = %outcome.message,
            "command handled"
        );
        let published = self.publish(&outcome, &delivery.subject).await;
        if !command.id.is_empty() {
            self.ledger().finish(&command.id, outcome, published);
        }
        if published {
            Disposition::Ack
        } else {
            Disposition::Retry(RETRY_DELAY)
        }
    }

    /// Publishes the stored outcome of an executed command again unless it was already
    /// stored; JetStream drops the copy because the outcome id is derived from the command id.
    async fn republish(&self, id: &str, command_subject: &str) -> Disposition {
        let stored = self.ledger().outcome(id);
        match stored {
            Some((_, true)) => Disposition::Ack,
            Some((outcome, false)) => {
                let published = self.publish(&outcome, command_subject).await;
                if published {
                    self.ledger().finish(id, outcome, true);
                    Disposition::Ack
                } else {
                    Disposition::Retry(RETRY_DELAY)
                }
            }
            // The first delivery failed before executing; this one may try again.
            None => Disposition::Retry(RETRY_DELAY),
        }
    }

    async fn publish(&self, outcome: &Outcome, command_subject: &str) -> bool {
        let subject = subjects::outcome(outcome_workload(outcome, command_subject));
        match self.bus.publish(subject, &outcome.id, outcome).await {
            Ok(()) => true,
            Err(error) => {
                error!(outcome = %outcome.id, %error, "publishing the outcome failed, command will be redelivered");
                false
            }
        }
    }
}

/// Workload token of the outcome's subject: the target's workload when it is a valid name,
/// otherwise the last token of the command's subject.
pub(crate) fn outcome_workload<'a>(outcome: &'a Outcome, command_subject: &'a str) -> &'a str {
    outcome
        .target
        .as_ref()
        .map(|target| target.workload.as_str())
        .filter(|workload| subjects::validate_name(workload).is_ok())
        .unwrap_or_else(|| {
            command_subject
                .rsplit('.')
                .next()
                .unwrap_or(command_subject)
        })
}

/// State of a command id in the ledger.
#[derive(Debug)]
enum Begin {
    /// First sight: execute it, then send `true`.
    New(watch::Sender<bool>),
    /// Another delivery is executing it.
    Running(watch::Receiver<bool>),
    /// Executed before.
    Done,
}

#[derive(Debug)]
enum Entry {
    Running(watch::Receiver<bool>),
    Done {
        outcome: Box<Outcome>,
        published: bool,
    },
}

/// Command ids seen in this run, bounded to the most recent ones.
#[derive(Debug, Default)]
struct Ledger {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl Ledger {
    fn begin(&mut self, id: &str) -> Begin {
        match self.entries.get(id) {
            Some(Entry::Running(done)) => Begin::Running(done.clone()),
            Some(Entry::Done { .. }) => Begin::Done,
            None => {
                let (sender, receiver) = watch::channel(false);
                self.entries.insert(id.to_owned(), Entry::Running(receiver));
                self.order.push_back(id.to_owned());
                self.evict();
                Begin::New(sender)
            }
        }
    }

    fn finish(&mut self, id: &str, outcome: Outcome, published: bool) {
        self.entries.insert(
            id.to_owned(),
            Entry::Done {
                outcome: Box::new(outcome),
                published,
            },
        );
    }

    fn forget(&mut self, id: &str) {
        self.entries.remove(id);
        self.order.retain(|known| known != id);
    }

    fn outcome(&self, id: &str) -> Option<(Outcome, bool)> {
        match self.entries.get(id)? {
            Entry::Done { outcome, published } => Some((outcome.as_ref().clone(), *published)),
            Entry::Running(_) => None,
        }
    }

    /// Drops the oldest finished entries past the capacity; running ones stay.
    fn evict(&mut self) {
        let mut running = VecDeque::new();
        while self.order.len() + running.len() > LEDGER_CAPACITY {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if matches!(self.entries.get(&oldest), Some(Entry::Running(_))) {
                running.push_back(oldest);
            } else {
                self.entries.remove(&oldest);
            }
        }
        while let Some(id) = running.pop_back() {
            self.order.push_front(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use aro_proto::v1::InstanceRef;

    use super::*;

    fn outcome(id: &str) -> Outcome {
        Outcome {
            id: format!("out-{id}"),
            command_id: id.to_owned(),
            ..Outcome::default()
        }
    }

    #[test]
    fn first_sight_is_new() {
        let mut ledger = Ledger::default();
        assert!(matches!(ledger.begin("cmd-1"), Begin::New(_)));
    }

    #[test]
    fn running_command_is_not_started_again() {
        let mut ledger = Ledger::default();
        let _first = ledger.begin("cmd-1");
        assert!(matches!(ledger.begin("cmd-1"), Begin::Running(_)));
    }

    #[test]
    fn finished_command_is_done() {
        let mut ledger = Ledger::default();
        let _first = ledger.begin("cmd-1");
        ledger.finish("cmd-1", outcome("cmd-1"), true);
        assert!(matches!(ledger.begin("cmd-1"), Begin::Done));
        assert_eq!(
            ledger
                .outcome("cmd-1")
                .map(|(o, published)| (o.id, published)),
            Some(("out-cmd-1".to_owned(), true))
        );
    }

    #[test]
    fn forgotten_command_runs_again() {
        let mut ledger = Ledger::default();
        let _first = ledger.begin("cmd-1");
        ledger.forget("cmd-1");
        assert!(matches!(ledger.begin("cmd-1"), Begin::New(_)));
    }

    #[test]
    fn ledger_keeps_the_most_recent_ids() {
        let mut ledger = Ledger::default();
        for n in 0..LEDGER_CAPACITY + 5 {
            let id = format!("cmd-{n}");
            let _begin = ledger.begin(&id);
            ledger.finish(&id, outcome(&id), true);
        }
        assert_eq!(ledger.entries.len(), LEDGER_CAPACITY);
        assert!(ledger.outcome("cmd-0").is_none());
        assert!(
            ledger
                .outcome(&format!("cmd-{}", LEDGER_CAPACITY + 4))
                .is_some()
        );
    }

    #[test]
    fn running_ids_survive_eviction() {
        let mut ledger = Ledger::default();
        let _running = ledger.begin("cmd-running");
        for n in 0..LEDGER_CAPACITY + 5 {
            let id = format!("cmd-{n}");
            let _begin = ledger.begin(&id);
            ledger.finish(&id, outcome(&id), true);
        }
        assert!(matches!(ledger.begin("cmd-running"), Begin::Running(_)));
    }

    #[test]
    fn outcome_subject_prefers_the_target_workload() {
        let mut with_target = outcome("cmd-1");
        with_target.target = Some(InstanceRef {
            workload: "web".to_owned(),
            ..InstanceRef::default()
        });
        assert_eq!(outcome_workload(&with_target, "aro.commands.other"), "web");
        assert_eq!(
            outcome_workload(&outcome("cmd-1"), "aro.commands.other"),
            "other"
        );
    }
}
