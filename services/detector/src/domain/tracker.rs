//! The detector's record of every instance in the registry: which generations it watches,
//! their liveness, their exits and their open incidents.

mod checksums;
mod classify;
mod logs;
mod memory;
mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use aro_proto::v1::{FaultEvent, Instance, InstanceRef, InstanceState, WatchedInstance};
use prost_types::Timestamp;
use tracing::{info, warn};

pub use classify::{Ignored, SignalVerdict};
pub use logs::LogSource;
pub use memory::MemoryVerdict;
pub use report::{DataSetTally, ReportVerdict};

use super::exits::ExitHistory;
use super::incidents::IncidentBook;
use super::watch::Watch;
use super::{DetectorConfig, InstanceKey, Moment, ProbeSpec};

/// Errors in the input the tracker receives.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackerError {
    #[error("invalid {what}: the instance reference is missing")]
    MissingReference { what: &'static str },
    #[error("invalid {what}: {field} {message}")]
    InvalidName {
        what: &'static str,
        field: &'static str,
        message: String,
    },
    #[error("invalid signal {id}: it is neither started nor exited")]
    MissingKind { id: String },
}

/// Result of tracker operations.
pub(crate) type Result<T, E = TrackerError> = std::result::Result<T, E>;

/// Change in the set of watched generations, for the adapters that probe instances and
/// export suspicion levels.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// Watching of a generation began; probe it with `probe` when it has a usable check.
    Watched {
        key: InstanceKey,
        generation: u64,
        probe: Option<ProbeSpec>,
    },
    /// Watching ended: stop probing and forget the suspicion level.
    Unwatched { key: InstanceKey },
}

/// Everything known about one instance id.
#[derive(Debug)]
struct Tracked {
    /// Latest registry entry, or an entry made up from a signal for an instance that the
    /// registry has not shown yet.
    entry: Instance,
    registered: bool,
    /// Highest generation whose exit was reported.
    exited_generation: u64,
    /// Fault raised for the latest faulted generation.
    fault: Option<FaultEvent>,
    watch: Option<Watch>,
}

impl Tracked {
    fn generation(&self) -> u64 {
        self.entry.r#ref.as_ref().map_or(0, |r| r.generation)
    }

    fn faulted(&self, generation: u64) -> bool {
        self.fault
            .as_ref()
            .and_then(|fault| fault.target.as_ref())
            .is_some_and(|target| target.generation >= generation)
    }

    /// Serving, watched, below the suspicion threshold, without failing probes and without
    /// a fault in the current generation.
    fn is_healthy(&self, threshold: f64) -> bool {
        self.entry.state() == InstanceState::Serving
            && !self.faulted(self.generation())
            && self
                .watch
                .as_ref()
                .is_some_and(|watch| watch.suspicion < threshold && watch.probe_failures == 0)
    }
}

/// The detector's state machine. Its inputs are registry changes, heartbeats, probe results,
/// runtime signals and the passing of time, each with an explicit time, and its outputs are
/// faults.
#[derive(Debug)]
pub struct Tracker {
    config: DetectorConfig,
    instances: BTreeMap<InstanceKey, Tracked>,
    exits: ExitHistory,
    incidents: IncidentBook,
    events: Vec<WatchEvent>,
}

impl Tracker {
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            exits: ExitHistory::new(config.crash_loop_window),
            config,
            instances: BTreeMap::new(),
            incidents: IncidentBook::default(),
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Removes and returns the watch changes since the last call.
    pub fn take_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.events)
    }

    /// Applies a registry entry. STARTING and SERVING generations are watched, a new
    /// generation starts from a clean state, and ISOLATED or STOPPED ones are unwatched at
    /// once. An entry older than the one already seen is ignored.
    ///
    /// # Errors
    ///
    /// Returns an error for an entry without a valid reference; nothing changes then.
    pub fn put(&mut self, instance: Instance, now: Moment) -> Result<()> {
        let reference = checked_reference(instance.r#ref.as_ref(), "registry entry")?;
        let key = InstanceKey::new(&reference.workload, &reference.instance);
        let generation = reference.generation;
        let state = instance.state();
        let tracked = self
            .instances
            .entry(key.clone())
            .or_insert_with(|| Tracked {
                entry: instance.clone(),
                registered: true,
                exited_generation: 0,
                fault: None,
                watch: None,
            });
        if generation < tracked.generation() {
            return Ok(());
        }
        let old_watch = tracked
            .watch
            .take_if(|watch| watch.generation != generation || !watchable(state));
        if old_watch.is_some() {
            self.events.push(WatchEvent::Unwatched { key: key.clone() });
        }
        tracked.entry = instance;
        tracked.registered = true;

        if watchable(state) && generation > tracked.exited_generation {
            if tracked.watch.is_none() {
                let (watch, probe) = new_watch(&self.config, &key, &tracked.entry, generation);
                tracked.watch = Some(watch);
                self.events.push(WatchEvent::Watched {
                    key: key.clone(),
                    generation,
                    probe,
                });
            }
            let serving = tracked
                .watch
                .as_mut()
                .filter(|_| state == InstanceState::Serving);
            if let Some(watch) = serving {
                watch.serving_since.get_or_insert(now);
            }
        } else if tracked.watch.take().is_some() {
            self.events.push(WatchEvent::Unwatched { key: key.clone() });
        }

        let closed = if state == InstanceState::Isolated {
            self.incidents.close(&key)
        } else {
            None
        };
        if let Some(incident) = closed {
            info!(instance = %key, %incident, "incident closed, the instance was isolated");
        }
        Ok(())
    }

    /// Forgets an instance that the registry deleted.
    pub fn remove(&mut self, workload: &str, instance: &str) {
        let key = InstanceKey::new(workload, instance);
        let watched = self
            .instances
            .remove(&key)
            .is_some_and(|tracked| tracked.watch.is_some());
        if watched {
            self.events.push(WatchEvent::Unwatched { key: key.clone() });
        }
        self.exits.forget(&key);
        if let Some(incident) = self.incidents.close(&key) {
            info!(instance = %key, %incident, "incident closed, the instance was removed");
        }
    }

    /// Brings the tracker in line with a full registry listing: applies every entry and
    /// removes registered instances that are no longer listed. Returns the entries that
    /// were invalid.
    pub fn reconcile(&mut self, snapshot: Vec<Instance>, now: Moment) -> Vec<TrackerError> {
        let mut listed = std::collections::BTreeSet::new();
        let mut errors = Vec::new();
        for instance in snapshot {
            if let Some(reference) = &instance.r#ref {
                listed.insert(InstanceKey::new(&reference.workload, &reference.instance));
            }
            if let Err(error) = self.put(instance, now) {
                errors.push(error);
            }
        }
        let gone: Vec<InstanceKey> = self
            .instances
            .iter()
            .filter(|(key, tracked)| tracked.registered && !listed.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            self.remove(&key.workload, &key.instance);
        }
        errors
    }

    /// Records a pushed heartbeat. Returns false when the instance is not watched: unknown,
    /// isolated, stopped or exited.
    pub fn heartbeat(
        &mut self,
        workload: &str,
        instance: &str,
        sequence: u64,
        now: Moment,
    ) -> bool {
        let key = InstanceKey::new(workload, instance);
        match self.instances.get_mut(&key).and_then(|t| t.watch.as_mut()) {
            Some(watch) => {
                watch.heartbeat(sequence, now);
                true
            }
            None => false,
        }
    }

    /// Suspicion level of every watched instance at the last tick.
    pub fn suspicions(&self) -> impl Iterator<Item = (&InstanceKey, f64)> {
        self.instances
            .iter()
            .filter_map(|(key, tracked)| Some((key, tracked.watch.as_ref()?.suspicion)))
    }

    /// Number of watched generations.
    pub fn watched_count(&self) -> usize {
        self.instances
            .values()
            .filter(|t| t.watch.is_some())
            .count()
    }

    /// Lists the watched instances of `workload`, or of every workload when it is empty.
    pub fn watched(&self, workload: &str) -> Vec<WatchedInstance> {
        self.instances
            .iter()
            .filter(|(key, _)| workload.is_empty() || key.workload == workload)
            .filter_map(|(key, tracked)| {
                let watch = tracked.watch.as_ref()?;
                Some(WatchedInstance {
                    instance: Some(tracked.entry.clone()),
                    suspicion: watch.suspicion,
                    last_seen: watch.last_arrival.map(|at| Timestamp::from(at.wall)),
                    open_incident_id: self.incidents.open_id(key).unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    /// Other instances of the target's workload that serve without suspicion.
    fn healthy_replicas(&self, target: &InstanceKey) -> u32 {
        let count = self
            .instances
            .iter()
            .filter(|(key, tracked)| {
                key.workload == target.workload
                    && *key != target
                    && tracked.is_healthy(self.config.threshold)
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Desired replicas from the target's entry, or from any entry of its workload when the
    /// target's entry sets no replica count.
    fn desired_replicas(&self, target: &InstanceKey) -> u32 {
        let own = self.instances.get(target).map_or(0, |t| t.entry.replicas);
        if own > 0 {
            return own;
        }
        self.instances
            .iter()
            .filter(|(key, _)| key.workload == target.workload)
            .map(|(_, tracked)| tracked.entry.replicas)
            .max()
            .unwrap_or(0)
    }
}

fn watchable(state: InstanceState) -> bool {
    matches!(state, InstanceState::Starting | InstanceState::Serving)
}

/// Starts watching a generation: the expected arrival interval is the declared heartbeat
/// interval for instances that push heartbeats, otherwise the probe interval.
fn new_watch(
    config: &DetectorConfig,
    key: &InstanceKey,
    entry: &Instance,
    generation: u64,
) -> (Watch, Option<ProbeSpec>) {
    let probe = match entry.health_check.as_ref().map(|check| {
        ProbeSpec::from_check(check, config.default_interval, config.default_probe_timeout)
    }) {
        Some(Ok(probe)) => probe,
        Some(Err(error)) => {
            warn!(instance = %key, generation, %error, "health check cannot be probed");
            None
        }
        None => None,
    };
    let heartbeat_interval = entry
        .pushes_heartbeats
        .then(|| aro_proto::time::std_duration(entry.heartbeat_interval.as_ref(), Duration::ZERO))
        .filter(|interval| !interval.is_zero());
    let probe_interval = probe.as_ref().map(|probe| probe.interval);
    let expected = heartbeat_interval
        .or(probe_interval)
        .unwrap_or(config.default_interval);
    let mut watch = Watch::new(generation, config.phi, expected);
    watch.heartbeats_only = heartbeat_interval.is_some();
    watch.monitored = entry.pushes_heartbeats || probe.is_some();
    if !watch.monitored {
        warn!(instance = %key, generation, "instance neither pushes heartbeats nor has a usable health check, so hangs cannot be detected");
    }
    (watch, probe)
}

/// Returns the reference after checking that its names are valid subject tokens.
fn checked_reference<'a>(
    reference: Option<&'a InstanceRef>,
    what: &'static str,
) -> Result<&'a InstanceRef> {
    let reference = reference.ok_or(TrackerError::MissingReference { what })?;
    for (field, value) in [
        ("workload", &reference.workload),
        ("instance", &reference.instance),
    ] {
        aro_bus::subjects::validate_name(value).map_err(|message| TrackerError::InvalidName {
            what,
            field,
            message,
        })?;
    }
    Ok(reference)
}

#[cfg(test)]
mod tests;
