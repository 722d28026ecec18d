use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::InstanceKey;

/// Unexpected exits per instance id within the crash-loop window. Exit times are the ones
/// the runtime reported, so every replica that receives the same signals counts the same way.
///
/// NOTE: the history lives in memory. After a restart, and across replicas that share the
/// signal consumer (each receives only some of the signals), an exit that follows an earlier
/// one within the window is classified as CRASH rather than CRASH_LOOP.
#[derive(Debug)]
pub(crate) struct ExitHistory {
    window: Duration,
    exits: HashMap<InstanceKey, VecDeque<SystemTime>>,
}

impl ExitHistory {
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            exits: HashMap::new(),
        }
    }

    /// Records an unexpected exit at `at` and returns how many exits of the instance lie
    /// within the window before it, this one included.
    pub(crate) fn record(&mut self, key: &InstanceKey, at: SystemTime) -> u32 {
        let window = self.window;
        let exits = self.exits.entry(key.clone()).or_default();
        // An exit older than the window before this one can never count again, because exit
        // times only grow.
        exits.retain(|earlier| {
            at.duration_since(*earlier)
                .map_or(true, |age| age <= window)
        });
        exits.push_back(at);
        u32::try_from(exits.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn forget(&mut self, key: &InstanceKey) {
        self.exits.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_within_window_are_counted() {
        let mut history = ExitHistory::new(Duration::from_secs(60));
        let key = InstanceKey::new("web", "web-1");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(history.record(&key, start), 1);
        assert_eq!(history.record(&key, start + Duration::from_secs(30)), 2);
        assert_eq!(history.record(&key, start + Duration::from_secs(60)), 3);
    }

    #[test]
    fn exits_outside_window_are_dropped() {
        let mut history = ExitHistory::new(Duration::from_secs(60));
        let key = InstanceKey::new("web", "web-1");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        history.record(&key, start);
        assert_eq!(history.record(&key, start + Duration::from_secs(61)), 1);
    }

    #[test]
    fn instances_are_counted_apart() {
        let mut history = ExitHistory::new(Duration::from_secs(60));
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        history.record(&InstanceKey::new("web", "web-1"), start);
        assert_eq!(history.record(&InstanceKey::new("web", "web-2"), start), 1);
    }
}
