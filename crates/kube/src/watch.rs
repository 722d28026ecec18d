//! The pod watcher: follows the opted-in pods of a namespace and reports, for each change,
//! the pod's registry entry, the runtime signals its container statuses imply and image
//! digest mismatches.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aro_proto::v1::{Instance, InstanceState, Signal};
use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::debug;

use crate::digest::{self, DigestMismatch};
use crate::{labels, pods, status};

/// Watches the opted-in pods of `namespace`, restarting the watch with back-off after
/// errors is left to the caller (see [`kube::runtime::WatchStreamExt::default_backoff`]).
pub fn pod_events(
    client: Client,
    namespace: &str,
) -> impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + use<> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    watcher(
        api,
        watcher::Config::default().labels(&labels::opt_in_selector()),
    )
}

/// Effect of one pod change on the registry, the signals and the digest checks.
// A change moves once from the tracker to its handler, so boxing the larger variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum PodChange {
    /// The pod's registry entry, with the signals and new digest mismatches since its last
    /// observation.
    Observed {
        instance: Instance,
        signals: Vec<Signal>,
        mismatches: Vec<DigestMismatch>,
        /// Names of the containers in the running state, whose logs can be followed.
        running: Vec<String>,
    },
    /// The pod is gone.
    Removed { workload: String, instance: String },
}

/// Last observation of each opted-in pod of one namespace.
#[derive(Debug, Default)]
pub struct PodTracker {
    pods: BTreeMap<String, (String, Pod)>,
    /// Mismatches already reported, per pod, container and running digest.
    reported: HashSet<(String, String, String)>,
    /// Pods seen during a (re)listing, to find the ones deleted while the watch was down.
    listing: Option<BTreeSet<String>>,
}

impl PodTracker {
    /// Applies one watch event at `now` and returns what changed.
    pub fn apply(&mut self, event: watcher::Event<Pod>, now: Timestamp) -> Vec<PodChange> {
        match event {
            watcher::Event::Init => {
                self.listing = Some(BTreeSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(pod) => {
                if let Some(listing) = self.listing.as_mut() {
                    listing.insert(pod.name_any());
                }
                self.observe(pod, now)
            }
            watcher::Event::InitDone => {
                let seen = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|name| !seen.contains(*name))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .filter_map(|name| self.remove(&name))
                    .collect()
            }
            watcher::Event::Apply(pod) => self.observe(pod, now),
            watcher::Event::Delete(pod) => self.remove(&pod.name_any()).into_iter().collect(),
        }
    }

    fn observe(&mut self, pod: Pod, now: Timestamp) -> Vec<PodChange> {
        let name = pod.name_any();
        let Some(workload) = pods::workload(&pod) else {
            debug!(pod = %name, "opted-in pod without a workload skipped");
            return Vec::new();
        };
        let valid = aro_bus::subjects::validate_name(&workload)
            .and_then(|()| aro_bus::subjects::validate_name(&name));
        if let Err(reason) = valid {
            debug!(pod = %name, %workload, %reason, "opted-in pod with a name the subjects cannot carry skipped");
            return Vec::new();
        }
        let previous = self
            .pods
            .insert(name.clone(), (workload.clone(), pod.clone()));
        let previous = previous.map(|(_, pod)| pod);
        let signals = status::signals(previous.as_ref(), &pod, &workload, now);
        let mismatches = digest::mismatches(&pod)
            .into_iter()
            .filter(|mismatch| {
                self.reported.insert((
                    name.clone(),
                    mismatch.container.clone(),
                    mismatch.actual.clone(),
                ))
            })
            .collect();
        let replicas = self.replicas(&workload);
        vec![PodChange::Observed {
            instance: status::instance(&pod, &workload, replicas, now),
            signals,
            mismatches,
            running: status::running_containers(&pod),
        }]
    }

    fn remove(&mut self, name: &str) -> Option<PodChange> {
        let (workload, _) = self.pods.remove(name)?;
        self.reported.retain(|(pod, _, _)| pod != name);
        Some(PodChange::Removed {
            workload,
            instance: name.to_owned(),
        })
    }

    /// Pods of `workload` that count as its replicas: neither isolated nor stopped.
    ///
    /// NOTE: this is the number of pods observed, not the Deployment's `spec.replicas`, so
    /// while a replacement is being scheduled the registry shows one replica fewer.
    fn replicas(&self, workload: &str) -> u32 {
        let count = self
            .pods
            .values()
            .filter(|(owner, pod)| {
                owner == workload
                    && matches!(
                        status::instance_state(pod),
                        InstanceState::Serving | InstanceState::Starting
                    )
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}
