//! Evidence of a log anomaly.

use std::collections::HashMap;
use std::time::SystemTime;

use aro_logmine::{Anomaly, AnomalyReason};
use aro_proto::v1::Evidence;
use prost_types::Timestamp;

/// Maximum template length in evidence, in bytes; a longer one is cut at a character boundary.
const MAX_TEMPLATE_BYTES: usize = 512;

/// Most sample lines in evidence.
const MAX_SAMPLES: usize = 5;

/// Evidence that gives the reason, the templates, up to five sample lines and the count of
/// anomalies suppressed before this one.
pub(crate) fn log_anomaly(anomaly: &Anomaly, at: SystemTime) -> Evidence {
    let reason = match anomaly.reason {
        AnomalyReason::ErrorTemplate => "error_template",
        AnomalyReason::Burst { .. } => "burst",
        AnomalyReason::SoloTemplate { .. } => "solo_template",
    };
    let mut details = HashMap::from([
        ("reason".to_owned(), reason.to_owned()),
        ("suppressed".to_owned(), anomaly.suppressed.to_string()),
    ]);
    match anomaly.reason {
        AnomalyReason::Burst { rate, baseline } => {
            details.insert("rate_per_s".to_owned(), format!("{rate:.2}"));
            details.insert("baseline_per_s".to_owned(), format!("{baseline:.2}"));
        }
        AnomalyReason::SoloTemplate { healthy_peers } => {
            details.insert("healthy_peers".to_owned(), healthy_peers.to_string());
        }
        AnomalyReason::ErrorTemplate => {}
    }
    for (index, template) in anomaly.templates.iter().enumerate() {
        let number = index + 1;
        details.insert(
            format!("template_{number}"),
            cut(&template.text, MAX_TEMPLATE_BYTES).to_owned(),
        );
        details.insert(
            format!("template_{number}_lines"),
            template.count.to_string(),
        );
    }
    let samples = anomaly.samples.iter().rev().take(MAX_SAMPLES).rev();
    for (index, sample) in samples.enumerate() {
        details.insert(format!("sample_{}", index + 1), sample.clone());
    }
    let first = anomaly
        .templates
        .first()
        .map_or("", |template| cut(&template.text, MAX_TEMPLATE_BYTES));
    Evidence {
        sense: "log".to_owned(),
        summary: format!("{}: {first}", anomaly.reason),
        details,
        at: Some(Timestamp::from(at)),
    }
}

/// Returns `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aro_logmine::{Scorer, ScorerConfig};

    use super::*;

    fn storm_anomaly() -> Anomaly {
        let mut scorer = Scorer::new(ScorerConfig::default()).expect("default config is valid");
        scorer
            .observe(
                "web-1",
                "ERROR connection refused by db-1 after 3 attempts",
                Duration::ZERO,
            )
            .expect("a new error-like template is an anomaly")
    }

    #[test]
    fn log_evidence_names_reason_template_and_samples() {
        let evidence = log_anomaly(&storm_anomaly(), SystemTime::now());
        assert_eq!(evidence.sense, "log");
        assert_eq!(evidence.details["reason"], "error_template");
        assert_eq!(evidence.details["suppressed"], "0");
        assert_eq!(
            evidence.details["sample_1"],
            "ERROR connection refused by db-1 after 3 attempts"
        );
        assert!(evidence.details.contains_key("template_1"));
        assert_eq!(evidence.details["template_1_lines"], "1");
        assert!(
            evidence.summary.starts_with("new error-like template: "),
            "{}",
            evidence.summary
        );
    }

    #[test]
    fn cut_keeps_character_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("hello", 10), "hello");
    }
}
