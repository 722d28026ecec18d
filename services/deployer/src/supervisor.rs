//! The supervisor runs the fleet on a runtime: it starts every replica, records each instance
//! in the registry, turns runtime events into signals, executes recovery commands and fault
//! injections, and stops everything on shutdown.

mod chaos;
mod commands;
mod events;
mod verify;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aro_bus::{Bus, InstanceNumbers, Registry};
use aro_proto::v1::WorkloadStatus;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::backend::{InstanceKey, Launch, Launched, Program, Runtime};
use crate::checksum_file::ChecksumFile;
use crate::convert;
use crate::domain::fleet::{Fleet, FleetError, InstanceRecord};
use crate::domain::workload::{HealthProbe, HealthSpec, WorkloadSpec};
use crate::executable::DigestCache;
use crate::metrics::Metrics;
use crate::registry_writer::{PendingWrite, RegistryWriter, Stores};

pub use crate::chaos::{Change, ChaosError, ChaosState, InjectRequest, Injected};
pub use verify::Verification;

/// Settings of the supervisor.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Node name recorded in instance references.
    pub node: String,
    /// The detector's gRPC address, given to instances.
    pub detector_addr: String,
    /// Time an instance has to exit after SIGTERM before it gets SIGKILL.
    pub stop_grace: Duration,
    /// How long an isolated instance is kept before it is killed and removed.
    pub isolation_retention: Duration,
    /// How long an OBSERVE command waits before it probes the target.
    pub observe_period: Duration,
    /// Directory instances run in: the workload file's, so that relative paths in arguments
    /// and environment mean what the relative checksum files mean.
    pub working_dir: PathBuf,
}

/// The resolved executable or image of a workload and the digests it had at start-up.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub program: Program,
    /// sha256 of the executable, or the image id, at start-up, `sha256:<hex>`.
    pub digest: String,
    /// Each declared checksum file as it was at start-up, in the workload file's order.
    pub files: Vec<ChecksumFile>,
}

/// Errors of starting a fresh instance.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no free loopback port for a new instance: {0}")]
    Port(#[source] std::io::Error),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Runtime(#[from] crate::backend::Error),
}

/// A freshly started instance, before verification.
#[derive(Debug)]
pub struct Spawned {
    pub key: InstanceKey,
    pub launched: Launched,
    pub probe: HealthProbe,
    pub start_timeout: Duration,
}

/// Lock a command holds while it acts on one instance.
type InstanceLock = Arc<tokio::sync::Mutex<()>>;

/// Runs the fleet on runtime `R`.
#[derive(Debug)]
pub struct Supervisor<R> {
    runtime: R,
    bus: Bus,
    registry: Registry,
    writer: RegistryWriter,
    /// Store of the numbers of fresh instance ids, which outlives the instances.
    instance_numbers: InstanceNumbers,
    fleet: Mutex<Fleet>,
    chaos: ChaosState,
    artifacts: HashMap<String, Artifact>,
    /// Digests of checksum files, hashed again only when they change.
    digests: DigestCache,
    /// One lock per instance, held while a command acts on it.
    command_locks: Mutex<HashMap<(String, String), InstanceLock>>,
    /// Address of each instance's current generation, once it started.
    addresses: Mutex<HashMap<(String, String), IpAddr>>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Verification, retention and hang-resume tasks.
    tasks: TaskTracker,
    /// Cancelled when the deployer stops; ends retention and resume timers.
    stopping: CancellationToken,
}

impl<R: Runtime> Supervisor<R> {
    /// Creates a supervisor for `fleet`, whose workloads' executables are `artifacts`.
    pub fn new(
        runtime: R,
        bus: Bus,
        stores: Stores,
        fleet: Fleet,
        artifacts: HashMap<String, Artifact>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.observe_fleet(&fleet);
        let stopping = CancellationToken::new();
        let chaos = ChaosState::new(
            bus.clone(),
            Arc::clone(&metrics),
            settings.node.clone(),
            stopping.clone(),
        );
        Self {
            runtime,
            bus,
            registry: stores.registry.clone(),
            instance_numbers: stores.instance_numbers.clone(),
            writer: RegistryWriter::spawn(stores),
            fleet: Mutex::new(fleet),
            chaos,
            artifacts,
            digests: DigestCache::default(),
            command_locks: Mutex::default(),
            addresses: Mutex::default(),
            settings,
            metrics,
            tasks: TaskTracker::new(),
            stopping,
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        self.fleet.lock().expect("fleet lock poisoned")
    }

    /// Queues the registry entry of `record`. Call it while holding the fleet lock, so
    /// registry writes keep the order of the fleet's changes.
    fn queue_put(&self, fleet: &Fleet, record: &InstanceRecord) -> PendingWrite {
        let spec = fleet
            .spec(&record.workload)
            .expect("every record belongs to a declared workload");
        self.metrics.observe_fleet(fleet);
        let host = self.address(&record.workload, &record.id).to_string();
        self.writer.put(convert::registry_entry(
            record,
            spec,
            self.declared_files(&record.workload),
            &self.settings.node,
            &self.settings.detector_addr,
            &host,
        ))
    }

    /// Address of an instance: where its current generation runs, or loopback before it
    /// started.
    pub(crate) fn address(&self, workload: &str, instance: &str) -> IpAddr {
        self.addresses
            .lock()
            .expect("address map poisoned")
            .get(&(workload.to_owned(), instance.to_owned()))
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Health probe of the current generation of an instance, at its address.
    fn probe_for(&self, record: &InstanceRecord, spec: &WorkloadSpec) -> HealthProbe {
        let host = self.address(&record.workload, &record.id).to_string();
        let values = convert::placeholders(record, &self.settings.detector_addr, &host);
        spec.health.render(&values)
    }

    fn declared_files(&self, workload: &str) -> &[ChecksumFile] {
        self.artifacts
            .get(workload)
            .map_or(&[], |artifact| artifact.files.as_slice())
    }

    /// Removes registry entries left by an earlier run of the deployer, whose processes are
    /// gone, and makes fresh ids continue after every id used before: those of the leftovers
    /// and the stored next numbers. Returns how many entries were removed.
    ///
    /// # Errors
    ///
    /// Returns the bucket error when the entries or the numbers cannot be read.
    pub async fn remove_leftovers(&self) -> aro_bus::Result<usize> {
        let workloads: Vec<String> = self.fleet().specs().map(|spec| spec.name.clone()).collect();
        for workload in workloads {
            if let Some(next) = self.instance_numbers.next(&workload).await? {
                self.fleet().reserve_number(&workload, next);
            }
        }
        let leftovers = self.registry.list().await?;
        let mut writes = Vec::with_capacity(leftovers.len());
        {
            let mut fleet = self.fleet();
            for entry in &leftovers {
                let Some(reference) = &entry.r#ref else {
                    continue;
                };
                fleet.reserve_id(&reference.workload, &reference.instance);
                writes.push(self.writer.delete(&reference.workload, &reference.instance));
            }
        }
        for write in writes {
            write.stored().await;
        }
        Ok(leftovers.len())
    }

    /// Starts every replica of every workload and verifies each in the background.
    pub async fn start_fleet(self: &Arc<Self>) {
        let slots: Vec<(String, u32)> = {
            let fleet = self.fleet();
            fleet
                .specs()
                .flat_map(|spec| {
                    fleet
                        .vacant_slots(&spec.name)
                        .into_iter()
                        .map(|slot| (spec.name.clone(), slot))
                })
                .collect()
        };
        let starts = slots.into_iter().map(|(workload, slot)| async move {
            match self.spawn_fresh(&workload, slot).await {
                Ok(spawned) => {
                    let supervisor = Arc::clone(self);
                    let span = info_span!(
                        "deployer.verify",
                        instance = %spawned.key.instance,
                        generation = spawned.key.generation,
                    );
                    self.tasks.spawn(
                        async move { supervisor.verify_start(spawned).await }.instrument(span),
                    );
                }
                Err(error) => error!(%workload, slot, %error, "starting an instance failed"),
            }
        });
        join_all(starts).await;
    }

    /// Verifies an instance started with the fleet; it becomes serving when it passes.
    async fn verify_start(&self, spawned: Spawned) {
        let key = spawned.key.clone();
        match self.verify(spawned).await {
            Verification::Passed { .. } => {
                info!(instance = %key.instance, generation = key.generation, "instance serving");
            }
            other => warn!(
                instance = %key.instance,
                generation = key.generation,
                result = %other,
                "instance did not pass its first health check"
            ),
        }
    }

    /// Adds a fresh instance in `slot` and starts it.
    ///
    /// # Errors
    ///
    /// Fails when no port is free, the slot is taken, or the runtime cannot start it; a
    /// start failure leaves the instance recorded as stopped.
    pub async fn spawn_fresh(&self, workload: &str, slot: u32) -> Result<Spawned, SpawnError> {
        let port = free_port().map_err(SpawnError::Port)?;
        let (record, launch, health, start_timeout) = {
            let mut fleet = self.fleet();
            let record = fleet.add(workload, slot, port, SystemTime::now())?;
            if let Some(next) = fleet.next_number(workload) {
                // Ordered before the instance's own registry entry, so nothing waits on it.
                drop(self.writer.next_number(workload, next));
            }
            let spec = fleet.spec(workload).expect("the workload was just found");
            let launch = self.launch_for(&record, spec);
            (record, launch, spec.health.clone(), spec.start_timeout)
        };
        info!(instance = %record.id, slot, port, "starting instance");
        let launched = self.start_launch(launch).await?;
        Ok(self.spawned(&record, &health, start_timeout, launched))
    }

    /// Describes a started generation of `record`, with its health probe rendered at its
    /// address.
    fn spawned(
        &self,
        record: &InstanceRecord,
        health: &HealthSpec,
        start_timeout: Duration,
        launched: Launched,
    ) -> Spawned {
        let host = launched.address.to_string();
        let probe = health.render(&convert::placeholders(
            record,
            &self.settings.detector_addr,
            &host,
        ));
        Spawned {
            key: InstanceKey {
                workload: record.workload.clone(),
                instance: record.id.clone(),
                generation: record.generation,
            },
            launched,
            probe,
            start_timeout,
        }
    }

    /// Builds the launch description of the current generation of `record`.
    fn launch_for(&self, record: &InstanceRecord, spec: &WorkloadSpec) -> Launch {
        // Arguments and environment cannot use {host}: the workload file rejects it there.
        let values = convert::placeholders(record, &self.settings.detector_addr, "");
        let artifact = self
            .artifacts
            .get(&record.workload)
            .expect("every workload's executable was resolved at start-up");
        Launch {
            key: InstanceKey {
                workload: record.workload.clone(),
                instance: record.id.clone(),
                generation: record.generation,
            },
            program: artifact.program.clone(),
            args: spec.render_args(&values),
            env: spec.render_env(&values),
            working_dir: self.settings.working_dir.clone(),
            memory_limit: spec.memory_limit,
        }
    }

    /// Starts `launch` and records its process in the fleet and the registry.
    async fn start_launch(&self, launch: Launch) -> Result<Launched, crate::backend::Error> {
        let key = launch.key.clone();
        let started = self.runtime.start(launch).await;
        self.after_start(&key, started).await
    }

    /// Records the result of starting `key`: its process, or the stopped state when the
    /// start failed.
    async fn after_start(
        &self,
        key: &InstanceKey,
        started: Result<Launched, crate::backend::Error>,
    ) -> Result<Launched, crate::backend::Error> {
        match started {
            Ok(launched) => {
                self.record_launch(key, &launched).await;
                Ok(launched)
            }
            Err(error) => {
                let write = {
                    let mut fleet = self.fleet();
                    fleet
                        .mark_exited(
                            &key.workload,
                            &key.instance,
                            key.generation,
                            SystemTime::now(),
                        )
                        .map(|record| self.queue_put(&fleet, &record))
                };
                if let Some(write) = write {
                    write.stored().await;
                }
                Err(error)
            }
        }
    }

    async fn record_launch(&self, key: &InstanceKey, launched: &Launched) {
        self.addresses.lock().expect("address map poisoned").insert(
            (key.workload.clone(), key.instance.clone()),
            launched.address,
        );
        let write = {
            let mut fleet = self.fleet();
            fleet
                .record_spawn(
                    &key.workload,
                    &key.instance,
                    key.generation,
                    launched.pid,
                    &launched.artifact_digest,
                    SystemTime::now(),
                )
                .map(|record| self.queue_put(&fleet, &record))
        };
        if let Some(write) = write {
            write.stored().await;
        }
    }

    /// Returns the lock a command holds while it acts on an instance.
    fn instance_lock(&self, workload: &str, instance: &str) -> InstanceLock {
        let mut locks = self
            .command_locks
            .lock()
            .expect("command lock map poisoned");
        Arc::clone(
            locks
                .entry((workload.to_owned(), instance.to_owned()))
                .or_default(),
        )
    }

    /// Drops the command lock of an instance that is gone or never existed.
    fn forget_instance_lock(&self, workload: &str, instance: &str) {
        self.command_locks
            .lock()
            .expect("command lock map poisoned")
            .remove(&(workload.to_owned(), instance.to_owned()));
    }

    /// Kills an isolated instance and removes it once its retention ends.
    fn schedule_removal(self: &Arc<Self>, key: InstanceKey) {
        let supervisor = Arc::clone(self);
        let retention = self.settings.isolation_retention;
        let span = info_span!("deployer.retention", instance = %key.instance);
        let removal = async move {
            tokio::select! {
                () = tokio::time::sleep(retention) => {}
                // Shutdown stops and removes every instance itself.
                () = supervisor.stopping.cancelled() => return,
            }
            info!(instance = %key.instance, ?retention, "isolation retention ended, removing instance");
            if let Err(error) = supervisor.runtime.stop(&key, Duration::ZERO).await {
                error!(instance = %key.instance, %error, "killing an isolated instance failed");
            }
            supervisor.remove(&key.workload, &key.instance).await;
        };
        self.tasks.spawn(removal.instrument(span));
    }

    async fn remove(&self, workload: &str, instance: &str) {
        let write = {
            let mut fleet = self.fleet();
            fleet.remove(workload, instance);
            self.metrics.observe_fleet(&fleet);
            self.writer.delete(workload, instance)
        };
        self.forget_instance_lock(workload, instance);
        self.addresses
            .lock()
            .expect("address map poisoned")
            .remove(&(workload.to_owned(), instance.to_owned()));
        write.stored().await;
    }

    /// Ends every active fault injection, then stops every instance (SIGTERM, then SIGKILL
    /// after the stop grace) and waits for each. Exit signals are
    /// published by [`run_events`], which the caller drains afterwards.
    ///
    /// [`run_events`]: Supervisor::run_events
    pub async fn stop_all(&self) {
        self.stopping.cancel();
        self.end_injections_at_stop().await;
        let running = self.runtime.running();
        info!(instances = running.len(), grace = ?self.settings.stop_grace, "stopping instances");
        let stops = running.iter().map(|key| async move {
            if let Err(error) = self.runtime.stop(key, self.settings.stop_grace).await {
                error!(instance = %key.instance, %error, "stopping an instance failed");
            }
        });
        join_all(stops).await;
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Removes every instance from the registry, after [`Supervisor::stop_all`].
    pub async fn remove_all(&self) {
        let instances: Vec<(String, String)> = self
            .fleet()
            .instances()
            .map(|record| (record.workload.clone(), record.id.clone()))
            .collect();
        for (workload, instance) in instances {
            self.remove(&workload, &instance).await;
        }
    }

    /// Declared workloads and their instances' registry entries.
    pub fn list_workloads(&self) -> Vec<WorkloadStatus> {
        let fleet = self.fleet();
        fleet
            .specs()
            .map(|spec| WorkloadStatus {
                name: spec.name.clone(),
                replicas: spec.replicas,
                instances: fleet
                    .instances_of(&spec.name)
                    .map(|record| {
                        let host = self.address(&record.workload, &record.id).to_string();
                        convert::registry_entry(
                            record,
                            spec,
                            self.declared_files(&record.workload),
                            &self.settings.node,
                            &self.settings.detector_addr,
                            &host,
                        )
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Returns a loopback port that is free now. Another process may take it before the instance
/// binds it, and the instance then fails its health check and is recovered like any other.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
