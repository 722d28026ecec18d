use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::InstanceKey;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FaultLabels {
    pub(crate) workload: String,
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InstanceLabels {
    pub(crate) workload: String,
    pub(crate) instance: String,
}

impl From<&InstanceKey> for InstanceLabels {
    fn from(key: &InstanceKey) -> Self {
        Self {
            workload: key.workload.clone(),
            instance: key.instance.clone(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkloadLabels {
    pub(crate) workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VerdictLabels {
    pub(crate) verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FieldLabels {
    pub(crate) field: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ChecksumLabels {
    /// `artifact`, `declared_file` or `data_set`.
    pub(crate) check: &'static str,
    /// `match`, `mismatch`, `undecided` (data sets without a strict majority) or `error`.
    pub(crate) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProbeLabels {
    pub(crate) probe: &'static str,
    /// `passed`, `failed` (the instance answered with a failure) or `unanswered`.
    pub(crate) result: &'static str,
}

/// Buckets of the time-to-detect histogram in seconds: crashes land in the milliseconds,
/// hangs around a second.
const DETECT_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0,
];

/// The detector's Prometheus metrics, all named `aro_detector_*`.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) faults: Family<FaultLabels, Counter>,
    pub(crate) time_to_detect: Family<KindLabels, Histogram>,
    pub(crate) suspicion: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    pub(crate) watched: Gauge,
    pub(crate) heartbeats: Family<WorkloadLabels, Counter>,
    pub(crate) unknown_heartbeats: Counter,
    pub(crate) probes: Family<ProbeLabels, Counter>,
    pub(crate) signals: Family<VerdictLabels, Counter>,
    pub(crate) invalid_heartbeats: Family<FieldLabels, Counter>,
    pub(crate) log_lines_read: Counter,
    pub(crate) log_lines_dropped: Counter,
    pub(crate) log_client_drops: Counter,
    pub(crate) log_lines_ignored: Family<ReasonLabels, Counter>,
    pub(crate) log_lines_truncated: Counter,
    pub(crate) log_lines_invalid_utf8: Counter,
    pub(crate) hashed_bytes: Counter,
    pub(crate) checksum_checks: Family<ChecksumLabels, Counter>,
    pub(crate) memory_fraction: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            faults: Family::default(),
            time_to_detect: Family::new_with_constructor(|| Histogram::new(DETECT_BUCKETS)),
            suspicion: Family::default(),
            watched: Gauge::default(),
            heartbeats: Family::default(),
            unknown_heartbeats: Counter::default(),
            probes: Family::default(),
            signals: Family::default(),
            invalid_heartbeats: Family::default(),
            log_lines_read: Counter::default(),
            log_lines_dropped: Counter::default(),
            log_client_drops: Counter::default(),
            log_lines_ignored: Family::default(),
            log_lines_truncated: Counter::default(),
            log_lines_invalid_utf8: Counter::default(),
            hashed_bytes: Counter::default(),
            checksum_checks: Family::default(),
            memory_fraction: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("aro_detector");
        registry.register(
            "faults",
            "Faults published, by workload and kind",
            metrics.faults.clone(),
        );
        registry.register_with_unit(
            "time_to_detect",
            "Time from the observed failure (exit, last heartbeat or passed probe, first failed probe) to its classification",
            Unit::Seconds,
            metrics.time_to_detect.clone(),
        );
        registry.register(
            "suspicion",
            "Phi suspicion level of each watched instance",
            metrics.suspicion.clone(),
        );
        registry.register(
            "watched_instances",
            "Instance generations being watched",
            metrics.watched.clone(),
        );
        registry.register(
            "heartbeats",
            "Heartbeats received from watched instances, by workload",
            metrics.heartbeats.clone(),
        );
        registry.register(
            "unknown_heartbeats",
            "Heartbeats received for instances that are not watched (unknown, isolated or stopped)",
            metrics.unknown_heartbeats.clone(),
        );
        registry.register(
            "probes",
            "Probes run, by probe kind and result",
            metrics.probes.clone(),
        );
        registry.register(
            "signals",
            "Runtime signals handled, by verdict",
            metrics.signals.clone(),
        );
        metrics.register_senses(registry);
        metrics
    }

    /// Registers the metrics of the log, checksum and memory senses.
    fn register_senses(&self, registry: &mut Registry) {
        registry.register(
            "invalid_heartbeats",
            "Heartbeats rejected as invalid, by the first invalid field",
            self.invalid_heartbeats.clone(),
        );
        registry.register(
            "log_lines_read",
            "Log lines received on aro.logs.>",
            self.log_lines_read.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the queue to the anomaly scorer was full",
            self.log_lines_dropped.clone(),
        );
        registry.register(
            "log_client_drops",
            "Times the NATS client dropped one or more log lines because the subscription buffer was full",
            self.log_client_drops.clone(),
        );
        registry.register(
            "log_lines_ignored",
            "Log lines not scored, by reason (unknown, isolated or stopped instance, invalid subject)",
            self.log_lines_ignored.clone(),
        );
        registry.register(
            "log_lines_truncated",
            "Log lines cut to the maximum line length",
            self.log_lines_truncated.clone(),
        );
        registry.register(
            "log_lines_invalid_utf8",
            "Log lines that were not valid UTF-8 and were scored with replacement characters",
            self.log_lines_invalid_utf8.clone(),
        );
        registry.register_with_unit(
            "hashed",
            "Bytes read to compute checksums of artifacts and declared files",
            Unit::Bytes,
            self.hashed_bytes.clone(),
        );
        registry.register(
            "checksum_checks",
            "Checksum comparisons, by check and result",
            self.checksum_checks.clone(),
        );
        registry.register(
            "memory_fraction",
            "Resident memory of each watched instance as a share of its memory limit",
            self.memory_fraction.clone(),
        );
    }
}
