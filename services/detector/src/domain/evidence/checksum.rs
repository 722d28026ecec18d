//! Evidence of a checksum mismatch.

use std::collections::HashMap;
use std::time::SystemTime;

use aro_proto::v1::Evidence;
use prost_types::Timestamp;

use crate::domain::checksum::{ChecksumMismatch, ChecksumSubject, Observed};

/// Evidence that names the file or data set, the expected and the actual digest.
pub(crate) fn checksum(mismatch: &ChecksumMismatch, at: SystemTime) -> Evidence {
    let expected = &mismatch.expected;
    let actual = &mismatch.actual;
    let mut details = HashMap::from([
        ("check".to_owned(), mismatch.subject.check().to_owned()),
        ("expected".to_owned(), expected.to_string()),
        ("actual".to_owned(), actual.to_string()),
    ]);
    let summary = match &mismatch.subject {
        ChecksumSubject::Artifact { path, interpreter } => {
            details.insert("file".to_owned(), path.clone());
            if let Some((interpreter, digest)) = interpreter {
                details.insert("interpreter".to_owned(), interpreter.clone());
                details.insert("interpreter_digest".to_owned(), digest.to_string());
            }
            format!("executable {path} has digest {actual}, expected {expected}")
        }
        ChecksumSubject::DeclaredFile { path } => {
            details.insert("file".to_owned(), path.clone());
            match actual {
                Observed::Missing => {
                    format!("declared file {path} is missing, expected {expected}")
                }
                Observed::Digest(_) => {
                    format!("declared file {path} has digest {actual}, expected {expected}")
                }
            }
        }
        ChecksumSubject::DataSet {
            name,
            agreeing,
            reporting,
        } => {
            details.insert("data_set".to_owned(), name.clone());
            details.insert("agreeing_replicas".to_owned(), agreeing.to_string());
            details.insert("reporting_replicas".to_owned(), reporting.to_string());
            format!(
                "data set {name} has checksum {actual} on this replica, while {agreeing} of \
                 {reporting} serving replicas report {expected}"
            )
        }
    };
    Evidence {
        sense: "checksum".to_owned(),
        summary,
        details,
        at: Some(Timestamp::from(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Digest;

    #[test]
    fn declared_file_evidence_names_file_and_digests() {
        let mismatch = ChecksumMismatch {
            subject: ChecksumSubject::DeclaredFile {
                path: "/srv/app/config.toml".to_owned(),
            },
            expected: Digest::from_sha256(&[1; 32]),
            actual: Observed::Digest(Digest::from_sha256(&[2; 32])),
        };
        let evidence = checksum(&mismatch, SystemTime::now());
        assert_eq!(evidence.sense, "checksum");
        assert_eq!(evidence.details["check"], "declared_file");
        assert_eq!(evidence.details["file"], "/srv/app/config.toml");
        assert_eq!(
            evidence.details["expected"],
            Digest::from_sha256(&[1; 32]).as_str()
        );
        assert_eq!(
            evidence.details["actual"],
            Digest::from_sha256(&[2; 32]).as_str()
        );
        assert!(
            evidence
                .summary
                .starts_with("declared file /srv/app/config.toml has digest"),
            "{}",
            evidence.summary
        );
    }

    #[test]
    fn missing_file_is_named_missing() {
        let mismatch = ChecksumMismatch {
            subject: ChecksumSubject::DeclaredFile {
                path: "/srv/app/model.bin".to_owned(),
            },
            expected: Digest::from_sha256(&[1; 32]),
            actual: Observed::Missing,
        };
        let evidence = checksum(&mismatch, SystemTime::now());
        assert_eq!(evidence.details["actual"], "missing");
        assert!(
            evidence.summary.contains("is missing"),
            "{}",
            evidence.summary
        );
    }
}
