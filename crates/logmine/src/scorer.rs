//! Anomaly scoring of the log lines of one workload's instances.
//!
//! One [`Scorer`] serves one workload: its instances share a template miner, so that a template
//! can be compared across instances. Time is passed in with each line and never read from a
//! clock.

mod anomaly;
mod config;
mod instance;
mod lexicon;
mod rate;

use std::collections::HashMap;
use std::time::Duration;

pub use anomaly::{Anomaly, AnomalyReason, AnomalyTemplate};
pub use config::ScorerConfig;
pub use lexicon::DEFAULT_ERROR_STEMS;

use crate::config::ConfigError;
use crate::hash::BuildFastHasher;
use crate::miner::{Miner, TemplateId};
use instance::Instance;
use rate::{ExpRate, coverage};

/// The verdict on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The template the line was assigned to.
    pub template_id: TemplateId,
    /// Whether the line started its template.
    pub is_new_template: bool,
    /// Whether the template's text is error-like.
    pub error_like: bool,
    /// The anomaly the line raised, unless it raised none or its instance is in a cool-down.
    pub anomaly: Option<Anomaly>,
}

/// Counters of a scorer since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScorerStats {
    /// Lines observed.
    pub lines: u64,
    /// Anomalies returned.
    pub anomalies: u64,
    /// Anomalies suppressed by a cool-down.
    pub suppressed: u64,
    /// Lines whose time was earlier than an earlier line's, scored at that earlier time.
    pub late_lines: u64,
    /// Instances dropped to stay within `max_instances`.
    pub instances_dropped: u64,
    /// Lines whose (instance, template) rate could not be tracked because `max_rates` was full.
    pub untracked_rates: u64,
}

/// The scorer's state of one template.
#[derive(Debug)]
struct TemplateState {
    error_like: bool,
    first_seen: Duration,
    /// The first instance (by serial) that sent the template and its line count there, while no
    /// other instance has sent it.
    only_on: Option<(u64, u64)>,
    solo_reported: bool,
}

/// The recent and baseline rates of one template on one instance.
#[derive(Debug)]
struct Rates {
    recent: ExpRate,
    baseline: ExpRate,
}

/// Scores the lines of one workload's instances for anomalies: new error-like templates, bursts
/// of a template against its own baseline, and templates that appear on one instance only while
/// the others stay healthy. Each instance raises at most one anomaly per cool-down.
#[derive(Debug)]
pub struct Scorer {
    config: ScorerConfig,
    miner: Miner,
    started: Option<Duration>,
    latest: Duration,
    instances: HashMap<Box<str>, Instance, BuildFastHasher>,
    next_serial: u64,
    templates: HashMap<TemplateId, TemplateState, BuildFastHasher>,
    rates: HashMap<(u64, TemplateId), Rates, BuildFastHasher>,
    stats: ScorerStats,
}

impl Scorer {
    /// Creates a scorer that has seen no line.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] when a field of `config` is out of range.
    pub fn new(config: ScorerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            miner: Miner::new(config.miner.clone())?,
            config,
            started: None,
            latest: Duration::ZERO,
            instances: HashMap::default(),
            next_serial: 0,
            templates: HashMap::default(),
            rates: HashMap::default(),
            stats: ScorerStats::default(),
        })
    }

    pub fn config(&self) -> &ScorerConfig {
        &self.config
    }

    pub fn stats(&self) -> ScorerStats {
        self.stats
    }

    /// Returns the template miner shared by the workload's instances.
    pub fn miner(&self) -> &Miner {
        &self.miner
    }

    /// Scores `line` of `instance` at time `now` (measured from any fixed origin) and returns the
    /// anomaly it raises, if any.
    pub fn observe(&mut self, instance: &str, line: &str, now: Duration) -> Option<Anomaly> {
        self.observe_line(instance, line, now).anomaly
    }

    /// Scores `line` like [`Scorer::observe`] and returns the whole verdict.
    ///
    /// A line earlier than an earlier line is scored at the time of that earlier line, so rates
    /// never run backwards.
    pub fn observe_line(&mut self, instance: &str, line: &str, now: Duration) -> Observation {
        self.stats.lines += 1;
        if now < self.latest {
            self.stats.late_lines += 1;
        }
        let now = now.max(self.latest);
        self.latest = now;
        let started = *self.started.get_or_insert(now);

        let found = self.miner.add(line);
        let template_id = found.template_id;
        let is_new_template = found.is_new;
        let retext = found.is_new || found.template_changed;
        let error_like = retext && lexicon::is_error_like(found.template, &self.config.error_stems);
        if let Some(evicted) = found.evicted {
            self.templates.remove(&evicted);
        }

        let (serial, first_seen) = {
            let instance = self.instance_mut(instance, now);
            instance.last_seen = now;
            (instance.serial, instance.first_seen)
        };
        let state = self.templates.entry(template_id).or_insert(TemplateState {
            error_like,
            first_seen: now,
            only_on: Some((serial, 0)),
            solo_reported: false,
        });
        if retext {
            state.error_like = error_like;
        }
        let error_like = state.error_like;
        state.only_on = match state.only_on {
            Some((only, count)) if only == serial => Some((only, count + 1)),
            _ => None,
        };

        let reason = if is_new_template && error_like {
            Some(AnomalyReason::ErrorTemplate)
        } else {
            self.burst(serial, template_id, first_seen, now)
                .or_else(|| self.solo(serial, template_id, started, now))
        };
        let anomaly = self.record(instance, line, template_id, reason, now);
        Observation {
            template_id,
            is_new_template,
            error_like,
            anomaly,
        }
    }

    /// Updates the rates of `template` on the instance and returns the burst they make, if any.
    fn burst(
        &mut self,
        serial: u64,
        template: TemplateId,
        first_seen: Duration,
        now: Duration,
    ) -> Option<AnomalyReason> {
        let (recent_window, baseline_window) =
            (self.config.burst_window, self.config.baseline_window);
        if !self.rates.contains_key(&(serial, template)) && !self.make_rate_room(now) {
            self.stats.untracked_rates += 1;
            return None;
        }
        let rates = self.rates.entry((serial, template)).or_insert(Rates {
            recent: ExpRate::new(now),
            baseline: ExpRate::new(now),
        });
        rates.recent.record(now, recent_window);
        rates.baseline.record(now, baseline_window);
        let observed = now.saturating_sub(first_seen);
        if observed < self.config.warmup {
            return None;
        }
        let recent = rates.recent.at(now, recent_window);
        if recent * recent_window.as_secs_f64() < self.config.burst_min_lines {
            return None;
        }
        let rate = recent / coverage(observed, recent_window);
        let baseline = (rates.baseline.at(now, baseline_window)
            / coverage(observed, baseline_window))
        .max(self.config.min_baseline_rate);
        (rate >= self.config.burst_factor * baseline)
            .then_some(AnomalyReason::Burst { rate, baseline })
    }

    /// Makes room for one more rate, dropping rates idle for `instance_idle` when full.
    fn make_rate_room(&mut self, now: Duration) -> bool {
        if self.rates.len() < self.config.max_rates {
            return true;
        }
        let idle = self.config.instance_idle;
        self.rates
            .retain(|_, rates| now.saturating_sub(rates.recent.updated()) < idle);
        self.rates.len() < self.config.max_rates
    }

    /// Returns the anomaly that `template` makes, if it is seen only on the instance and the
    /// other instances are healthy.
    fn solo(
        &mut self,
        serial: u64,
        template: TemplateId,
        started: Duration,
        now: Duration,
    ) -> Option<AnomalyReason> {
        let state = self.templates.get(&template)?;
        let (_, count) = state.only_on?;
        let established = state.first_seen.saturating_sub(started) >= self.config.warmup;
        if state.solo_reported || !established || count < self.config.solo_min_lines {
            return None;
        }
        let first_seen = state.first_seen;
        let healthy_peers = self
            .instances
            .values()
            .filter(|peer| {
                peer.serial != serial
                    && peer.first_seen <= first_seen
                    && peer.is_healthy(now, self.config.instance_idle, self.config.cooldown)
            })
            .count();
        if healthy_peers < self.config.solo_min_peers {
            return None;
        }
        if let Some(state) = self.templates.get_mut(&template) {
            state.solo_reported = true;
        }
        Some(AnomalyReason::SoloTemplate { healthy_peers })
    }

    /// Keeps the line as a sample and turns `reason` into an anomaly unless the instance is in a
    /// cool-down.
    fn record(
        &mut self,
        instance: &str,
        line: &str,
        template: TemplateId,
        reason: Option<AnomalyReason>,
        now: Duration,
    ) -> Option<Anomaly> {
        let (max_samples, max_bytes) = (self.config.max_samples, self.config.max_sample_bytes);
        let cooldown = self.config.cooldown;
        let state = self.instance_mut(instance, now);
        state.record_sample(template, line, max_samples, max_bytes);

        let reason = reason?;
        if state.in_cooldown(now, cooldown) {
            state.suppressed += 1;
            if state.suppressed_templates.len() + 1 < max_samples
                && !state.suppressed_templates.contains(&template)
            {
                state.suppressed_templates.push(template);
            }
            self.stats.suppressed += 1;
            return None;
        }

        state.last_anomaly = Some(now);
        let suppressed = std::mem::take(&mut state.suppressed);
        let earlier = std::mem::take(&mut state.suppressed_templates);
        let samples = state.samples_of(template);
        let templates = std::iter::once(template)
            .chain(earlier.into_iter().filter(|&id| id != template))
            .map(|id| self.describe(id))
            .collect();
        self.stats.anomalies += 1;
        Some(Anomaly {
            instance: instance.to_owned(),
            at: now,
            reason,
            templates,
            samples,
            suppressed,
        })
    }

    fn describe(&self, id: TemplateId) -> AnomalyTemplate {
        let template = self.miner.template(id);
        AnomalyTemplate {
            id,
            text: template
                .map(|template| template.text.to_owned())
                .unwrap_or_default(),
            count: template.map_or(0, |template| template.count),
        }
    }

    /// Finds or creates the state of `name`, replacing the instance silent for longest when
    /// `max_instances` is reached.
    fn instance_mut(&mut self, name: &str, now: Duration) -> &mut Instance {
        if !self.instances.contains_key(name) {
            if self.instances.len() >= self.config.max_instances {
                let oldest = self
                    .instances
                    .iter()
                    .min_by_key(|(_, instance)| instance.last_seen)
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    self.instances.remove(&oldest);
                    self.stats.instances_dropped += 1;
                }
            }
            let serial = self.next_serial;
            self.next_serial += 1;
            self.instances
                .insert(name.into(), Instance::new(serial, now));
        }
        self.instances
            .get_mut(name)
            .expect("the instance was just found or inserted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> Scorer {
        Scorer::new(ScorerConfig::default()).expect("default config is valid")
    }

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    /// Sends one ordinary line a second from each instance for `seconds`, from `start`.
    fn steady(scorer: &mut Scorer, instances: &[&str], start: u64, seconds: u64) -> usize {
        let mut anomalies = 0;
        for second in start..start + seconds {
            for instance in instances {
                let line = format!("served request {second} in 12 ms");
                anomalies += usize::from(
                    scorer
                        .observe(instance, &line, secs(second as f64))
                        .is_some(),
                );
            }
        }
        anomalies
    }

    #[test]
    fn error_storm_raises_one_anomaly() {
        let mut scorer = scorer();
        assert_eq!(steady(&mut scorer, &["web-1"], 0, 120), 0);
        let mut anomalies = Vec::new();
        for index in 0..10_000u32 {
            let line = format!(
                "ERROR connection refused by db-{} after {index} attempts",
                index % 3
            );
            let at = secs(120.0 + f64::from(index) / 1_000.0);
            anomalies.extend(scorer.observe("web-1", &line, at));
        }
        assert_eq!(anomalies.len(), 1);
        let anomaly = &anomalies[0];
        assert_eq!(anomaly.reason, AnomalyReason::ErrorTemplate);
        assert_eq!(anomaly.instance, "web-1");
        assert_eq!(
            anomaly.templates[0].text,
            "ERROR connection refused by db-<*> after <*> attempts"
        );
        assert_eq!(anomaly.samples.len(), 1);
        assert_eq!(scorer.stats().anomalies, 1);
        assert!(
            scorer.stats().suppressed > 0,
            "the storm's burst falls in the cool-down"
        );
    }

    #[test]
    fn cooldown_end_allows_next_anomaly_with_suppressed_count() {
        let mut scorer = scorer();
        let first = scorer.observe("web-1", "fatal: disk error on sda", secs(0.0));
        assert!(first.is_some());
        assert!(
            scorer
                .observe("web-1", "panic in worker pool", secs(10.0))
                .is_none()
        );
        let later = scorer
            .observe("web-1", "request aborted by upstream", secs(61.0))
            .expect("the cool-down is over");
        assert_eq!(later.suppressed, 1);
        let texts: Vec<&str> = later
            .templates
            .iter()
            .map(|template| template.text.as_str())
            .collect();
        assert_eq!(
            texts,
            ["request aborted by upstream", "panic in worker pool"]
        );
    }

    #[test]
    fn cooldown_is_per_instance() {
        let mut scorer = scorer();
        assert!(
            scorer
                .observe("web-1", "fatal: disk error on sda", secs(0.0))
                .is_some()
        );
        assert!(
            scorer
                .observe("web-2", "kernel panic on boot", secs(1.0))
                .is_some()
        );
    }

    #[test]
    fn ordinary_new_template_is_not_anomalous() {
        let mut scorer = scorer();
        let observation = scorer.observe_line("web-1", "cache warmed with 300 entries", secs(0.0));
        assert!(observation.is_new_template);
        assert!(!observation.error_like);
        assert!(observation.anomaly.is_none());
    }

    #[test]
    fn burst_against_baseline_is_anomalous() {
        let mut scorer = scorer();
        assert_eq!(steady(&mut scorer, &["web-1"], 0, 900), 0);
        let mut anomalies = Vec::new();
        for index in 0..500u32 {
            let line = format!("served request {index} in 12 ms");
            anomalies.extend(scorer.observe("web-1", &line, secs(900.0 + f64::from(index) / 50.0)));
        }
        assert_eq!(anomalies.len(), 1);
        let AnomalyReason::Burst { rate, baseline } = anomalies[0].reason else {
            panic!("expected a burst, got {:?}", anomalies[0].reason);
        };
        assert!(
            rate >= 8.0 * baseline,
            "rate {rate} against baseline {baseline}"
        );
        assert_eq!(anomalies[0].samples.len(), 5);
    }

    #[test]
    fn steady_rate_is_not_a_burst() {
        let mut scorer = scorer();
        for index in 0..20_000u32 {
            let line = format!("served request {index} in 12 ms");
            assert!(
                scorer
                    .observe("web-1", &line, secs(f64::from(index) / 20.0))
                    .is_none()
            );
        }
    }

    #[test]
    fn burst_needs_warmup() {
        let mut scorer = scorer();
        for index in 0..500u32 {
            let line = format!("served request {index} in 12 ms");
            assert!(
                scorer
                    .observe("web-1", &line, secs(f64::from(index) / 100.0))
                    .is_none()
            );
        }
    }

    #[test]
    fn template_on_one_instance_is_anomalous() {
        let mut scorer = scorer();
        let instances = ["web-1", "web-2", "web-3"];
        assert_eq!(steady(&mut scorer, &instances, 0, 120), 0);
        let mut anomalies = Vec::new();
        for index in 0..20u32 {
            let at = secs(120.0 + f64::from(index));
            anomalies.extend(scorer.observe(
                "web-2",
                &format!("shard {index} moved to standby"),
                at,
            ));
            for instance in ["web-1", "web-3"] {
                anomalies.extend(scorer.observe(instance, "served request 1 in 12 ms", at));
            }
        }
        assert_eq!(anomalies.len(), 1);
        assert_eq!(anomalies[0].instance, "web-2");
        assert_eq!(
            anomalies[0].reason,
            AnomalyReason::SoloTemplate { healthy_peers: 2 }
        );
    }

    #[test]
    fn template_on_one_instance_needs_healthy_peers() {
        let mut scorer = scorer();
        assert_eq!(steady(&mut scorer, &["web-1", "web-2"], 0, 120), 0);
        for index in 0..20u32 {
            let line = format!("shard {index} moved to standby");
            assert!(
                scorer
                    .observe("web-2", &line, secs(120.0 + f64::from(index)))
                    .is_none()
            );
        }
    }

    #[test]
    fn template_present_from_start_is_not_solo() {
        let mut scorer = scorer();
        for second in 0..200u64 {
            let at = secs(second as f64);
            assert!(
                scorer
                    .observe("leader", "holding leader lease", at)
                    .is_none()
            );
            for instance in ["web-1", "web-2", "web-3"] {
                assert!(
                    scorer
                        .observe(instance, "served request 1 in 12 ms", at)
                        .is_none()
                );
            }
        }
    }

    #[test]
    fn late_lines_are_scored_at_latest_time() {
        let mut scorer = scorer();
        scorer.observe("web-1", "served request 1 in 12 ms", secs(100.0));
        scorer.observe("web-1", "served request 2 in 12 ms", secs(50.0));
        assert_eq!(scorer.stats().late_lines, 1);
        assert_eq!(scorer.stats().lines, 2);
    }

    #[test]
    fn samples_are_cut_to_size() {
        let mut scorer = Scorer::new(ScorerConfig {
            max_sample_bytes: 16,
            ..ScorerConfig::default()
        })
        .expect("config is valid");
        let anomaly = scorer
            .observe(
                "web-1",
                "fatal error: the whole line is much longer",
                secs(0.0),
            )
            .expect("a new error-like template");
        assert_eq!(anomaly.samples, ["fatal error: the"]);
    }

    #[test]
    fn instances_are_capped() {
        let mut scorer = Scorer::new(ScorerConfig {
            max_instances: 2,
            ..ScorerConfig::default()
        })
        .expect("config is valid");
        for (index, instance) in ["a", "b", "c", "a"].into_iter().enumerate() {
            scorer.observe(instance, "served request 1 in 12 ms", secs(index as f64));
        }
        assert_eq!(scorer.instances.len(), 2);
        assert_eq!(scorer.stats().instances_dropped, 2);
    }

    #[test]
    fn evicted_templates_leave_no_state() {
        let mut config = ScorerConfig::default();
        config.miner.max_templates = 2;
        let mut scorer = Scorer::new(config).expect("config is valid");
        for (index, line) in ["alpha up", "beta down now", "gamma left the ring"]
            .iter()
            .enumerate()
        {
            scorer.observe("web-1", line, secs(index as f64));
        }
        assert_eq!(scorer.templates.len(), 2);
    }
}
