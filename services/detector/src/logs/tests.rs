//! The log pipeline from the intake to the fault queue, without NATS.

use aro_logmine::ScorerConfig;
use aro_proto::v1::{FaultEvent, FaultKind, Instance, InstanceRef, InstanceState};
use tokio::task::JoinHandle;

use super::*;
use crate::domain::{DetectorConfig, Tracker, WorkloadScorers};
use crate::metrics::{Metrics, ReasonLabels};
use crate::watcher::{self, Watcher};

const SETTINGS: LogSettings = LogSettings {
    queue_capacity: 64,
    max_line_bytes: 128,
};

fn entry(instance: &str, state: InstanceState) -> Instance {
    Instance {
        r#ref: Some(InstanceRef {
            workload: "web".to_owned(),
            instance: instance.to_owned(),
            generation: 1,
            node: "local".to_owned(),
        }),
        state: state.into(),
        replicas: 2,
        ..Instance::default()
    }
}

struct Pipeline {
    intake: Intake,
    scoring: JoinHandle<()>,
    faults: mpsc::UnboundedReceiver<FaultEvent>,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Starts a watcher of the serving `web-1` and the isolated `web-2`, and the scorer task.
    fn start(settings: LogSettings) -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (sender, faults) = mpsc::unbounded_channel();
        let watcher = Watcher::new(
            Tracker::new(DetectorConfig::default()),
            Arc::clone(&metrics),
            sender,
            None,
            CancellationToken::new(),
        );
        watcher.reconcile(vec![
            entry("web-1", InstanceState::Serving),
            entry("web-2", InstanceState::Isolated),
        ]);
        let (intake, lines) = Intake::new(settings, Arc::clone(&metrics));
        let scorers = WorkloadScorers::new(ScorerConfig::default()).expect("valid config");
        let scoring = tokio::spawn(score(lines, scorers, watcher, Arc::clone(&metrics)));
        Self {
            intake,
            scoring,
            faults,
            metrics,
        }
    }

    fn push(&self, subject: &str, line: &[u8]) {
        self.intake.push(subject, line, watcher::now());
    }

    /// Drops the intake, waits until every queued line is scored and returns the faults.
    async fn finish(mut self) -> (Vec<FaultEvent>, Arc<Metrics>) {
        drop(self.intake);
        self.scoring.await.expect("the scorer task ends");
        let mut faults = Vec::new();
        while let Ok(fault) = self.faults.try_recv() {
            faults.push(fault);
        }
        (faults, self.metrics)
    }
}

fn ignored(metrics: &Metrics, reason: &'static str) -> u64 {
    metrics
        .log_lines_ignored
        .get_or_create(&ReasonLabels { reason })
        .get()
}

#[tokio::test(start_paused = true)]
async fn error_storm_raises_one_log_anomaly() {
    let pipeline = Pipeline::start(LogSettings {
        queue_capacity: 4096,
        ..SETTINGS
    });
    for request in 0..100 {
        pipeline.push(
            "aro.logs.web.web-1",
            format!("served request {request}").as_bytes(),
        );
    }
    for attempt in 0..1000 {
        let line = format!("ERROR connection to db-1 refused after {attempt} attempts");
        pipeline.push("aro.logs.web.web-1", line.as_bytes());
    }
    let (faults, metrics) = pipeline.finish().await;
    assert_eq!(faults.len(), 1, "{faults:?}");
    let fault = &faults[0];
    assert_eq!(fault.kind(), FaultKind::LogAnomaly);
    assert_eq!(fault.id, "flt-web-1-g1-log_anomaly");
    let evidence = &fault.evidence[0];
    assert_eq!(evidence.sense, "log");
    assert_eq!(evidence.details["reason"], "error_template");
    assert_eq!(
        evidence.details["sample_1"],
        "ERROR connection to db-1 refused after 0 attempts"
    );
    assert_eq!(metrics.log_lines_read.get(), 1100);
    assert_eq!(metrics.log_lines_dropped.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn lines_of_unwatched_instances_are_counted_and_ignored() {
    let pipeline = Pipeline::start(SETTINGS);
    pipeline.push("aro.logs.web.web-2", b"ERROR isolated instance fails");
    pipeline.push("aro.logs.web.web-9", b"ERROR unknown instance fails");
    pipeline.push("aro.logs.web", b"ERROR no instance in the subject");
    pipeline.push("aro.logs.Web.web-1", b"ERROR invalid workload name");
    let (faults, metrics) = pipeline.finish().await;
    assert!(faults.is_empty(), "{faults:?}");
    assert_eq!(metrics.log_lines_read.get(), 4);
    assert_eq!(ignored(&metrics, "isolated"), 1);
    assert_eq!(ignored(&metrics, "unknown"), 1);
    assert_eq!(ignored(&metrics, "invalid_subject"), 2);
}

#[tokio::test(start_paused = true)]
async fn huge_line_is_cut_and_scored() {
    let pipeline = Pipeline::start(SETTINGS);
    let mut line = b"FATAL out of disk space ".to_vec();
    line.resize(5 << 20, b'x');
    pipeline.push("aro.logs.web.web-1", &line);
    let (faults, metrics) = pipeline.finish().await;
    assert_eq!(metrics.log_lines_truncated.get(), 1);
    assert_eq!(
        faults.len(),
        1,
        "the cut line still starts an error template"
    );
    let sample = &faults[0].evidence[0].details["sample_1"];
    assert!(sample.len() <= SETTINGS.max_line_bytes, "{}", sample.len());
}

#[tokio::test(start_paused = true)]
async fn invalid_utf8_is_scored_lossily() {
    let pipeline = Pipeline::start(SETTINGS);
    pipeline.push("aro.logs.web.web-1", b"ERROR bad bytes \xff\xfe in request");
    let (faults, metrics) = pipeline.finish().await;
    assert_eq!(metrics.log_lines_invalid_utf8.get(), 1);
    assert_eq!(faults.len(), 1);
    assert_eq!(
        faults[0].evidence[0].details["sample_1"],
        "ERROR bad bytes \u{fffd}\u{fffd} in request"
    );
}

#[tokio::test(start_paused = true)]
async fn full_queue_drops_and_counts_lines() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let (intake, mut lines) = Intake::new(SETTINGS, Arc::clone(&metrics));
    for request in 0..1000 {
        intake.push(
            "aro.logs.web.web-1",
            format!("served request {request}").as_bytes(),
            watcher::now(),
        );
    }
    assert_eq!(metrics.log_lines_read.get(), 1000);
    assert_eq!(metrics.log_lines_dropped.get(), 1000 - 64);
    drop(intake);
    let mut queued = 0;
    while lines.recv().await.is_some() {
        queued += 1;
    }
    assert_eq!(queued, 64);
}

#[test]
fn subject_names_instance() {
    assert_eq!(
        parse_subject("aro.logs.web.web-1"),
        Some(InstanceKey::new("web", "web-1"))
    );
    assert_eq!(parse_subject("aro.logs.web.web-1.extra"), None);
    assert_eq!(parse_subject("aro.signals.web.web-1"), None);
    assert_eq!(parse_subject("aro.logs..web-1"), None);
}
