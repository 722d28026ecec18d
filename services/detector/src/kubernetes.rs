//! The pod watcher of the Kubernetes mode: opted-in pods become registry entries, their
//! container statuses runtime signals on the bus and their logs lines on `aro.logs.*`, so the
//! detector's existing senses watch them as they watch processes. An image digest that differs
//! from the expected one is raised as an artifact checksum mismatch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use aro_bus::{Bus, Registry, RegistryChange, async_nats, subjects};
use aro_kube::digest::DigestMismatch;
use aro_kube::k8s_openapi::jiff::Timestamp;
use aro_kube::kube;
use aro_kube::kube::runtime::WatchStreamExt;
use aro_kube::watch::{PodChange, PodTracker};
use aro_proto::v1::{Instance, Signal};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::domain::{ChecksumMismatch, ChecksumSubject, Digest, InstanceKey, Observed};
use crate::watcher::Watcher;

/// Flags of the Kubernetes mode.
#[derive(clap::Args, Clone, Debug)]
pub struct KubernetesArgs {
    /// Watch the pods labelled aro.io/heal=enabled on Kubernetes, in addition to the registry.
    #[arg(long = "kube-watch", env = "ARO_KUBE_WATCH")]
    pub enabled: bool,

    /// Namespaces whose opted-in pods are watched, separated by commas.
    #[arg(
        long = "kube-namespaces",
        env = "ARO_KUBE_NAMESPACES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub namespaces: Vec<String>,
}

/// Connects to the API server from the in-cluster service account or the kubeconfig.
///
/// # Errors
///
/// Returns an error when no configuration is found or the client cannot be built.
pub async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("no usable Kubernetes configuration found (in-cluster or kubeconfig)")
}

/// Destinations of what the pod watcher observes.
#[derive(Clone, Debug)]
pub(crate) struct Sinks {
    pub(crate) bus: Bus,
    pub(crate) registry: Registry,
    pub(crate) watcher: Arc<Watcher>,
    /// Connection for log lines, apart from the bus so that a flood of lines does not delay
    /// signals.
    pub(crate) logs: async_nats::Client,
}

/// Watches the opted-in pods of every namespace in `namespaces` until `shutdown`.
pub(crate) async fn run(
    client: kube::Client,
    namespaces: Vec<String>,
    sinks: Sinks,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    for namespace in namespaces
        .into_iter()
        .filter(|namespace| !namespace.is_empty())
    {
        let span = info_span!("pod_watch", %namespace);
        let watch = NamespaceWatch {
            client: client.clone(),
            namespace,
            sinks: sinks.clone(),
            followers: HashMap::new(),
            shutdown: shutdown.clone(),
        };
        tasks.spawn(watch.run().instrument(span));
    }
    tasks.close();
    tasks.wait().await;
}

/// A log follower of one container of one pod generation.
#[derive(Debug)]
struct Follower {
    generation: u64,
    cancel: CancellationToken,
    ended: Arc<AtomicBool>,
}

struct NamespaceWatch {
    client: kube::Client,
    namespace: String,
    sinks: Sinks,
    /// Log followers by pod and container.
    followers: HashMap<(String, String), Follower>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for NamespaceWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NamespaceWatch")
            .field("namespace", &self.namespace)
            .field("followers", &self.followers.len())
            .finish_non_exhaustive()
    }
}

impl NamespaceWatch {
    async fn run(mut self) {
        let events =
            aro_kube::watch::pod_events(self.client.clone(), &self.namespace).default_backoff();
        let mut events = std::pin::pin!(events);
        let mut tracker = PodTracker::default();
        info!(namespace = %self.namespace, "watching opted-in pods");
        loop {
            let event = tokio::select! {
                () = self.shutdown.cancelled() => break,
                event = events.next() => event,
            };
            match event {
                Some(Ok(event)) => {
                    for change in tracker.apply(event, Timestamp::now()) {
                        self.apply(change).await;
                    }
                }
                Some(Err(error)) => {
                    warn!(namespace = %self.namespace, %error, "pod watch failed, retrying with back-off")
                }
                None => break,
            }
        }
        for follower in self.followers.values() {
            follower.cancel.cancel();
        }
    }

    async fn apply(&mut self, change: PodChange) {
        match change {
            PodChange::Observed {
                instance,
                signals,
                mismatches,
                running,
            } => {
                let Some(reference) = instance.r#ref.clone() else {
                    return;
                };
                if let Err(error) = self.sinks.registry.put(&instance).await {
                    warn!(instance = %reference.instance, %error, "writing the pod's registry entry failed");
                }
                for signal in &signals {
                    self.publish_signal(signal).await;
                }
                if !mismatches.is_empty() {
                    raise_mismatches(&self.sinks.watcher, &instance, &mismatches);
                }
                self.follow_logs(
                    &reference.workload,
                    &reference.instance,
                    reference.generation,
                    &running,
                );
            }
            PodChange::Removed { workload, instance } => {
                self.followers.retain(|(pod, _), follower| {
                    let keep = *pod != instance;
                    if !keep {
                        follower.cancel.cancel();
                    }
                    keep
                });
                if let Err(error) = self.sinks.registry.delete(&workload, &instance).await {
                    warn!(%instance, %error, "removing the pod's registry entry failed");
                }
            }
        }
    }

    async fn publish_signal(&self, signal: &Signal) {
        let Some(reference) = &signal.instance else {
            return;
        };
        let subject = subjects::signal(&reference.workload, &reference.instance);
        if let Err(error) = self.sinks.bus.publish(subject, &signal.id, signal).await {
            warn!(signal = %signal.id, %error, "publishing a pod signal failed");
        }
    }

    /// Starts a log follower for each running container that has none for this generation,
    /// or whose follower ended.
    fn follow_logs(&mut self, workload: &str, pod: &str, generation: u64, running: &[String]) {
        for container in running {
            let key = (pod.to_owned(), container.clone());
            let current = self.followers.get(&key).is_some_and(|follower| {
                follower.generation == generation && !follower.ended.load(Ordering::Relaxed)
            });
            if current {
                continue;
            }
            if let Some(old) = self.followers.remove(&key) {
                old.cancel.cancel();
            }
            let follower = Follower {
                generation,
                cancel: self.shutdown.child_token(),
                ended: Arc::new(AtomicBool::new(false)),
            };
            let span = info_span!("pod_logs", %pod, %container, generation);
            tokio::spawn(
                follow(
                    self.client.clone(),
                    self.namespace.clone(),
                    LogTarget {
                        subject: format!("aro.logs.{workload}.{pod}"),
                        pod: pod.to_owned(),
                        container: container.clone(),
                    },
                    self.sinks.logs.clone(),
                    follower.cancel.clone(),
                    Arc::clone(&follower.ended),
                )
                .instrument(span),
            );
            self.followers.insert(key, follower);
        }
    }
}

/// Raises each image digest mismatch of `instance` as an artifact checksum mismatch. The entry
/// is applied to the watcher first, because the registry watch may not have delivered it yet.
fn raise_mismatches(watcher: &Arc<Watcher>, instance: &Instance, mismatches: &[DigestMismatch]) {
    let Some(reference) = &instance.r#ref else {
        return;
    };
    watcher.apply_registry(RegistryChange::Put(instance.clone()));
    let key = InstanceKey::new(&reference.workload, &reference.instance);
    for mismatch in mismatches {
        let (Ok(expected), Ok(actual)) = (
            Digest::parse(&mismatch.expected),
            Digest::parse(&mismatch.actual),
        ) else {
            warn!(instance = %key, container = %mismatch.container, "image digest not in sha256 form, not compared");
            continue;
        };
        info!(instance = %key, container = %mismatch.container, %expected, %actual, "pod runs another image than expected");
        let mismatch = ChecksumMismatch {
            subject: ChecksumSubject::Artifact {
                path: format!("{} (container {})", mismatch.image, mismatch.container),
                interpreter: None,
            },
            expected,
            actual: Observed::Digest(actual),
        };
        watcher.checksum_mismatch(&key, reference.generation, &mismatch);
    }
}

#[derive(Debug)]
struct LogTarget {
    subject: String,
    pod: String,
    container: String,
}

/// Publishes each log line of the container until it stops, the stream fails or `cancel`.
///
/// NOTE: a follower starts at the current end of the log, so lines written between two
/// followers of the same container (after a stream failure) are not read.
async fn follow(
    client: kube::Client,
    namespace: String,
    target: LogTarget,
    logs: async_nats::Client,
    cancel: CancellationToken,
    ended: Arc<AtomicBool>,
) {
    let opened = aro_kube::logs::follow(client, &namespace, &target.pod, &target.container).await;
    let lines = match opened {
        Ok(lines) => lines,
        Err(error) => {
            warn!(%error, "following a container log failed");
            ended.store(true, Ordering::Relaxed);
            return;
        }
    };
    let mut lines = std::pin::pin!(lines);
    loop {
        let line = tokio::select! {
            () = cancel.cancelled() => break,
            line = lines.next() => line,
        };
        match line {
            Some(Ok(line)) => {
                if let Err(error) = logs.publish(target.subject.clone(), line.into()).await {
                    debug!(%error, "publishing a log line failed");
                }
            }
            Some(Err(error)) => {
                warn!(%error, "reading a container log failed");
                break;
            }
            None => break,
        }
    }
    ended.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use aro_proto::v1::{FaultKind, InstanceRef, InstanceState};
    use tokio::sync::mpsc;

    use super::*;
    use crate::domain::{DetectorConfig, Tracker};
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn image_mismatch_raises_a_checksum_fault() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (sender, mut faults) = mpsc::unbounded_channel();
        let watcher = Watcher::new(
            Tracker::new(DetectorConfig::default()),
            metrics,
            sender,
            None,
            CancellationToken::new(),
        );
        let instance = Instance {
            r#ref: Some(InstanceRef {
                workload: "web".to_owned(),
                instance: "web-5d8f7c9b4-p1".to_owned(),
                generation: 1,
                node: "node-a".to_owned(),
            }),
            state: InstanceState::Serving.into(),
            replicas: 2,
            ..Instance::default()
        };
        let mismatch = DigestMismatch {
            container: "app".to_owned(),
            image: "registry.local/web:v3".to_owned(),
            expected: format!("sha256:{}", "a".repeat(64)),
            actual: format!("sha256:{}", "b".repeat(64)),
        };

        raise_mismatches(&watcher, &instance, &[mismatch]);

        let fault = faults.try_recv().expect("a fault is raised");
        assert_eq!(fault.kind(), FaultKind::ChecksumMismatch);
        assert_eq!(
            fault.target.map(|target| target.instance),
            Some("web-5d8f7c9b4-p1".to_owned())
        );
        let evidence = fault.evidence.first().expect("the fault carries evidence");
        assert!(
            evidence
                .summary
                .contains("registry.local/web:v3 (container app)"),
            "{}",
            evidence.summary
        );
    }
}
