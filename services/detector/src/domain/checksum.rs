//! Checksum mismatches: an artifact, a declared file or a data set whose digest differs from
//! the one it must have.

use super::Digest;

/// Subject of a checksum check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChecksumSubject {
    /// The program the instance's process runs: its executable, or the script that an
    /// interpreter runs. `interpreter` names the executable and its digest when the program
    /// is a script.
    Artifact {
        path: String,
        interpreter: Option<(String, Digest)>,
    },
    /// A file that the instance declared must keep its digest while it runs.
    DeclaredFile { path: String },
    /// A data set whose checksum this replica reports differently from a strict majority of
    /// the workload's serving replicas: `agreeing` of `reporting` replicas report the expected
    /// one.
    DataSet {
        name: String,
        agreeing: usize,
        reporting: usize,
    },
}

impl ChecksumSubject {
    /// Returns the label of the check in metrics and evidence: `artifact`, `declared_file` or
    /// `data_set`.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Artifact { .. } => "artifact",
            Self::DeclaredFile { .. } => "declared_file",
            Self::DataSet { .. } => "data_set",
        }
    }
}

/// Finding of a check in place of the expected digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Digest(Digest),
    /// The file does not exist any more.
    Missing,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Digest(digest) => digest.fmt(f),
            Self::Missing => f.write_str("missing"),
        }
    }
}

/// A digest that differs from the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChecksumMismatch {
    pub subject: ChecksumSubject,
    pub expected: Digest,
    pub actual: Observed,
}
