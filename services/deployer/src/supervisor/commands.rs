//! Execution of recovery commands: restart in place and replace, each verified. A
//! replacement starts from the checksum files' start-up content.

use std::sync::Arc;
use std::time::SystemTime;

use aro_proto::v1::{Action, Command, InstanceRef, Outcome, OutcomeStatus};
use tracing::{debug, error, info, warn};

use super::{Supervisor, Verification};
use crate::backend::{self, FaultSignal, InstanceKey, Runtime};
use crate::checksum_file;
use crate::convert::{self, timestamp};
use crate::domain::ids;
use crate::domain::plan::{self, Facts, Plan, TargetView, action_name};
use crate::metrics::{ActionLabels, CommandLabels};

impl<R: Runtime> Supervisor<R> {
    /// Executes `command`, received at `received_at`, and returns its outcome. Commands on
    /// one instance run one at a time; each re-reads the registry first.
    ///
    /// # Errors
    ///
    /// Returns the registry error when the target's entry cannot be read; nothing was done.
    pub async fn execute(
        self: &Arc<Self>,
        command: &Command,
        received_at: SystemTime,
    ) -> aro_bus::Result<Outcome> {
        let mut outcome = Outcome {
            id: ids::outcome_id(&command.id),
            incident_id: command.incident_id.clone(),
            command_id: command.id.clone(),
            target: command.target.clone(),
            action: command.action,
            attempt: command.attempt,
            started_at: Some(timestamp(received_at)),
            ..Outcome::default()
        };
        let target = command.target.clone().unwrap_or_default();
        let lock = self.instance_lock(&target.workload, &target.instance);
        let _instance_guard = lock.lock().await;

        let known_workload = self.fleet().spec(&target.workload).is_some();
        let readable = known_workload && aro_bus::subjects::validate_name(&target.instance).is_ok();
        let registry = if readable {
            self.registry
                .get(&target.workload, &target.instance)
                .await?
                .and_then(|entry| registry_view(&entry))
        } else {
            None
        };
        let local = self
            .fleet()
            .get(&target.workload, &target.instance)
            .map(|record| TargetView {
                generation: record.generation,
                state: record.state,
                started_at: record.started_at,
            });
        let facts = Facts {
            known_workload,
            registry: registry.as_ref(),
            local: local.as_ref(),
        };

        match plan::plan(command, &facts, &self.runtime) {
            Plan::Noop(message) => finish(&mut outcome, OutcomeStatus::Noop, message),
            Plan::Reject(message) => finish(&mut outcome, OutcomeStatus::Rejected, message),
            Plan::Supersede(message) => finish(&mut outcome, OutcomeStatus::Superseded, message),
            Plan::Restart => self.restart(&target, &mut outcome).await,
            Plan::Replace => self.replace(&target, &mut outcome).await,
            Plan::Observe => self.observe(&target, &mut outcome).await,
        }
        if local.is_none() {
            self.forget_instance_lock(&target.workload, &target.instance);
        }
        self.count(&outcome, received_at);
        Ok(outcome)
    }

    fn count(&self, outcome: &Outcome, received_at: SystemTime) {
        let action = Action::try_from(outcome.action).unwrap_or(Action::Unspecified);
        let action = action_name(action).to_ascii_lowercase();
        let status = outcome.status().as_str_name();
        let status = status.strip_prefix("OUTCOME_STATUS_").unwrap_or(status);
        self.metrics
            .commands
            .get_or_create(&CommandLabels {
                action: action.clone(),
                status: status.to_ascii_lowercase(),
            })
            .inc();
        if outcome.status() == OutcomeStatus::Recovered
            && let Some(verified_at) = &outcome.verified_at
        {
            let elapsed = aro_proto::time::to_system_time(verified_at)
                .duration_since(received_at)
                .unwrap_or_default();
            self.metrics
                .recovery_seconds
                .get_or_create(&ActionLabels { action })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Restarts `target` in place: the registry gets generation + 1 (starting) before the
    /// old process is stopped, then the new generation is started and verified.
    /// Waits the observation period, then probes the target once. It recovered when the probe
    /// passes and its generation is still current; otherwise the outcome is FAILED, so the
    /// brain climbs its escalation ladder.
    async fn observe(&self, target: &InstanceRef, outcome: &mut Outcome) {
        let period = self.settings.observe_period;
        let probe = {
            let fleet = self.fleet();
            fleet
                .get(&target.workload, &target.instance)
                .and_then(|record| {
                    let spec = fleet.spec(&record.workload)?;
                    Some(self.probe_for(record, spec))
                })
        };
        let Some(probe) = probe else {
            return finish(
                outcome,
                OutcomeStatus::Superseded,
                format!("instance {} is gone", target.instance),
            );
        };
        tokio::time::sleep(period).await;
        let current = self
            .fleet()
            .get(&target.workload, &target.instance)
            .map(|record| record.generation);
        if current != Some(target.generation) {
            return finish(
                outcome,
                OutcomeStatus::Superseded,
                format!(
                    "generation {} of {} was replaced while observing",
                    target.generation, target.instance
                ),
            );
        }
        match crate::probe::check(&probe.check, probe.timeout).await {
            Ok(()) => {
                outcome.verified_at = Some(timestamp(SystemTime::now()));
                let message = format!(
                    "{} passed its health check after {period:?} of observation",
                    target.instance
                );
                finish(outcome, OutcomeStatus::Recovered, message);
            }
            Err(error) => {
                let message = format!(
                    "{} still fails after {period:?} of observation: {error}",
                    target.instance
                );
                finish(outcome, OutcomeStatus::Failed, message);
            }
        }
    }

    async fn restart(&self, target: &InstanceRef, outcome: &mut Outcome) {
        let prepared = {
            let mut fleet = self.fleet();
            fleet
                .begin_restart(&target.workload, &target.instance, SystemTime::now())
                .map(|record| {
                    let spec = fleet.spec(&record.workload).expect("the workload exists");
                    let launch = self.launch_for(&record, spec);
                    let write = self.queue_put(&fleet, &record);
                    (
                        record,
                        launch,
                        spec.health.clone(),
                        spec.start_timeout,
                        write,
                    )
                })
        };
        let (record, launch, health, start_timeout, write) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                return finish(outcome, OutcomeStatus::Superseded, error.to_string());
            }
        };
        write.stored().await;
        let key = launch.key.clone();
        let old = InstanceKey {
            generation: key.generation - 1,
            ..key.clone()
        };
        info!(instance = %key.instance, generation = key.generation, "restarting instance");

        let started = self
            .runtime
            .restart(&old, launch, self.settings.stop_grace)
            .await;
        let launched = match self.after_start(&key, started).await {
            Ok(launched) => launched,
            Err(error) => {
                return finish(
                    outcome,
                    OutcomeStatus::Failed,
                    format!("restarting {} failed: {error}", key.instance),
                );
            }
        };
        outcome.replaced_at = Some(timestamp(launched.started_at));
        outcome.replacement = Some(convert::key_ref(&key, &self.settings.node));
        self.apply_crash_loop(&key).await;

        let spawned = self.spawned(&record, &health, start_timeout, launched);
        let verification = self.verify(spawned).await;
        record_verification(outcome, &key, &verification);
    }

    /// Kills a just-restarted instance when a crash-loop injection still has kills to come,
    /// as if the program crashed on start-up.
    async fn apply_crash_loop(&self, key: &InstanceKey) {
        let injection =
            self.chaos_book()
                .take_crash_loop_kill(&key.workload, &key.instance, key.generation);
        let Some(injection) = injection else {
            return;
        };
        match self.runtime.inject(key, FaultSignal::Kill).await {
            Ok(_) => info!(
                injection = %injection.id,
                instance = %key.instance,
                generation = key.generation,
                remaining = injection.remaining,
                "crash loop killed the restarted instance"
            ),
            Err(error) => error!(injection = %injection.id, %error, "crash-loop kill failed"),
        }
    }

    /// Replaces `target`: the registry marks it isolated before it is frozen, then a fresh
    /// instance starts in its slot and is verified. The isolated instance is removed when
    /// its retention ends.
    async fn replace(self: &Arc<Self>, target: &InstanceRef, outcome: &mut Outcome) {
        let isolated = {
            let mut fleet = self.fleet();
            fleet
                .isolate(&target.workload, &target.instance, SystemTime::now())
                .map(|record| {
                    (
                        record.generation,
                        record.slot,
                        self.queue_put(&fleet, &record),
                    )
                })
        };
        let (generation, slot, write) = match isolated {
            Ok(isolated) => isolated,
            Err(error) => return finish(outcome, OutcomeStatus::Superseded, error.to_string()),
        };
        write.stored().await;
        let key = InstanceKey {
            workload: target.workload.clone(),
            instance: target.instance.clone(),
            generation,
        };
        match self.runtime.isolate(&key).await {
            Ok(()) => info!(instance = %key.instance, generation, "instance isolated"),
            Err(backend::Error::NotRunning(_)) => {
                debug!(instance = %key.instance, "isolated instance had already exited");
            }
            Err(error) => {
                error!(instance = %key.instance, %error, "freezing the isolated instance failed")
            }
        }
        outcome.isolated_at = Some(timestamp(SystemTime::now()));
        self.schedule_removal(key);
        let restored = self.restore_declared_files(&target.workload).await;

        let spawned = match self.spawn_fresh(&target.workload, slot).await {
            Ok(spawned) => spawned,
            Err(error) => {
                return finish(
                    outcome,
                    OutcomeStatus::Failed,
                    format!(
                        "starting a replacement for {} failed: {error}",
                        target.instance
                    ),
                );
            }
        };
        let fresh = spawned.key.clone();
        info!(isolated = %target.instance, replacement = %fresh.instance, "replacement started");
        outcome.replaced_at = Some(timestamp(spawned.launched.started_at));
        outcome.replacement = Some(convert::key_ref(&fresh, &self.settings.node));
        let verification = self.verify(spawned).await;
        record_verification(outcome, &fresh, &verification);
        if !restored.is_empty() {
            outcome.message = format!("{} ({})", outcome.message, restored.join("; "));
        }
    }

    /// Gives the workload's checksum files their start-up content back where it changed, so
    /// that a fresh instance starts from pristine files as it starts from the pristine
    /// executable. Returns a note for each file that changed.
    async fn restore_declared_files(&self, workload: &str) -> Vec<String> {
        let mut notes = Vec::new();
        // Each fresh instance starts from its own copy of the image's files.
        if self.runtime.fresh_files() {
            return notes;
        }
        for file in self.declared_files(workload) {
            // A file that cannot be hashed (deleted, unreadable) is restored too.
            if let Ok(digest) = self.digests.sha256(file.path.clone()).await
                && digest == file.digest
            {
                continue;
            }
            let path = file.path.display().to_string();
            let copy = file.clone();
            let restored = tokio::task::spawn_blocking(move || checksum_file::restore(&copy))
                .await
                .map_err(std::io::Error::other)
                .and_then(|result| result);
            let note = match restored {
                Ok(true) => {
                    info!(%workload, %path, "restored a changed checksum file from its start-up copy");
                    format!("restored {path} from its start-up copy")
                }
                Ok(false) => {
                    warn!(%workload, %path, "a checksum file changed and has no start-up copy to restore");
                    format!("{path} changed and has no start-up copy to restore")
                }
                Err(error) => {
                    error!(%workload, %path, %error, "restoring a checksum file failed");
                    format!("restoring {path} failed: {error}")
                }
            };
            notes.push(note);
        }
        notes
    }
}

fn finish(outcome: &mut Outcome, status: OutcomeStatus, message: String) {
    outcome.set_status(status);
    outcome.message = message;
}

fn record_verification(outcome: &mut Outcome, key: &InstanceKey, verification: &Verification) {
    match verification {
        Verification::Passed { at } => {
            outcome.verified_at = Some(timestamp(*at));
            finish(
                outcome,
                OutcomeStatus::Recovered,
                format!("{key} {verification}"),
            );
        }
        other => finish(outcome, OutcomeStatus::Failed, format!("{key} {other}")),
    }
}

fn registry_view(entry: &aro_proto::v1::Instance) -> Option<TargetView> {
    Some(TargetView {
        generation: entry.r#ref.as_ref()?.generation,
        state: convert::domain_state(entry.state())?,
        started_at: entry
            .started_at
            .as_ref()
            .map_or(SystemTime::UNIX_EPOCH, aro_proto::time::to_system_time),
    })
}
