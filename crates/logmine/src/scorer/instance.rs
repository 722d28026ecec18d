//! The scorer's state of one instance.

use std::collections::VecDeque;
use std::time::Duration;

use crate::miner::TemplateId;

/// One recent line of an instance.
#[derive(Debug)]
struct Sample {
    template: TemplateId,
    line: String,
}

#[derive(Debug)]
pub(crate) struct Instance {
    /// Unique for the life of the scorer, so that state keyed by it never outlives the instance.
    pub(crate) serial: u64,
    pub(crate) first_seen: Duration,
    pub(crate) last_seen: Duration,
    pub(crate) last_anomaly: Option<Duration>,
    pub(crate) suppressed: u64,
    pub(crate) suppressed_templates: Vec<TemplateId>,
    recent: VecDeque<Sample>,
}

impl Instance {
    pub(crate) fn new(serial: u64, now: Duration) -> Self {
        Self {
            serial,
            first_seen: now,
            last_seen: now,
            last_anomaly: None,
            suppressed: 0,
            suppressed_templates: Vec::new(),
            recent: VecDeque::new(),
        }
    }

    /// Keeps `line`, cut to `max_bytes` at a character boundary, among the last `max_samples`
    /// lines, reusing the buffer of the oldest one.
    pub(crate) fn record_sample(
        &mut self,
        template: TemplateId,
        line: &str,
        max_samples: usize,
        max_bytes: usize,
    ) {
        let mut end = line.len().min(max_bytes);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let mut sample = if self.recent.len() >= max_samples {
            self.recent.pop_front().expect("max_samples is at least 1")
        } else {
            Sample {
                template,
                line: String::new(),
            }
        };
        sample.template = template;
        sample.line.clear();
        sample.line.push_str(&line[..end]);
        self.recent.push_back(sample);
    }

    /// Returns the recent lines of `template`, oldest first.
    pub(crate) fn samples_of(&self, template: TemplateId) -> Vec<String> {
        self.recent
            .iter()
            .filter(|sample| sample.template == template)
            .map(|sample| sample.line.clone())
            .collect()
    }

    pub(crate) fn in_cooldown(&self, now: Duration, cooldown: Duration) -> bool {
        self.last_anomaly
            .is_some_and(|last| now.saturating_sub(last) < cooldown)
    }

    /// Returns whether the instance sent a line within `idle` and is outside a cool-down.
    pub(crate) fn is_healthy(&self, now: Duration, idle: Duration, cooldown: Duration) -> bool {
        now.saturating_sub(self.last_seen) < idle && !self.in_cooldown(now, cooldown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_latest_lines_cut_to_size() {
        let mut instance = Instance::new(1, Duration::ZERO);
        for line in ["one", "two", "three", "xyzü"] {
            instance.record_sample(TemplateId(1), line, 3, 4);
        }
        instance.record_sample(TemplateId(2), "other", 3, 4);
        assert_eq!(instance.samples_of(TemplateId(1)), ["thre", "xyz"]);
        assert_eq!(instance.samples_of(TemplateId(2)), ["othe"]);
    }

    #[test]
    fn health_follows_silence_and_cooldown() {
        let idle = Duration::from_secs(60);
        let cooldown = Duration::from_secs(30);
        let mut instance = Instance::new(1, Duration::ZERO);
        assert!(instance.is_healthy(Duration::from_secs(59), idle, cooldown));
        assert!(!instance.is_healthy(Duration::from_secs(60), idle, cooldown));
        instance.last_anomaly = Some(Duration::from_secs(10));
        assert!(!instance.is_healthy(Duration::from_secs(20), idle, cooldown));
        assert!(instance.is_healthy(Duration::from_secs(40), idle, cooldown));
    }
}
