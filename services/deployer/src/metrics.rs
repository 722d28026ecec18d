//! Prometheus metrics of the deployer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use aro_proto::v1::ChaosKind;

use crate::domain::chaos::ChaosBook;
use crate::domain::fleet::{Fleet, State};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub workload: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    pub action: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChaosLabels {
    pub kind: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    pub workload: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the deployer exports, under the `aro_deployer_` prefix.
#[derive(Debug)]
pub struct Metrics {
    pub instances: Family<InstanceLabels, Gauge>,
    pub commands: Family<CommandLabels, Counter>,
    pub recovery_seconds: HistogramFamily<ActionLabels>,
    pub chaos_injections: Family<ChaosLabels, Counter>,
    pub chaos_active_injections: Family<KindLabels, Gauge>,
    pub log_lines: Family<WorkloadLabels, Counter>,
    pub log_lines_dropped: Family<WorkloadLabels, Counter>,
    pub log_lines_truncated: Family<WorkloadLabels, Counter>,
}

fn recovery_histogram() -> Histogram {
    // 10 ms to about 41 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            instances: Family::default(),
            commands: Family::default(),
            recovery_seconds: Family::new_with_constructor(recovery_histogram),
            chaos_injections: Family::default(),
            chaos_active_injections: Family::default(),
            log_lines: Family::default(),
            log_lines_dropped: Family::default(),
            log_lines_truncated: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("aro_deployer");
        registry.register(
            "instances",
            "Instances by workload and state",
            metrics.instances.clone(),
        );
        registry.register(
            "commands",
            "Recovery commands handled, by action and outcome status",
            metrics.commands.clone(),
        );
        registry.register(
            "recovery_duration_seconds",
            "Time from receiving a command to a verified recovery, by action",
            metrics.recovery_seconds.clone(),
        );
        registry.register(
            "chaos_injections",
            "Changes of fault injections, by kind and phase (injected, completed, expired, \
             cancelled, halted, reverted, target-recovered)",
            metrics.chaos_injections.clone(),
        );
        registry.register(
            "chaos_active_injections",
            "Fault injections in effect, by kind",
            metrics.chaos_active_injections.clone(),
        );
        registry.register(
            "log_lines",
            "Lines read from instances' standard output and error",
            metrics.log_lines.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines not published because the publishing queue was full or NATS failed",
            metrics.log_lines_dropped.clone(),
        );
        registry.register(
            "log_lines_truncated",
            "Log lines cut to the maximum line length",
            metrics.log_lines_truncated.clone(),
        );
        metrics
    }

    /// Sets the instance gauges from the fleet.
    pub fn observe_fleet(&self, fleet: &Fleet) {
        for spec in fleet.specs() {
            for state in State::ALL {
                let count = fleet.count(&spec.name, state);
                self.instances
                    .get_or_create(&InstanceLabels {
                        workload: spec.name.clone(),
                        state: state.as_str(),
                    })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
    }

    /// Sets the active-injection gauges from the chaos book, every kind included.
    pub fn observe_chaos(&self, book: &ChaosBook) {
        let counts = book.active_by_kind();
        for value in 1..=i32::MAX {
            let Ok(kind) = ChaosKind::try_from(value) else {
                break;
            };
            let count = counts.get(&kind).copied().unwrap_or(0);
            let name = kind.as_str_name();
            self.chaos_active_injections
                .get_or_create(&KindLabels {
                    kind: name
                        .strip_prefix("CHAOS_KIND_")
                        .unwrap_or(name)
                        .to_ascii_lowercase(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::domain::chaos::Injection;

    fn injection(id: &str, kind: ChaosKind) -> Injection {
        Injection::example(id, kind, &[("web-1", 0)])
    }

    #[test]
    fn active_injections_are_counted_by_kind() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let mut book = ChaosBook::default();
        book.insert(injection("inj-1", ChaosKind::Hang));
        book.insert(injection("inj-2", ChaosKind::Hang));
        book.insert(injection("inj-3", ChaosKind::Kill));
        metrics.observe_chaos(&book);

        let mut text = String::new();
        encode(&mut text, &registry).expect("encoding the metrics");
        assert!(
            text.contains("aro_deployer_chaos_active_injections{kind=\"hang\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("aro_deployer_chaos_active_injections{kind=\"kill\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("aro_deployer_chaos_active_injections{kind=\"partition\"} 0"),
            "{text}"
        );
    }
}
