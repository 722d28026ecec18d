//! Grouping accuracy and alert-detection scores.

use std::collections::HashMap;
use std::hash::Hash;

/// The Loghub grouping accuracy: the share of lines whose predicted group holds exactly the lines
/// of their true group.
pub(crate) fn group_accuracy<T: Eq + Hash, P: Eq + Hash>(truth: &[T], predicted: &[P]) -> f64 {
    assert_eq!(truth.len(), predicted.len(), "one prediction per line");
    if truth.is_empty() {
        return 1.0;
    }
    let mut truth_sizes: HashMap<&T, usize> = HashMap::new();
    for event in truth {
        *truth_sizes.entry(event).or_default() += 1;
    }
    // Per predicted group: the true event of its first line, whether every line shares it, size.
    let mut groups: HashMap<&P, (&T, bool, usize)> = HashMap::new();
    for (event, group) in truth.iter().zip(predicted) {
        let entry = groups.entry(group).or_insert((event, true, 0));
        entry.1 &= entry.0 == event;
        entry.2 += 1;
    }
    let accurate: usize = groups
        .values()
        .filter(|(event, pure, size)| *pure && truth_sizes[event] == *size)
        .map(|(_, _, size)| size)
        .sum();
    accurate as f64 / truth.len() as f64
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
        ratio(self.true_positives, self.true_positives + self.false_positives)
    }

    pub(crate) fn recall(&self) -> f64 {
        ratio(self.true_positives, self.true_positives + self.false_negatives)
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
    fn accuracy_is_one_for_identical_grouping() {
        assert_eq!(group_accuracy(&["a", "a", "b"], &[7, 7, 9]), 1.0);
    }

    #[test]
    fn accuracy_counts_only_exact_groups() {
        // Group 1 merges a and b: wrong. Group 2 holds both c lines: right.
        let accuracy = group_accuracy(&["a", "b", "c", "c"], &[1, 1, 2, 2]);
        assert_eq!(accuracy, 0.5);
    }

    #[test]
    fn accuracy_penalises_split_groups() {
        let accuracy = group_accuracy(&["a", "a", "b"], &[1, 2, 3]);
        assert!((accuracy - 1.0 / 3.0).abs() < 1e-12);
    }

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
}
