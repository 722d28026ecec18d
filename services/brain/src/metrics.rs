//! Prometheus metrics of the brain.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DecisionLabels {
    pub(crate) workload: String,
    pub(crate) action: String,
    pub(crate) source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GuardLabels {
    pub(crate) guard: String,
    pub(crate) verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub(crate) workload: String,
    pub(crate) status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkloadLabels {
    pub(crate) workload: String,
}

/// Metrics the brain updates.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub(crate) faults: Family<WorkloadLabels, Counter>,
    pub(crate) invalid_faults: Counter,
    /// Faults that joined a storm instead of getting an action of their own.
    pub(crate) storm_faults: Counter,
    pub(crate) decisions: Family<DecisionLabels, Counter>,
    pub(crate) guard_verdicts: Family<GuardLabels, Counter>,
    pub(crate) outcomes: Family<OutcomeLabels, Counter>,
    /// Seconds from the fault's detection to the command's publication.
    pub(crate) decide_seconds: Histogram,
    /// Seconds of one policy inference, the queue to the inference thread included.
    pub(crate) inference_seconds: Histogram,
    /// Seconds from the failure to the verified recovery.
    pub(crate) recover_seconds: Family<WorkloadLabels, Histogram>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            faults: Family::default(),
            invalid_faults: Counter::default(),
            storm_faults: Counter::default(),
            decisions: Family::default(),
            guard_verdicts: Family::default(),
            outcomes: Family::default(),
            decide_seconds: Histogram::new(exponential_buckets(1e-5, 2.0, 20)),
            inference_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 20)),
            recover_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 16))
            }),
        };
        let registry = registry.sub_registry_with_prefix("aro_brain");
        registry.register("faults", "Fault events consumed", metrics.faults.clone());
        registry.register(
            "invalid_faults",
            "Fault events rejected as invalid",
            metrics.invalid_faults.clone(),
        );
        registry.register(
            "decisions",
            "Decisions by action and source",
            metrics.decisions.clone(),
        );
        registry.register(
            "guard_verdicts",
            "Guard verdicts by guard and verdict",
            metrics.guard_verdicts.clone(),
        );
        registry.register(
            "outcomes",
            "Command outcomes consumed",
            metrics.outcomes.clone(),
        );
        registry.register(
            "decide_seconds",
            "Time from fault detection to command",
            metrics.decide_seconds.clone(),
        );
        registry.register(
            "inference_seconds",
            "Time of one policy inference",
            metrics.inference_seconds.clone(),
        );
        registry.register(
            "recover_seconds",
            "Time from failure to verified recovery",
            metrics.recover_seconds.clone(),
        );
        metrics
    }
}
