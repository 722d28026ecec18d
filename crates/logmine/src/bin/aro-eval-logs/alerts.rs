//! Alert detection on labelled lines with the anomaly scorer.

use std::time::Duration;

use anyhow::Result;
use aro_logmine::{Scorer, ScorerConfig};

use crate::loghub::Record;

/// The text of each line that the scorer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScorerInput {
    /// The `Content` field, the text the miner groups in the grouping evaluation.
    Content,
    /// The raw line without its label, header fields (and log level) included.
    Line,
}

impl ScorerInput {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Line => "line",
        }
    }
}

/// Alert detection scores of one pass of the scorer over a labelled sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlertReport {
    pub(crate) input: ScorerInput,
    pub(crate) confusion: Confusion,
    /// Anomalies the scorer returned, after cool-downs.
    pub(crate) anomalies: u64,
}

/// Runs a fresh scorer over `records` in order and predicts a line to be an alert when its
/// template is error-like. The label `-` marks a normal line, and any other label an alert. Each
/// line's instance is its `Node` field and its time its `Timestamp` field (Unix seconds), where
/// the format has them.
pub(crate) fn score_alerts(records: &[Record], input: ScorerInput) -> Result<AlertReport> {
    let mut scorer = Scorer::new(ScorerConfig::default())?;
    let mut confusion = Confusion::default();
    for (index, record) in records.iter().enumerate() {
        let Some(label) = record.label() else {
            continue;
        };
        let instance = record.fields.get("Node").map_or("instance", String::as_str);
        let seconds = record
            .fields
            .get("Timestamp")
            .and_then(|value| value.parse().ok())
            .unwrap_or(index as u64);
        let line = match input {
            ScorerInput::Content => record.content.as_str(),
            ScorerInput::Line => record.unlabelled(),
        };
        let observation = scorer.observe_line(instance, line, Duration::from_secs(seconds));
        confusion.record(observation.error_like, label != "-");
    }
    Ok(AlertReport {
        input,
        confusion,
        anomalies: scorer.stats().anomalies,
    })
}

/// Counts of a binary detector against labels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confusion {
    pub(crate) true_positives: usize,
    pub(crate) false_positives: usize,
    pub(crate) false_negatives: usize,
    pub(crate) true_negatives: usize,
}

impl Confusion {
    pub(crate) fn record(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, true) => self.false_negatives += 1,
            (false, false) => self.true_negatives += 1,
        }
    }

    pub(crate) fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub(crate) fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    pub(crate) fn f1(&self) -> f64 {
        let (precision, recall) = (self.precision(), self.recall());
        if precision + recall == 0.0 {
            return 0.0;
        }
        2.0 * precision * recall / (precision + recall)
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        return 0.0;
    }
    numerator as f64 / denominator as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_scores_detector() {
        let mut confusion = Confusion::default();
        for (predicted, actual) in [(true, true), (true, false), (false, true), (false, false)] {
            confusion.record(predicted, actual);
        }
        assert_eq!(confusion.precision(), 0.5);
        assert_eq!(confusion.recall(), 0.5);
        assert_eq!(confusion.f1(), 0.5);
    }

    #[test]
    fn empty_confusion_scores_zero() {
        let confusion = Confusion::default();
        assert_eq!(confusion.precision(), 0.0);
        assert_eq!(confusion.f1(), 0.0);
    }
}
