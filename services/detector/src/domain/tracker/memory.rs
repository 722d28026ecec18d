//! Memory exhaustion: resident memory samples of serving instances against their limits.

use aro_proto::v1::{FaultEvent, FaultKind, InstanceState};

use super::Tracker;
use super::classify::Finding;
use crate::domain::{InstanceKey, MemorySource, Moment, evidence};

/// Outcome of a memory sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryVerdict {
    /// Resident memory as a share of the instance's limit; `None` when the instance declares
    /// no limit or the sample was ignored.
    pub fraction: Option<f64>,
    pub fault: Option<FaultEvent>,
}

impl Tracker {
    /// Records a resident memory sample of the watched `generation` of `key` and raises
    /// RESOURCE_EXHAUSTION when memory is over the configured share of the limit, or when its
    /// trend reaches the limit within the horizon. Only samples of a serving generation enter
    /// the trend, so the growth of a start-up does not count. Samples read from `/proc` are
    /// ignored once the generation's heartbeats report memory. An instance without a limit
    /// never raises a fault.
    pub fn memory_sample(
        &mut self,
        key: &InstanceKey,
        generation: u64,
        bytes: u64,
        source: MemorySource,
        now: Moment,
    ) -> MemoryVerdict {
        let settings = self.config.memory;
        let Some(tracked) = self.instances.get_mut(key) else {
            return MemoryVerdict::default();
        };
        let limit = tracked.entry.memory_limit_bytes;
        let serving = tracked.entry.state() == InstanceState::Serving;
        let Some(watch) = tracked
            .watch
            .as_mut()
            .filter(|watch| watch.generation == generation)
        else {
            return MemoryVerdict::default();
        };
        match source {
            MemorySource::Heartbeat => watch.memory_from_heartbeats = true,
            MemorySource::Process if watch.memory_from_heartbeats => {
                return MemoryVerdict::default();
            }
            MemorySource::Process => {}
        }
        if limit == 0 {
            return MemoryVerdict::default();
        }
        let fraction = Some(bytes as f64 / limit as f64);
        if !serving {
            return MemoryVerdict {
                fraction,
                fault: None,
            };
        }
        watch.memory.record(now.monotonic, bytes, settings.window);
        let Some(exhaustion) = watch.memory.assess(limit, &settings) else {
            return MemoryVerdict {
                fraction,
                fault: None,
            };
        };
        let samples = watch.memory.len();
        let finding = Finding {
            kind: FaultKind::ResourceExhaustion,
            generation,
            observed_at: now.wall,
            evidence: evidence::exhaustion(&exhaustion, &settings, source, samples, now.wall),
            recent_exits: 0,
            suspicion: 0.0,
        };
        MemoryVerdict {
            fraction,
            fault: self.raise_for_watched(key, finding, true, now),
        }
    }
}
