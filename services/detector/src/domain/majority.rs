//! The majority rule behind data checksums: replicas of a workload report the same data sets,
//! and a replica whose checksum differs from what a strict majority reports is the corrupt one.

/// A value that more than half of the reports share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Majority<'a, T> {
    pub(crate) value: &'a T,
    /// Reports that carry the value.
    pub(crate) agreeing: usize,
    /// Reports in all.
    pub(crate) reporting: usize,
}

/// Returns the value that more than half of `reports` share, or `None` when no value does: a
/// tie between two replicas, three different values, or fewer than two reports.
pub(crate) fn strict_majority<'a, T: Eq>(reports: &[&'a T]) -> Option<Majority<'a, T>> {
    if reports.len() < 2 {
        return None;
    }
    // Boyer-Moore vote: the only value that can hold a strict majority survives the pairing
    // off of different values, and a second pass counts it.
    let mut candidate = reports[0];
    let mut lead = 0usize;
    for &report in reports {
        if lead == 0 {
            candidate = report;
        }
        lead = if report == candidate {
            lead + 1
        } else {
            lead - 1
        };
    }
    let agreeing = reports
        .iter()
        .filter(|&&report| report == candidate)
        .count();
    (agreeing * 2 > reports.len()).then_some(Majority {
        value: candidate,
        agreeing,
        reporting: reports.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn majority<'a>(reports: &[&'a str]) -> Option<(&'a str, usize)> {
        let refs: Vec<&&str> = reports.iter().collect();
        strict_majority(&refs).map(|found| (*found.value, found.agreeing))
    }

    #[test]
    fn two_of_three_form_majority() {
        assert_eq!(majority(&["a", "b", "a"]), Some(("a", 2)));
        assert_eq!(majority(&["b", "a", "a"]), Some(("a", 2)));
    }

    #[test]
    fn two_replicas_that_disagree_have_no_majority() {
        assert_eq!(majority(&["a", "b"]), None);
    }

    #[test]
    fn two_replicas_that_agree_are_a_majority() {
        assert_eq!(majority(&["a", "a"]), Some(("a", 2)));
    }

    #[test]
    fn three_different_values_have_no_majority() {
        assert_eq!(majority(&["a", "b", "c"]), None);
    }

    #[test]
    fn half_is_not_a_majority() {
        assert_eq!(majority(&["a", "a", "b", "c"]), None);
        assert_eq!(majority(&["a", "a", "b", "b"]), None);
    }

    #[test]
    fn single_report_has_no_majority() {
        assert_eq!(majority(&["a"]), None);
        assert_eq!(majority(&[]), None);
    }

    #[test]
    fn majority_counts_reports() {
        let refs: Vec<&&str> = ["a", "b", "a", "a", "c"].iter().collect();
        let found = strict_majority(&refs).expect("three of five agree");
        assert_eq!(*found.value, "a");
        assert_eq!(found.agreeing, 3);
        assert_eq!(found.reporting, 5);
    }
}
