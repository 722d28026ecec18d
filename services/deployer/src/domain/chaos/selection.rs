//! Target selection of an injection: the selector, the blast radius, and the guard that
//! keeps the last serving instance of a workload out of reach unless a request allows it.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::seq::index;

/// Instances a request may hit. Conditions that are set must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Empty for any workload.
    pub workload: String,
    /// Labels the workload must declare, each with the given value.
    pub labels: BTreeMap<String, String>,
    /// Instance ids; empty for any serving instance.
    pub instances: Vec<String>,
}

/// How many of the matching instances an injection hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlastRadius {
    One,
    All,
    /// At least 1.
    Fixed(u32),
    /// From 1 to 100.
    Percent(u32),
}

/// Reasons a selection failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
}

fn invalid(field: &'static str, message: String) -> SelectionError {
    SelectionError::Invalid { field, message }
}

impl BlastRadius {
    /// Builds the blast radius from the request's mode (`None` when unset) and values.
    ///
    /// # Errors
    ///
    /// Rejects a count of 0 and a percentage outside 1 to 100, naming the field and value.
    pub fn new(mode: Option<&str>, count: u32, percent: u32) -> Result<Self, SelectionError> {
        match mode {
            None | Some("one") => Ok(Self::One),
            Some("all") => Ok(Self::All),
            Some("fixed") if count == 0 => Err(invalid(
                "blast_radius.count",
                "0 with mode FIXED, expected at least 1".to_owned(),
            )),
            Some("fixed") => Ok(Self::Fixed(count)),
            Some("percent") if !(1..=100).contains(&percent) => Err(invalid(
                "blast_radius.percent",
                format!("{percent} with mode PERCENT, expected 1 to 100"),
            )),
            Some("percent") => Ok(Self::Percent(percent)),
            Some(other) => Err(invalid(
                "blast_radius.mode",
                format!("unknown mode {other:?}, expected ONE, ALL, FIXED or PERCENT"),
            )),
        }
    }

    /// Number of instances to hit out of `matching`.
    pub fn size(self, matching: usize) -> usize {
        let wanted = match self {
            Self::One => 1,
            Self::All => matching,
            Self::Fixed(count) => usize::try_from(count).unwrap_or(usize::MAX),
            Self::Percent(percent) => {
                let percent = usize::try_from(percent).unwrap_or(100);
                (matching * percent).div_ceil(100)
            }
        };
        wanted.min(matching)
    }
}

/// An instance of the fleet, with the facts the selection uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub workload: String,
    pub instance: String,
    pub generation: u64,
    /// Passed its health check and is in the serving set.
    pub serving: bool,
    /// Starting or serving: neither isolated nor stopped.
    pub running: bool,
    /// State for messages ("starting", "isolated", ...).
    pub state: &'static str,
}

/// A declared workload, with the facts the selection uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// Returns whether `labels` contains every pair of `wanted`.
pub fn labels_match(labels: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Returns the instances that `selector` matches: the named ones, which must exist and run,
/// or else the serving instances of the matching workloads.
///
/// # Errors
///
/// Rejects an empty selector, an unknown workload, a label selector that matches no
/// workload, an unknown instance, and a named instance that does not run.
pub fn matching(
    selector: &Selector,
    workloads: &[WorkloadView<'_>],
    candidates: &[Candidate],
) -> Result<Vec<Candidate>, SelectionError> {
    if selector.workload.is_empty() && selector.labels.is_empty() && selector.instances.is_empty() {
        return Err(invalid(
            "selector",
            "empty: set a workload, labels or instance ids".to_owned(),
        ));
    }
    if !selector.workload.is_empty() && !workloads.iter().any(|w| w.name == selector.workload) {
        return Err(SelectionError::NotFound(format!(
            "workload {:?} not found",
            selector.workload
        )));
    }
    let chosen: BTreeSet<&str> = workloads
        .iter()
        .filter(|w| selector.workload.is_empty() || w.name == selector.workload)
        .filter(|w| labels_match(w.labels, &selector.labels))
        .map(|w| w.name)
        .collect();
    if chosen.is_empty() {
        let wanted: Vec<String> = selector
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        return Err(SelectionError::NotFound(format!(
            "no workload{} has the labels {}",
            if selector.workload.is_empty() {
                String::new()
            } else {
                format!(" named {:?}", selector.workload)
            },
            wanted.join(",")
        )));
    }

    if selector.instances.is_empty() {
        return Ok(candidates
            .iter()
            .filter(|c| c.serving && chosen.contains(c.workload.as_str()))
            .cloned()
            .collect());
    }
    let mut named = Vec::new();
    for id in &selector.instances {
        let found = candidates
            .iter()
            .find(|c| &c.instance == id && chosen.contains(c.workload.as_str()))
            .ok_or_else(|| {
                SelectionError::NotFound(format!(
                    "instance {id:?} not found among the instances of {}",
                    chosen.iter().copied().collect::<Vec<_>>().join(", ")
                ))
            })?;
        if !found.running {
            return Err(SelectionError::FailedPrecondition(format!(
                "instance {id} of workload {:?} is {}, not running",
                found.workload, found.state
            )));
        }
        if !named.contains(found) {
            named.push(found.clone());
        }
    }
    Ok(named)
}

/// Picks `radius` of `matching` at random, in the order they matched.
///
/// # Errors
///
/// Fails when nothing matches.
pub fn pick(
    matching: Vec<Candidate>,
    radius: BlastRadius,
    rng: &mut impl Rng,
) -> Result<Vec<Candidate>, SelectionError> {
    if matching.is_empty() {
        return Err(SelectionError::FailedPrecondition(
            "no serving instance matches the selector".to_owned(),
        ));
    }
    let size = radius.size(matching.len());
    let mut chosen = index::sample(rng, matching.len(), size).into_vec();
    chosen.sort_unstable();
    Ok(chosen.into_iter().map(|i| matching[i].clone()).collect())
}

/// Checks that every workload `targets` touch keeps a serving instance outside `targets`.
///
/// # Errors
///
/// Names the first workload whose last serving instance would be hit.
pub fn keep_last_replica(
    targets: &[Candidate],
    candidates: &[Candidate],
) -> Result<(), SelectionError> {
    let workloads: BTreeSet<&str> = targets.iter().map(|t| t.workload.as_str()).collect();
    for workload in workloads {
        let spared = candidates.iter().any(|c| {
            c.workload == workload
                && c.serving
                && !targets
                    .iter()
                    .any(|t| t.workload == c.workload && t.instance == c.instance)
        });
        if !spared {
            let hit: Vec<&str> = targets
                .iter()
                .filter(|t| t.workload == workload)
                .map(|t| t.instance.as_str())
                .collect();
            return Err(SelectionError::FailedPrecondition(format!(
                "injecting into {} would leave workload {workload:?} without a serving \
                 instance; set allow_last_replica (aro inject --allow-last-replica) to hit its \
                 last serving instance anyway",
                hit.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn candidate(workload: &str, n: u32, state: &'static str) -> Candidate {
        Candidate {
            workload: workload.to_owned(),
            instance: format!("{workload}-{n}"),
            generation: 1,
            serving: state == "serving",
            running: matches!(state, "serving" | "starting"),
            state,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fleet() -> Vec<Candidate> {
        vec![
            candidate("web", 1, "serving"),
            candidate("web", 2, "serving"),
            candidate("web", 3, "starting"),
            candidate("db", 1, "serving"),
            candidate("db", 2, "isolated"),
        ]
    }

    fn names(candidates: &[Candidate]) -> Vec<&str> {
        candidates.iter().map(|c| c.instance.as_str()).collect()
    }

    fn select(selector: &Selector) -> Result<Vec<Candidate>, SelectionError> {
        let web = labels(&[("tier", "front"), ("team", "a")]);
        let db = labels(&[("tier", "back"), ("team", "a")]);
        let workloads = [
            WorkloadView {
                name: "web",
                labels: &web,
            },
            WorkloadView {
                name: "db",
                labels: &db,
            },
        ];
        matching(selector, &workloads, &fleet())
    }

    #[test]
    fn workload_matches_its_serving_instances() {
        let selector = Selector {
            workload: "web".to_owned(),
            ..Selector::default()
        };
        assert_eq!(
            names(&select(&selector).expect("matches")),
            ["web-1", "web-2"]
        );
    }

    #[test]
    fn labels_match_every_workload_that_has_them() {
        let selector = Selector {
            labels: labels(&[("team", "a")]),
            ..Selector::default()
        };
        let matched = select(&selector).expect("matches");
        assert_eq!(names(&matched), ["web-1", "web-2", "db-1"]);
        let selector = Selector {
            labels: labels(&[("team", "a"), ("tier", "back")]),
            ..Selector::default()
        };
        assert_eq!(names(&select(&selector).expect("matches")), ["db-1"]);
    }

    #[test]
    fn unmatched_labels_are_not_found() {
        let selector = Selector {
            labels: labels(&[("tier", "cache")]),
            ..Selector::default()
        };
        let error = select(&selector).expect_err("no workload has it");
        assert!(
            matches!(&error, SelectionError::NotFound(m) if m.contains("tier=cache")),
            "{error}"
        );
    }

    #[test]
    fn named_instances_may_be_starting() {
        let selector = Selector {
            instances: vec!["web-3".to_owned(), "db-1".to_owned(), "web-3".to_owned()],
            ..Selector::default()
        };
        assert_eq!(
            names(&select(&selector).expect("matches")),
            ["web-3", "db-1"]
        );
    }

    #[test]
    fn named_instance_must_run_and_exist() {
        let isolated = Selector {
            instances: vec!["db-2".to_owned()],
            ..Selector::default()
        };
        let error = select(&isolated).expect_err("db-2 is isolated");
        assert!(
            matches!(&error, SelectionError::FailedPrecondition(m) if m.contains("db-2") && m.contains("isolated")),
            "{error}"
        );
        let other_workload = Selector {
            workload: "web".to_owned(),
            instances: vec!["db-1".to_owned()],
            ..Selector::default()
        };
        let error = select(&other_workload).expect_err("db-1 is not a web instance");
        assert!(matches!(error, SelectionError::NotFound(_)), "{error}");
    }

    #[test]
    fn empty_selector_is_invalid() {
        let error = select(&Selector::default()).expect_err("nothing selected");
        assert!(
            matches!(
                error,
                SelectionError::Invalid {
                    field: "selector",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn unknown_workload_is_not_found() {
        let selector = Selector {
            workload: "nope".to_owned(),
            ..Selector::default()
        };
        let error = select(&selector).expect_err("unknown workload");
        assert_eq!(error.to_string(), "workload \"nope\" not found");
    }

    #[test]
    fn blast_radius_sizes() {
        assert_eq!(BlastRadius::One.size(5), 1);
        assert_eq!(BlastRadius::All.size(5), 5);
        assert_eq!(BlastRadius::Fixed(2).size(5), 2);
        assert_eq!(BlastRadius::Fixed(9).size(5), 5);
        assert_eq!(BlastRadius::Percent(50).size(3), 2);
        assert_eq!(BlastRadius::Percent(1).size(3), 1);
        assert_eq!(BlastRadius::Percent(100).size(3), 3);
    }

    #[test]
    fn blast_radius_rejects_out_of_range_values() {
        let error = BlastRadius::new(Some("fixed"), 0, 0).expect_err("count 0");
        assert_eq!(
            error.to_string(),
            "invalid blast_radius.count: 0 with mode FIXED, expected at least 1"
        );
        for percent in [0, 101] {
            let error = BlastRadius::new(Some("percent"), 0, percent).expect_err("out of range");
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid blast_radius.percent: {percent} with mode PERCENT, expected 1 to 100"
                )
            );
        }
        assert_eq!(BlastRadius::new(None, 0, 0), Ok(BlastRadius::One));
        assert_eq!(
            BlastRadius::new(Some("percent"), 0, 100),
            Ok(BlastRadius::Percent(100))
        );
    }

    #[test]
    fn pick_takes_distinct_instances() {
        let mut rng = StdRng::seed_from_u64(7);
        let matching: Vec<Candidate> = fleet().into_iter().filter(|c| c.serving).collect();
        for _ in 0..20 {
            let picked = pick(matching.clone(), BlastRadius::Fixed(2), &mut rng).expect("picks");
            assert_eq!(picked.len(), 2);
            assert_ne!(picked[0], picked[1]);
        }
        let error = pick(Vec::new(), BlastRadius::All, &mut rng).expect_err("nothing matches");
        assert!(matches!(error, SelectionError::FailedPrecondition(_)));
    }

    #[test]
    fn last_serving_replica_is_kept() {
        let all = fleet();
        let web: Vec<Candidate> = all[..2].to_vec();
        let error = keep_last_replica(&web, &all).expect_err("both web replicas");
        assert!(error.to_string().contains("workload \"web\""), "{error}");
        assert!(keep_last_replica(&web[..1], &all).is_ok());
        let db = vec![all[3].clone()];
        let error = keep_last_replica(&db, &all).expect_err("db-1 is the only serving db");
        assert!(error.to_string().contains("db-1"), "{error}");
    }

    #[test]
    fn starting_target_needs_a_serving_peer() {
        let all = fleet();
        let starting = vec![all[2].clone()];
        assert!(keep_last_replica(&starting, &all).is_ok());
        let only_starting = vec![candidate("api", 1, "starting")];
        assert!(keep_last_replica(&only_starting, &only_starting).is_err());
    }
}
