//! Verification of a started instance: its health check must pass within the workload's start
//! timeout, and its executable and declared files must still have their start-up digests.

use std::fmt;
use std::time::{Duration, SystemTime};

use tracing::debug;

use super::{Spawned, Supervisor};
use crate::backend::{Exit, ExitWatch, InstanceKey, Runtime};
use crate::probe;

/// How long verification waits for an exit that the fleet already recorded to reach the
/// instance's exit watch.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(1);

/// Pause after the first failed verification probe; it doubles up to the check interval.
const FIRST_VERIFY_PAUSE: Duration = Duration::from_millis(10);

/// Result of verifying an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The health check passed and the instance is now serving.
    Passed { at: SystemTime },
    /// The instance exited before it passed.
    Exited(Exit),
    /// The start timeout ended first.
    TimedOut { last_error: Option<String> },
    /// The instance serves, but runs an executable or reads a file that changed since
    /// start-up.
    Corrupt(String),
    /// The deployer is stopping.
    Cancelled,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Passed { .. } => f.write_str("passed its health check"),
            Verification::Exited(exit) => {
                write!(f, "exited with {exit} before passing its health check")
            }
            Verification::TimedOut { last_error: None } => {
                f.write_str("did not pass its health check within the start timeout")
            }
            Verification::TimedOut {
                last_error: Some(error),
            } => write!(
                f,
                "did not pass its health check within the start timeout (last probe: {error})"
            ),
            Verification::Corrupt(message) => f.write_str(message),
            Verification::Cancelled => f.write_str("verification cancelled by shutdown"),
        }
    }
}

async fn exited(exit: &mut ExitWatch) -> Exit {
    match exit.wait().await {
        Some(exit) => exit,
        // The runtime reports every exit; without one the instance is still running.
        None => std::future::pending().await,
    }
}

impl<R: Runtime> Supervisor<R> {
    /// Probes the instance until it passes, exits, or the start timeout ends: first every
    /// 10 ms, doubling up to the check interval, so a workload that becomes healthy quickly is
    /// verified within milliseconds of it. When it passes and its digests match, it is marked
    /// serving.
    pub(super) async fn verify(&self, spawned: Spawned) -> Verification {
        let Spawned {
            key,
            launched,
            probe,
            start_timeout,
        } = spawned;
        let mut exit = launched.exit;
        let deadline = tokio::time::Instant::now() + start_timeout;
        let mut last_error = None;
        let mut pause = FIRST_VERIFY_PAUSE.min(probe.interval);
        loop {
            let attempt = probe::check(&probe.check, probe.timeout);
            tokio::select! {
                result = attempt => match result {
                    Ok(()) => break,
                    Err(error) => {
                        debug!(instance = %key.instance, %error, "probe failed during verification");
                        last_error = Some(error.to_string());
                    }
                },
                exit = exited(&mut exit) => return Verification::Exited(exit),
                () = tokio::time::sleep_until(deadline) => return Verification::TimedOut { last_error },
                () = self.stopping.cancelled() => return Verification::Cancelled,
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(probe.interval),
                exit = exited(&mut exit) => return Verification::Exited(exit),
                () = tokio::time::sleep_until(deadline) => return Verification::TimedOut { last_error },
                () = self.stopping.cancelled() => return Verification::Cancelled,
            }
        }

        if let Err(message) = self.check_digests(&key, &launched.artifact_digest).await {
            return Verification::Corrupt(message);
        }
        let at = SystemTime::now();
        let write = {
            let mut fleet = self.fleet();
            fleet
                .mark_serving(&key.workload, &key.instance, key.generation, at)
                .map(|record| self.queue_put(&fleet, &record))
        };
        match write {
            Some(write) => {
                write.stored().await;
                Verification::Passed { at }
            }
            // The instance exited between the probe and now (its exit is reported to the
            // fleet a moment before it reaches the exit watch), or a command isolated it.
            None => match tokio::time::timeout(EXIT_REPORT_WAIT, exited(&mut exit)).await {
                Ok(exit) => Verification::Exited(exit),
                Err(_) => Verification::Passed { at },
            },
        }
    }

    /// Compares the started executable's or image's digest and the declared files' digests,
    /// as the instance sees them, with those at start-up.
    async fn check_digests(&self, key: &InstanceKey, artifact_digest: &str) -> Result<(), String> {
        let artifact = self
            .artifacts
            .get(&key.workload)
            .expect("every workload's executable was resolved at start-up");
        if artifact_digest != artifact.digest {
            return Err(format!(
                "{} has digest {artifact_digest}, not {} as at start-up",
                artifact.program, artifact.digest
            ));
        }
        for file in &artifact.files {
            let (path, expected) = (&file.path, &file.digest);
            match self.runtime.file_digest(key, path).await {
                Ok(digest) if &digest == expected => {}
                Ok(digest) => {
                    return Err(format!(
                        "checksum file {} has digest {digest}, not {expected} as at start-up",
                        path.display()
                    ));
                }
                Err(error) => {
                    return Err(format!(
                        "checksum file {} cannot be read: {error}",
                        path.display()
                    ));
                }
            }
        }
        Ok(())
    }
}
