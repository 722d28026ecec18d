//! Labels and annotations the runtime reads and writes.

/// Label by which a workload's pods opt in; only pods with this label set to
/// [`OPT_IN_VALUE`] are watched and acted on.
pub const OPT_IN: &str = "aro.io/heal";
/// Value of [`OPT_IN`] that opts a pod in.
pub const OPT_IN_VALUE: &str = "enabled";
/// Optional pod label naming the workload; without it the workload is the name of the
/// Deployment that owns the pod's ReplicaSet.
pub const WORKLOAD: &str = "aro.io/workload";
/// Pod or Deployment annotation with the image digest every container must run, as
/// `sha256:<hex>`.
pub const EXPECTED_DIGEST: &str = "aro.io/expected-digest";

/// Label set to `true` on an isolated pod.
pub const QUARANTINED: &str = "aro.io/quarantined";
/// Annotation with the time (RFC 3339) after which the reaper deletes an isolated pod.
pub const QUARANTINE_EXPIRES_AT: &str = "aro.io/quarantine-expires-at";
/// Annotation with the workload of an isolated pod, because the pod has no owner once its
/// ReplicaSet released it.
pub const QUARANTINED_WORKLOAD: &str = "aro.io/quarantined-workload";
/// Annotation with the labels removed on isolation, as a JSON object, for inspection.
pub const QUARANTINED_LABELS: &str = "aro.io/quarantined-labels";

/// Label on every object the deployer creates, such as a partition's NetworkPolicy.
pub const MANAGED: &str = "io.aro.managed";
/// Label with the id of the fault injection that created an object.
pub const INJECTION: &str = "aro.io/injection";
/// Label with the id of the fault injection that partitions a pod; the injection's
/// NetworkPolicy selects the pods that carry it.
pub const PARTITIONED: &str = "aro.io/partitioned";

/// Deployment and ReplicaSet annotation with the rollout revision, set by the Deployment
/// controller.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Deployment annotation recording which revision a rollback restored.
pub const ROLLED_BACK_TO: &str = "aro.io/rolled-back-to-revision";
/// Label the Deployment controller adds to each ReplicaSet's pods and selector.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Label selector of the opted-in pods.
pub fn opt_in_selector() -> String {
    format!("{OPT_IN}={OPT_IN_VALUE}")
}

/// Label selector of the isolated pods.
pub fn quarantined_selector() -> String {
    format!("{QUARANTINED}=true")
}

/// Label selector of the partitioned pods.
pub fn partitioned_selector() -> String {
    PARTITIONED.to_owned()
}

/// Label selector of the objects that fault injections created.
pub fn injection_selector() -> String {
    format!("{MANAGED}=true,{INJECTION}")
}
