//! Evidence of memory exhaustion.

use std::collections::HashMap;
use std::time::SystemTime;

use aro_proto::v1::Evidence;
use prost_types::Timestamp;

use crate::domain::memory::{Exhaustion, MemorySettings, MemorySource};

/// Evidence that gives the resident memory, the limit and, for a trend, its growth.
pub(crate) fn exhaustion(
    exhaustion: &Exhaustion,
    settings: &MemorySettings,
    source: MemorySource,
    samples: usize,
    at: SystemTime,
) -> Evidence {
    let (used, limit) = match *exhaustion {
        Exhaustion::OverFraction { used, limit } | Exhaustion::Trend { used, limit, .. } => {
            (used, limit)
        }
    };
    let fraction = used as f64 / limit as f64;
    let mut details = HashMap::from([
        ("rss_bytes".to_owned(), used.to_string()),
        ("limit_bytes".to_owned(), limit.to_string()),
        ("fraction".to_owned(), format!("{fraction:.3}")),
        (
            "threshold_fraction".to_owned(),
            settings.fraction.to_string(),
        ),
        ("source".to_owned(), source.as_str().to_owned()),
        ("samples".to_owned(), samples.to_string()),
    ]);
    let summary = match *exhaustion {
        Exhaustion::OverFraction { .. } => format!(
            "resident memory {} is {:.1}% of the {} limit, at or above the {:.0}% threshold",
            mib(used),
            fraction * 100.0,
            mib(limit),
            settings.fraction * 100.0
        ),
        Exhaustion::Trend {
            growth, reaches_in, ..
        } => {
            details.insert("growth_bytes_per_s".to_owned(), format!("{growth:.0}"));
            details.insert(
                "reaches_limit_in_s".to_owned(),
                format!("{:.1}", reaches_in.as_secs_f64()),
            );
            details.insert(
                "horizon_s".to_owned(),
                settings.horizon.as_secs_f64().to_string(),
            );
            format!(
                "resident memory {} grows {}/s and reaches the {} limit in about {:.1} s",
                mib(used),
                mib(growth as u64),
                mib(limit),
                reaches_in.as_secs_f64()
            )
        }
    };
    Evidence {
        sense: "memory".to_owned(),
        summary,
        details,
        at: Some(Timestamp::from(at)),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn over_fraction_evidence_gives_share_of_limit() {
        let evidence = exhaustion(
            &Exhaustion::OverFraction {
                used: 95 << 20,
                limit: 100 << 20,
            },
            &MemorySettings::default(),
            MemorySource::Process,
            1,
            SystemTime::now(),
        );
        assert_eq!(evidence.sense, "memory");
        assert_eq!(evidence.details["fraction"], "0.950");
        assert_eq!(evidence.details["source"], "proc");
        assert_eq!(
            evidence.summary,
            "resident memory 95.0 MiB is 95.0% of the 100.0 MiB limit, at or above the 90% threshold"
        );
    }

    #[test]
    fn trend_evidence_gives_growth_and_time_left() {
        let evidence = exhaustion(
            &Exhaustion::Trend {
                used: 50 << 20,
                limit: 100 << 20,
                growth: f64::from(5u32 << 20),
                reaches_in: Duration::from_secs(10),
            },
            &MemorySettings::default(),
            MemorySource::Heartbeat,
            12,
            SystemTime::now(),
        );
        assert_eq!(evidence.details["reaches_limit_in_s"], "10.0");
        assert_eq!(evidence.details["source"], "heartbeat");
        assert_eq!(
            evidence.summary,
            "resident memory 50.0 MiB grows 5.0 MiB/s and reaches the 100.0 MiB limit in about 10.0 s"
        );
    }
}
