//! Measures the template miner on Loghub 2k samples: grouping accuracy against the ground truth,
//! single-thread lines per CPU second, and, where lines carry alert labels, alert detection with
//! the anomaly scorer.

mod alerts;
mod errors;
mod loghub;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aro_logmine::{Miner, MinerConfig, group_accuracy};
use clap::Parser;
use nix::time::{ClockId, clock_gettime};

use crate::alerts::{AlertReport, ScorerInput, score_alerts};
use crate::loghub::Dataset;

#[derive(Debug, Parser)]
#[command(about = "Measure the log-template miner on Loghub 2k samples")]
struct Args {
    /// Dataset directories, each holding NAME_2k.log and NAME_2k.log_structured.csv.
    #[arg(required = true)]
    datasets: Vec<PathBuf>,
    /// Minimum CPU seconds of mining in each throughput measurement.
    #[arg(long, env = "ARO_EVAL_SECONDS", default_value_t = 1.0)]
    seconds: f64,
    /// Print one JSON object per dataset instead of a table.
    #[arg(long)]
    json: bool,
    /// Similarity threshold of the miner, from 0 to 1 [default: the miner's default].
    #[arg(long)]
    similarity_threshold: Option<f64>,
    /// Prefix-tree depth of the miner, in tokens [default: the miner's default].
    #[arg(long)]
    prefix_depth: Option<usize>,
    /// After each dataset, list this many of its wrongly grouped templates, largest first.
    #[arg(long, default_value_t = 0)]
    show_errors: usize,
}

impl Args {
    /// Builds the miner configuration from the defaults and the command-line overrides.
    fn miner_config(&self) -> MinerConfig {
        let defaults = MinerConfig::default();
        MinerConfig {
            similarity_threshold: self
                .similarity_threshold
                .unwrap_or(defaults.similarity_threshold),
            prefix_depth: self.prefix_depth.unwrap_or(defaults.prefix_depth),
            ..defaults
        }
    }
}

/// Measurements of one dataset.
#[derive(Debug)]
struct Report {
    dataset: String,
    lines: usize,
    templates: usize,
    true_templates: usize,
    group_accuracy: f64,
    lines_per_second: f64,
    alerts: Vec<AlertReport>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        bail!(
            "invalid --seconds {}: expected a positive number",
            args.seconds
        );
    }
    let config = args.miner_config();
    config.validate()?;
    if !args.json {
        println!(
            "{:<12} {:>6} {:>10} {:>9} {:>14}",
            "dataset", "lines", "templates", "accuracy", "lines/cpu-s"
        );
    }
    for dir in &args.datasets {
        let dataset = Dataset::load(dir)?;
        if dataset.content_mismatches > 0 {
            bail!(
                "{}: {} parsed contents differ from the Content column; the log format is wrong",
                dataset.name,
                dataset.content_mismatches
            );
        }
        let (report, templates) = measure(&dataset, args.seconds, &config)?;
        print_report(&report, args.json);
        if args.show_errors > 0 {
            errors::print_errors(&dataset.records, &templates, args.show_errors);
        }
    }
    Ok(())
}

/// Measures one dataset; also returns each line's template id and final template text.
fn measure(
    dataset: &Dataset,
    seconds: f64,
    config: &MinerConfig,
) -> Result<(Report, Vec<(u64, String)>)> {
    let contents: Vec<&str> = dataset
        .records
        .iter()
        .map(|record| record.content.as_str())
        .collect();
    let mut miner = Miner::new(config.clone())?;
    let predicted: Vec<u64> = contents
        .iter()
        .map(|content| miner.add(content).template_id.0)
        .collect();
    let templates = predicted
        .iter()
        .map(|&id| {
            let text = miner
                .template(aro_logmine::TemplateId(id))
                .map(|template| template.text);
            (id, text.unwrap_or_default().to_owned())
        })
        .collect();

    let truth: Vec<&str> = dataset
        .records
        .iter()
        .map(|record| record.event_id.as_str())
        .collect();
    let mut true_templates = truth.clone();
    true_templates.sort_unstable();
    true_templates.dedup();

    let labelled = dataset
        .records
        .iter()
        .any(|record| record.label().is_some());
    let alerts = if labelled {
        vec![
            score_alerts(&dataset.records, ScorerInput::Content)?,
            score_alerts(&dataset.records, ScorerInput::Line)?,
        ]
    } else {
        Vec::new()
    };

    let report = Report {
        dataset: dataset.name.clone(),
        lines: contents.len(),
        templates: miner.template_count(),
        true_templates: true_templates.len(),
        group_accuracy: group_accuracy(&truth, &predicted),
        lines_per_second: lines_per_second(&contents, seconds, config)?,
        alerts,
    };
    Ok((report, templates))
}

/// Mines `contents` over and over with one fresh miner until `seconds` of this thread's CPU time
/// have passed, and returns lines per CPU second. CPU time rather than wall time keeps the figure
/// independent of other processes competing for the core.
fn lines_per_second(contents: &[&str], seconds: f64, config: &MinerConfig) -> Result<f64> {
    let mut miner = Miner::new(config.clone())?;
    let started = thread_cpu_time()?;
    let mut lines = 0usize;
    loop {
        for content in contents {
            black_box(miner.add(black_box(content)).template_id);
        }
        lines += contents.len();
        let elapsed = (thread_cpu_time()? - started).as_secs_f64();
        if elapsed >= seconds || contents.is_empty() {
            return Ok(lines as f64 / elapsed);
        }
    }
}

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Result<Duration> {
    let now =
        clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).context("reading the thread CPU clock")?;
    let seconds = u64::try_from(now.tv_sec()).context("thread CPU clock is negative")?;
    let nanos =
        u32::try_from(now.tv_nsec()).context("thread CPU clock nanoseconds out of range")?;
    Ok(Duration::new(seconds, nanos))
}

fn print_report(report: &Report, json: bool) {
    if json {
        let alerts: Vec<serde_json::Value> = report
            .alerts
            .iter()
            .map(|alerts| {
                let confusion = &alerts.confusion;
                serde_json::json!({
                    "input": alerts.input.name(),
                    "precision": confusion.precision(),
                    "recall": confusion.recall(),
                    "f1": confusion.f1(),
                    "true_positives": confusion.true_positives,
                    "false_positives": confusion.false_positives,
                    "false_negatives": confusion.false_negatives,
                    "anomalies": alerts.anomalies,
                })
            })
            .collect();
        let value = serde_json::json!({
            "dataset": report.dataset,
            "lines": report.lines,
            "templates": report.templates,
            "true_templates": report.true_templates,
            "group_accuracy": report.group_accuracy,
            "lines_per_second": report.lines_per_second,
            "alerts": alerts,
        });
        println!("{value}");
        return;
    }
    println!(
        "{:<12} {:>6} {:>4} / {:<3} {:>9.4} {:>14.0}",
        report.dataset,
        report.lines,
        report.templates,
        report.true_templates,
        report.group_accuracy,
        report.lines_per_second
    );
    for alerts in &report.alerts {
        let confusion = &alerts.confusion;
        println!(
            "  alerts from the {}: precision {:.3} recall {:.3} F1 {:.3} \
             (tp {} fp {} fn {}), {} anomalies returned",
            alerts.input.name(),
            confusion.precision(),
            confusion.recall(),
            confusion.f1(),
            confusion.true_positives,
            confusion.false_positives,
            confusion.false_negatives,
            alerts.anomalies
        );
    }
}
