//! Recent faults of other instances: several replicas of a workload failing together point at a
//! release, a dependency or the load, and several workloads failing on one node point at the
//! node.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Faults seen within a sliding window, bounded in count.
#[derive(Debug)]
pub(crate) struct RecentFaults {
    window: Duration,
    capacity: usize,
    faults: VecDeque<Seen>,
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    workload: String,
    instance: String,
    node: String,
}

/// Faults of peers of one instance within the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PeerFaults {
    /// Faults of other instances of the same workload.
    pub(crate) workload: u32,
    /// Faults of instances of other workloads on the same node; 0 when the node is unknown.
    pub(crate) node: u32,
}

impl RecentFaults {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            faults: VecDeque::new(),
        }
    }

    /// Records a fault and returns the faults of its peers seen before it.
    pub(crate) fn record(
        &mut self,
        now: Instant,
        workload: &str,
        instance: &str,
        node: &str,
    ) -> PeerFaults {
        let peers = self.count(now, workload, instance, node);
        if self.faults.len() == self.capacity {
            self.faults.pop_front();
        }
        self.faults.push_back(Seen {
            at: now,
            workload: workload.to_owned(),
            instance: instance.to_owned(),
            node: node.to_owned(),
        });
        peers
    }

    /// Returns the faults of an instance's peers within the window, recording nothing.
    pub(crate) fn count(
        &mut self,
        now: Instant,
        workload: &str,
        instance: &str,
        node: &str,
    ) -> PeerFaults {
        while self
            .faults
            .front()
            .is_some_and(|seen| now.saturating_duration_since(seen.at) > self.window)
        {
            self.faults.pop_front();
        }
        let mut peers = PeerFaults::default();
        for seen in &self.faults {
            if seen.instance == instance {
                continue;
            }
            if seen.workload == workload {
                peers.workload += 1;
            } else if !node.is_empty() && seen.node == node {
                peers.node += 1;
            }
        }
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_failing_together_are_counted() {
        let now = Instant::now();
        let mut recent = RecentFaults::new(Duration::from_secs(60), 100);
        assert_eq!(
            recent.record(now, "web", "web-1", "n1"),
            PeerFaults::default()
        );
        let peers = recent.record(now, "web", "web-2", "n2");
        assert_eq!(peers.workload, 1);
        assert_eq!(peers.node, 0);
    }

    #[test]
    fn other_workloads_on_the_node_are_counted() {
        let now = Instant::now();
        let mut recent = RecentFaults::new(Duration::from_secs(60), 100);
        recent.record(now, "db", "db-1", "n1");
        recent.record(now, "cache", "cache-1", "n2");
        let peers = recent.record(now, "web", "web-1", "n1");
        assert_eq!(peers.node, 1);
        assert_eq!(peers.workload, 0);
    }

    #[test]
    fn same_instance_and_old_faults_do_not_count() {
        let now = Instant::now();
        let mut recent = RecentFaults::new(Duration::from_secs(60), 100);
        recent.record(now, "web", "web-2", "n1");
        recent.record(now + Duration::from_secs(61), "web", "web-1", "n1");
        let peers = recent.record(now + Duration::from_secs(62), "web", "web-1", "n1");
        assert_eq!(peers, PeerFaults::default());
    }

    #[test]
    fn capacity_bounds_memory() {
        let now = Instant::now();
        let mut recent = RecentFaults::new(Duration::from_secs(60), 3);
        for n in 0..10 {
            recent.record(now, "web", &format!("web-{n}"), "");
        }
        assert_eq!(recent.faults.len(), 3);
    }
}
