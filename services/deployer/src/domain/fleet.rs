//! The deployer's record of its instances: which instance fills which replica slot, the
//! allocation of instance ids, and each instance's generation and state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::ids;
use super::workload::WorkloadSpec;

/// Lifecycle state of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Spawned (or about to be), health check not passed yet.
    Starting,
    /// Passed its health check.
    Serving,
    /// Quarantined: out of its slot, kept until its retention ends.
    Isolated,
    /// Its process exited.
    Stopped,
}

impl State {
    /// Every state, for metrics that report each one.
    pub const ALL: [State; 4] = [
        State::Starting,
        State::Serving,
        State::Isolated,
        State::Stopped,
    ];

    /// Lowercase name, as used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Serving => "serving",
            State::Isolated => "isolated",
            State::Stopped => "stopped",
        }
    }
}

/// One instance and its current generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    pub workload: String,
    pub id: String,
    /// Replica slot the instance fills (or filled, once isolated).
    pub slot: u32,
    /// 1 for a fresh instance, one more per restart in place.
    pub generation: u64,
    pub state: State,
    /// Loopback port allocated for the instance; it keeps it across restarts.
    pub port: u16,
    /// Process id of the current generation, once spawned.
    pub pid: Option<u32>,
    /// sha256 of the executable of the current generation, `sha256:<hex>`.
    pub artifact_digest: String,
    /// When the current generation was started.
    pub started_at: SystemTime,
    pub updated_at: SystemTime,
}

/// Reasons a change to the fleet is not possible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("unknown workload {0:?}")]
    UnknownWorkload(String),
    #[error("unknown instance {instance:?} of workload {workload:?}")]
    UnknownInstance { workload: String, instance: String },
    #[error("slot {slot} of workload {workload:?} does not exist")]
    NoSuchSlot { workload: String, slot: u32 },
    #[error("slot {slot} of workload {workload:?} is taken by {instance}")]
    SlotTaken {
        workload: String,
        slot: u32,
        instance: String,
    },
    #[error("instance {0} is isolated")]
    Isolated(String),
}

/// Result of fleet changes.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;

#[derive(Debug)]
struct Workload {
    spec: Arc<WorkloadSpec>,
    /// Number of the next fresh instance id.
    next_number: u64,
    /// Instance id filling each slot; `None` while a slot waits for a replacement.
    slots: Vec<Option<String>>,
    instances: BTreeMap<String, InstanceRecord>,
}

impl Workload {
    /// Frees `slot` when `instance` fills it.
    fn vacate(&mut self, slot: u32, instance: &str) {
        if let Some(occupant) = self.slots.get_mut(slot as usize)
            && occupant.as_deref() == Some(instance)
        {
            *occupant = None;
        }
    }
}

/// Every workload of the deployer and its instances.
#[derive(Debug, Default)]
pub struct Fleet {
    workloads: BTreeMap<String, Workload>,
}

impl Fleet {
    /// Creates a fleet with no instances yet.
    pub fn new(specs: impl IntoIterator<Item = WorkloadSpec>) -> Self {
        let workloads = specs
            .into_iter()
            .map(|spec| {
                let slots = vec![None; spec.replicas as usize];
                let workload = Workload {
                    spec: Arc::new(spec),
                    next_number: 1,
                    slots,
                    instances: BTreeMap::new(),
                };
                (workload.spec.name.clone(), workload)
            })
            .collect();
        Self { workloads }
    }

    /// Returns the workload's spec.
    pub fn spec(&self, workload: &str) -> Option<&Arc<WorkloadSpec>> {
        self.workloads.get(workload).map(|w| &w.spec)
    }

    /// Returns every workload's spec, in name order.
    pub fn specs(&self) -> impl Iterator<Item = &Arc<WorkloadSpec>> {
        self.workloads.values().map(|w| &w.spec)
    }

    /// Makes fresh ids of `workload` start after `instance`, an id used before (by an earlier
    /// run of the deployer), so that a late command for the old instance cannot hit a new one.
    pub fn reserve_id(&mut self, workload: &str, instance: &str) {
        if let Some(n) = ids::instance_number(workload, instance) {
            self.reserve_number(workload, n.saturating_add(1));
        }
    }

    /// Makes fresh ids of `workload` take numbers from `next` on, unless they already do.
    pub fn reserve_number(&mut self, workload: &str, next: u64) {
        if let Some(entry) = self.workloads.get_mut(workload) {
            entry.next_number = entry.next_number.max(next);
        }
    }

    /// Returns the number the next fresh instance id of `workload` takes.
    pub fn next_number(&self, workload: &str) -> Option<u64> {
        self.workloads.get(workload).map(|entry| entry.next_number)
    }

    /// Slots of `workload` that no instance fills.
    pub fn vacant_slots(&self, workload: &str) -> Vec<u32> {
        self.workloads.get(workload).map_or_else(Vec::new, |w| {
            (0u32..)
                .zip(&w.slots)
                .filter(|(_, occupant)| occupant.is_none())
                .map(|(slot, _)| slot)
                .collect()
        })
    }

    /// Adds a fresh instance in a vacant slot: the next id, generation 1, starting.
    ///
    /// # Errors
    ///
    /// Fails for an unknown workload, a slot out of range or a slot already taken.
    pub fn add(
        &mut self,
        workload: &str,
        slot: u32,
        port: u16,
        now: SystemTime,
    ) -> Result<InstanceRecord> {
        let entry = self
            .workloads
            .get_mut(workload)
            .ok_or_else(|| FleetError::UnknownWorkload(workload.to_owned()))?;
        let occupant =
            entry
                .slots
                .get_mut(slot as usize)
                .ok_or_else(|| FleetError::NoSuchSlot {
                    workload: workload.to_owned(),
                    slot,
                })?;
        if let Some(instance) = occupant {
            return Err(FleetError::SlotTaken {
                workload: workload.to_owned(),
                slot,
                instance: instance.clone(),
            });
        }
        let id = ids::instance_id(workload, entry.next_number);
        entry.next_number += 1;
        *occupant = Some(id.clone());
        let record = InstanceRecord {
            workload: workload.to_owned(),
            id: id.clone(),
            slot,
            generation: 1,
            state: State::Starting,
            port,
            pid: None,
            artifact_digest: String::new(),
            started_at: now,
            updated_at: now,
        };
        entry.instances.insert(id, record.clone());
        Ok(record)
    }

    /// One instance.
    pub fn get(&self, workload: &str, instance: &str) -> Option<&InstanceRecord> {
        self.workloads.get(workload)?.instances.get(instance)
    }

    fn get_mut(&mut self, workload: &str, instance: &str) -> Option<&mut InstanceRecord> {
        self.workloads
            .get_mut(workload)?
            .instances
            .get_mut(instance)
    }

    /// Records the process of `generation`. Returns the updated record, or `None` when the
    /// instance is gone or already at another generation. The state is left alone, so an
    /// exit that was recorded first is not undone.
    pub fn record_spawn(
        &mut self,
        workload: &str,
        instance: &str,
        generation: u64,
        pid: u32,
        artifact_digest: &str,
        now: SystemTime,
    ) -> Option<InstanceRecord> {
        let record = self.get_mut(workload, instance)?;
        if record.generation != generation {
            return None;
        }
        record.pid = Some(pid);
        artifact_digest.clone_into(&mut record.artifact_digest);
        record.updated_at = now;
        Some(record.clone())
    }

    /// Marks `generation` serving when it is still starting. Returns the updated record, or
    /// `None` when nothing changed.
    pub fn mark_serving(
        &mut self,
        workload: &str,
        instance: &str,
        generation: u64,
        now: SystemTime,
    ) -> Option<InstanceRecord> {
        let record = self.get_mut(workload, instance)?;
        if record.generation != generation || record.state != State::Starting {
            return None;
        }
        record.state = State::Serving;
        record.updated_at = now;
        Some(record.clone())
    }

    /// Marks `generation` stopped after its process exited. Returns the updated record, or
    /// `None` when the exit changes nothing: the instance moved on to a later generation, is
    /// isolated (it keeps that state until removed), or is gone.
    pub fn mark_exited(
        &mut self,
        workload: &str,
        instance: &str,
        generation: u64,
        now: SystemTime,
    ) -> Option<InstanceRecord> {
        let record = self.get_mut(workload, instance)?;
        if record.generation != generation
            || matches!(record.state, State::Isolated | State::Stopped)
        {
            return None;
        }
        record.state = State::Stopped;
        record.updated_at = now;
        Some(record.clone())
    }

    /// Starts the next generation of an instance in place: generation + 1, starting, no
    /// process yet. Returns the updated record.
    ///
    /// # Errors
    ///
    /// Fails when the instance is unknown or isolated.
    pub fn begin_restart(
        &mut self,
        workload: &str,
        instance: &str,
        now: SystemTime,
    ) -> Result<InstanceRecord> {
        let record = self
            .get_mut(workload, instance)
            .ok_or_else(|| unknown(workload, instance))?;
        if record.state == State::Isolated {
            return Err(FleetError::Isolated(instance.to_owned()));
        }
        record.generation += 1;
        record.state = State::Starting;
        record.pid = None;
        record.started_at = now;
        record.updated_at = now;
        Ok(record.clone())
    }

    /// Isolates an instance and frees its slot for a replacement. Returns the updated record.
    ///
    /// # Errors
    ///
    /// Fails when the instance is unknown or already isolated.
    pub fn isolate(
        &mut self,
        workload: &str,
        instance: &str,
        now: SystemTime,
    ) -> Result<InstanceRecord> {
        let entry = self
            .workloads
            .get_mut(workload)
            .ok_or_else(|| unknown(workload, instance))?;
        let record = entry
            .instances
            .get_mut(instance)
            .ok_or_else(|| unknown(workload, instance))?;
        if record.state == State::Isolated {
            return Err(FleetError::Isolated(instance.to_owned()));
        }
        record.state = State::Isolated;
        record.updated_at = now;
        let record = record.clone();
        entry.vacate(record.slot, instance);
        Ok(record)
    }

    /// Removes an instance, freeing its slot if it still fills one.
    pub fn remove(&mut self, workload: &str, instance: &str) -> Option<InstanceRecord> {
        let entry = self.workloads.get_mut(workload)?;
        let record = entry.instances.remove(instance)?;
        entry.vacate(record.slot, instance);
        Some(record)
    }

    /// Returns every instance, by workload and id.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.workloads.values().flat_map(|w| w.instances.values())
    }

    /// Instances of one workload.
    pub fn instances_of(&self, workload: &str) -> impl Iterator<Item = &InstanceRecord> {
        self.workloads
            .get(workload)
            .into_iter()
            .flat_map(|w| w.instances.values())
    }

    /// Number of instances of `workload` in `state`.
    pub fn count(&self, workload: &str, state: State) -> usize {
        self.instances_of(workload)
            .filter(|record| record.state == state)
            .count()
    }
}

fn unknown(workload: &str, instance: &str) -> FleetError {
    FleetError::UnknownInstance {
        workload: workload.to_owned(),
        instance: instance.to_owned(),
    }
}

#[cfg(test)]
mod tests;
