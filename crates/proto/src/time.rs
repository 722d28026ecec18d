//! Conversions between `google.protobuf` time types and the standard library's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Returns the current wall-clock time as a protobuf timestamp.
pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

/// Converts a protobuf timestamp to microseconds since the Unix epoch; `None` maps to 0.
pub fn micros(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    timestamp.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
}

/// Returns the time from `start` to `end` in milliseconds, or `None` when either is missing.
pub fn millis_between(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Option<f64> {
    match (start, end) {
        (Some(start), Some(end)) => Some((micros(Some(end)) - micros(Some(start))) as f64 / 1e3),
        _ => None,
    }
}

/// Converts a protobuf timestamp to a `SystemTime`, clamping times before the epoch to it.
pub fn to_system_time(timestamp: &prost_types::Timestamp) -> SystemTime {
    let micros = micros(Some(timestamp));
    UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// Converts a standard duration to a protobuf duration, saturating at the maximum.
pub fn duration(value: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(value).unwrap_or(prost_types::Duration {
        seconds: i64::MAX,
        nanos: 999_999_999,
    })
}

/// Converts a protobuf duration to a standard one; negative or missing values become `default`.
pub fn std_duration(value: Option<&prost_types::Duration>, default: Duration) -> Duration {
    value
        .and_then(|d| Duration::try_from(*d).ok())
        .unwrap_or(default)
}
