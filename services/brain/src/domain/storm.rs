//! Storm detection: when many instances of one workload fail within a short window, acting on
//! each would multiply risk and load, and the cause is rarely in the instances themselves. The
//! faults from the threshold on become one storm incident that pages a person once, and later
//! faults join it until the workload has been quiet for a while.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Limits of storm detection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StormConfig {
    /// Faults of one workload within `window` that open a storm; 0 turns detection off.
    pub(crate) threshold: usize,
    pub(crate) window: Duration,
    /// Time without a fault after which a storm is over.
    pub(crate) quiet: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(10),
            quiet: Duration::from_secs(30),
        }
    }
}

/// Verdict of storm detection on one new fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No storm: handle the fault on its own.
    Normal,
    /// This fault opens the storm with this id.
    Opens { storm: String, faults: usize },
    /// The storm with this id is going on; the fault joins it.
    Joins { storm: String },
}

#[derive(Debug)]
struct Storm {
    id: String,
    last_fault: Instant,
}

/// Storm state per workload. Faults are identified by id, so a redelivered fault gets the
/// verdict it got the first time.
#[derive(Debug)]
pub(crate) struct StormDetector {
    config: StormConfig,
    recent: HashMap<String, VecDeque<Instant>>,
    storms: HashMap<String, Storm>,
    verdicts: HashMap<String, Verdict>,
    opened: u64,
}

impl StormDetector {
    pub(crate) fn new(config: StormConfig) -> Self {
        Self {
            config,
            recent: HashMap::new(),
            storms: HashMap::new(),
            verdicts: HashMap::new(),
            opened: 0,
        }
    }

    /// Judges a fault of `workload` that opens a new incident.
    pub(crate) fn observe(&mut self, now: Instant, workload: &str, fault_id: &str) -> Verdict {
        if let Some(verdict) = self.verdicts.get(fault_id) {
            return verdict.clone();
        }
        let verdict = self.judge(now, workload);
        // Bounded memory: verdicts are only needed while redeliveries can arrive.
        if self.verdicts.len() >= 10_000 {
            self.verdicts.clear();
        }
        self.verdicts.insert(fault_id.to_owned(), verdict.clone());
        verdict
    }

    fn judge(&mut self, now: Instant, workload: &str) -> Verdict {
        if self.config.threshold == 0 {
            return Verdict::Normal;
        }
        if let Some(storm) = self.storms.get_mut(workload) {
            if now.saturating_duration_since(storm.last_fault) < self.config.quiet {
                storm.last_fault = now;
                return Verdict::Joins {
                    storm: storm.id.clone(),
                };
            }
            self.storms.remove(workload);
        }
        let recent = self.recent.entry(workload.to_owned()).or_default();
        while recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) > self.config.window)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        if recent.len() < self.config.threshold {
            return Verdict::Normal;
        }
        let faults = recent.len();
        recent.clear();
        self.opened += 1;
        let id = format!("storm-{workload}-{}", self.opened);
        self.storms.insert(
            workload.to_owned(),
            Storm {
                id: id.clone(),
                last_fault: now,
            },
        );
        Verdict::Opens { storm: id, faults }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> StormDetector {
        StormDetector::new(StormConfig {
            threshold: 3,
            window: Duration::from_secs(10),
            quiet: Duration::from_secs(30),
        })
    }

    #[test]
    fn faults_below_threshold_are_normal() {
        let now = Instant::now();
        let mut storms = detector();
        assert_eq!(storms.observe(now, "web", "f1"), Verdict::Normal);
        assert_eq!(storms.observe(now, "web", "f2"), Verdict::Normal);
    }

    #[test]
    fn threshold_opens_a_storm_and_later_faults_join() {
        let now = Instant::now();
        let mut storms = detector();
        storms.observe(now, "web", "f1");
        storms.observe(now, "web", "f2");
        let opens = storms.observe(now, "web", "f3");
        assert_eq!(
            opens,
            Verdict::Opens {
                storm: "storm-web-1".to_owned(),
                faults: 3
            }
        );
        let later = now + Duration::from_secs(5);
        assert_eq!(
            storms.observe(later, "web", "f4"),
            Verdict::Joins {
                storm: "storm-web-1".to_owned()
            }
        );
    }

    #[test]
    fn storms_are_per_workload() {
        let now = Instant::now();
        let mut storms = detector();
        for fault in ["f1", "f2", "f3"] {
            storms.observe(now, "web", fault);
        }
        assert_eq!(storms.observe(now, "db", "g1"), Verdict::Normal);
    }

    #[test]
    fn storm_ends_after_quiet_period() {
        let now = Instant::now();
        let mut storms = detector();
        for fault in ["f1", "f2", "f3"] {
            storms.observe(now, "web", fault);
        }
        let after = now + Duration::from_secs(31);
        assert_eq!(storms.observe(after, "web", "f4"), Verdict::Normal);
    }

    #[test]
    fn faults_spread_beyond_the_window_are_normal() {
        let now = Instant::now();
        let mut storms = detector();
        for (n, fault) in ["f1", "f2", "f3", "f4"].into_iter().enumerate() {
            let at = now + Duration::from_secs(11 * n as u64);
            assert_eq!(storms.observe(at, "web", fault), Verdict::Normal, "{fault}");
        }
    }

    #[test]
    fn redelivered_fault_gets_its_first_verdict() {
        let now = Instant::now();
        let mut storms = detector();
        storms.observe(now, "web", "f1");
        storms.observe(now, "web", "f2");
        let first = storms.observe(now, "web", "f3");
        assert_eq!(
            storms.observe(now + Duration::from_secs(1), "web", "f3"),
            first
        );
    }

    #[test]
    fn zero_threshold_turns_detection_off() {
        let now = Instant::now();
        let mut storms = StormDetector::new(StormConfig {
            threshold: 0,
            ..StormConfig::default()
        });
        for n in 0..20 {
            assert_eq!(
                storms.observe(now, "web", &format!("f{n}")),
                Verdict::Normal
            );
        }
    }
}
