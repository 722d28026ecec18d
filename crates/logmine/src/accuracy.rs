//! The grouping accuracy of a template miner against labelled lines.

use std::collections::HashMap;
use std::hash::Hash;

/// Computes the grouping accuracy of the Loghub benchmark: the share of lines whose predicted
/// group contains exactly the lines of their true group. `truth[i]` and `predicted[i]` are the true
/// and the predicted group of line `i`. An empty input scores 1.
///
/// # Panics
///
/// Panics when `truth` and `predicted` differ in length.
pub fn group_accuracy<T: Eq + Hash, P: Eq + Hash>(truth: &[T], predicted: &[P]) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_is_one_for_identical_grouping() {
        assert_eq!(group_accuracy(&["a", "a", "b"], &[7, 7, 9]), 1.0);
    }

    #[test]
    fn accuracy_counts_only_exact_groups() {
        // Group 1 merges a and b: wrong. Group 2 contains both c lines: right.
        let accuracy = group_accuracy(&["a", "b", "c", "c"], &[1, 1, 2, 2]);
        assert_eq!(accuracy, 0.5);
    }

    #[test]
    fn accuracy_penalises_split_groups() {
        let accuracy = group_accuracy(&["a", "a", "b"], &[1, 2, 3]);
        assert!((accuracy - 1.0 / 3.0).abs() < 1e-12);
    }
}
