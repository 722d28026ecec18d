//! Measures the template miner on Loghub 2k samples: grouping accuracy against the ground truth,
//! single-thread lines per second, and, where lines carry alert labels, alert detection.

mod accuracy;
mod errors;
mod loghub;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use aro_logmine::{Miner, MinerConfig};
use clap::Parser;

use crate::accuracy::group_accuracy;
use crate::loghub::Dataset;

#[derive(Debug, Parser)]
#[command(about = "Measure the log-template miner on Loghub 2k samples")]
struct Args {
    /// Dataset directories, each holding NAME_2k.log and NAME_2k.log_structured.csv.
    #[arg(required = true)]
    datasets: Vec<PathBuf>,
    /// Minimum seconds of mining in each throughput measurement.
    #[arg(long, env = "ARO_EVAL_SECONDS", default_value_t = 1.0)]
    seconds: f64,
    /// Print one JSON object per dataset instead of a table.
    #[arg(long)]
    json: bool,
    /// After each dataset, list this many of its wrongly grouped templates, largest first.
    #[arg(long, default_value_t = 0)]
    show_errors: usize,
}

/// What one dataset measured.
#[derive(Debug)]
struct Report {
    dataset: String,
    lines: usize,
    templates: usize,
    true_templates: usize,
    group_accuracy: f64,
    lines_per_second: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.seconds > 0.0) {
        bail!("invalid --seconds {}: expected a positive number", args.seconds);
    }
    if !args.json {
        println!(
            "{:<12} {:>6} {:>10} {:>9} {:>14}",
            "dataset", "lines", "templates", "accuracy", "lines/s"
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
        let report = measure(&dataset, args.seconds)?;
        print_report(&report, args.json);
        if args.show_errors > 0 {
            let mut miner = Miner::new(MinerConfig::default())?;
            let templates: Vec<(u64, String)> = dataset
                .records
                .iter()
                .map(|record| {
                    let found = miner.add(&record.content);
                    (found.template_id.0, String::new())
                })
                .collect();
            let templates = templates
                .into_iter()
                .map(|(id, _)| {
                    let text = miner.template(aro_logmine::TemplateId(id)).map(|t| t.text.to_owned());
                    (id, text.unwrap_or_default())
                })
                .collect::<Vec<_>>();
            errors::print_errors(&dataset.records, &templates, args.show_errors);
        }
    }
    Ok(())
}

fn measure(dataset: &Dataset, seconds: f64) -> Result<Report> {
    let contents: Vec<&str> = dataset.records.iter().map(|record| record.content.as_str()).collect();
    let mut miner = Miner::new(MinerConfig::default())?;
    let predicted: Vec<u64> = contents.iter().map(|content| miner.add(content).template_id.0).collect();
    let truth: Vec<&str> = dataset.records.iter().map(|record| record.event_id.as_str()).collect();
    let mut true_templates = truth.clone();
    true_templates.sort_unstable();
    true_templates.dedup();
    Ok(Report {
        dataset: dataset.name.clone(),
        lines: contents.len(),
        templates: miner.template_count(),
        true_templates: true_templates.len(),
        group_accuracy: group_accuracy(&truth, &predicted),
        lines_per_second: lines_per_second(&contents, seconds)?,
    })
}

/// Mines `contents` over and over with one fresh miner until `seconds` have passed.
fn lines_per_second(contents: &[&str], seconds: f64) -> Result<f64> {
    let mut miner = Miner::new(MinerConfig::default())?;
    let started = Instant::now();
    let mut lines = 0usize;
    loop {
        for content in contents {
            black_box(miner.add(black_box(content)).template_id);
        }
        lines += contents.len();
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed >= seconds || contents.is_empty() {
            return Ok(lines as f64 / elapsed);
        }
    }
}

fn print_report(report: &Report, json: bool) {
    if json {
        let value = serde_json::json!({
            "dataset": report.dataset,
            "lines": report.lines,
            "templates": report.templates,
            "true_templates": report.true_templates,
            "group_accuracy": report.group_accuracy,
            "lines_per_second": report.lines_per_second,
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
}
