//! One log anomaly scorer per workload, so a template can be compared across the workload's
//! instances.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aro_logmine::{Anomaly, ConfigError, Scorer, ScorerConfig};

use super::InstanceKey;

/// The scorers of the workloads whose lines arrive.
#[derive(Debug)]
pub struct WorkloadScorers {
    config: ScorerConfig,
    scorers: HashMap<String, Scorer>,
}

impl WorkloadScorers {
    /// Creates an empty set of scorers that each use `config`.
    ///
    /// # Errors
    ///
    /// Returns the scorer's error when a field of `config` is out of range.
    pub fn new(config: ScorerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            scorers: HashMap::new(),
        })
    }

    /// Scores a line of `key` at `at`, measured from a fixed origin on a monotonic clock, and
    /// returns the anomaly it raises.
    pub fn observe(&mut self, key: &InstanceKey, line: &str, at: Duration) -> Option<Anomaly> {
        if !self.scorers.contains_key(&key.workload) {
            let scorer = Scorer::new(self.config.clone()).expect("the config was validated");
            self.scorers.insert(key.workload.clone(), scorer);
        }
        self.scorers
            .get_mut(&key.workload)
            .expect("the workload's scorer exists")
            .observe(&key.instance, line, at)
    }

    /// Drops the scorers of workloads not in `workloads` and returns how many were dropped.
    pub fn retain(&mut self, workloads: &BTreeSet<String>) -> usize {
        let before = self.scorers.len();
        self.scorers
            .retain(|workload, _| workloads.contains(workload));
        before - self.scorers.len()
    }

    pub fn len(&self) -> usize {
        self.scorers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scorers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorers() -> WorkloadScorers {
        WorkloadScorers::new(ScorerConfig::default()).expect("default config is valid")
    }

    #[test]
    fn each_workload_gets_its_scorer() {
        let mut scorers = scorers();
        scorers.observe(&InstanceKey::new("web", "web-1"), "served", Duration::ZERO);
        scorers.observe(&InstanceKey::new("web", "web-2"), "served", Duration::ZERO);
        scorers.observe(&InstanceKey::new("db", "db-1"), "served", Duration::ZERO);
        assert_eq!(scorers.len(), 2);
    }

    #[test]
    fn new_error_template_is_anomaly_per_workload() {
        let mut scorers = scorers();
        let line = "ERROR disk full on /var";
        let web = scorers.observe(&InstanceKey::new("web", "web-1"), line, Duration::ZERO);
        let db = scorers.observe(&InstanceKey::new("db", "db-1"), line, Duration::ZERO);
        assert!(web.is_some());
        assert!(db.is_some(), "the template is new to the db workload");
    }

    #[test]
    fn retain_drops_other_workloads() {
        let mut scorers = scorers();
        scorers.observe(&InstanceKey::new("web", "web-1"), "served", Duration::ZERO);
        scorers.observe(&InstanceKey::new("db", "db-1"), "served", Duration::ZERO);
        let watched = BTreeSet::from(["web".to_owned()]);
        assert_eq!(scorers.retain(&watched), 1);
        assert_eq!(scorers.len(), 1);
    }

    #[test]
    fn invalid_config_is_rejected() {
        let config = ScorerConfig {
            max_samples: 0,
            ..ScorerConfig::default()
        };
        assert!(WorkloadScorers::new(config).is_err());
    }
}
