//! Evidence attached to each kind of fault: what was seen, in a sentence and as details.

mod checksum;
mod log;
mod memory;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aro_proto::v1::{Evidence, Exited, HealthCheck, health_check};
use prost_types::Timestamp;

use super::Moment;
use super::watch::Watch;

pub(crate) use checksum::checksum;
pub(crate) use log::log_anomaly;
pub(crate) use memory::exhaustion;

/// Describes an exit for people, for example `killed by signal 9 (SIGKILL)`.
fn describe_exit(exited: &Exited) -> String {
    let by_signal = exited
        .signal
        .map(|number| match nix::sys::signal::Signal::try_from(number) {
            Ok(signal) => format!("killed by signal {number} ({})", signal.as_str()),
            Err(_) => format!("killed by signal {number}"),
        });
    let description = match (exited.code, by_signal) {
        (_, Some(by_signal)) => by_signal,
        (Some(code), None) => format!("exited with status {code}"),
        (None, None) => "exited without a reported status or signal".to_owned(),
    };
    if exited.oom_killed {
        format!("{description}, ended by the out-of-memory killer")
    } else {
        description
    }
}

/// Evidence of an unexpected exit that the runtime observed at `at`.
pub(crate) fn exit(
    exited: &Exited,
    at: SystemTime,
    recent_exits: u32,
    window: Duration,
) -> Evidence {
    let mut summary = describe_exit(exited);
    if recent_exits > 1 {
        summary.push_str(&format!(
            ", unexpected exit {recent_exits} of this instance within {} s",
            window.as_secs()
        ));
    }
    let mut details = HashMap::from([
        ("recent_exits".to_owned(), recent_exits.to_string()),
        (
            "crash_loop_window_s".to_owned(),
            window.as_secs().to_string(),
        ),
        ("oom_killed".to_owned(), exited.oom_killed.to_string()),
    ]);
    if let Some(code) = exited.code {
        details.insert("exit_code".to_owned(), code.to_string());
    }
    if let Some(number) = exited.signal {
        details.insert("signal".to_owned(), number.to_string());
        if let Ok(signal) = nix::sys::signal::Signal::try_from(number) {
            details.insert("signal_name".to_owned(), signal.as_str().to_owned());
        }
    }
    Evidence {
        sense: "exit".to_owned(),
        summary,
        details,
        at: Some(Timestamp::from(at)),
    }
}

/// Evidence of a silence that drove the suspicion level over the threshold.
pub(crate) fn silence(
    watch: &Watch,
    pushes_heartbeats: bool,
    threshold: f64,
    now: Moment,
) -> Evidence {
    let sense = if pushes_heartbeats || watch.heartbeats > 0 {
        "heartbeat"
    } else {
        "probe"
    };
    let mut details = HashMap::from([
        ("phi".to_owned(), format!("{:.2}", watch.suspicion)),
        ("threshold".to_owned(), format!("{threshold}")),
        ("heartbeats".to_owned(), watch.heartbeats.to_string()),
        ("probes_passed".to_owned(), watch.probes_passed.to_string()),
        ("mean_interval_ms".to_owned(), millis(watch.mean_interval())),
        ("std_dev_ms".to_owned(), millis(watch.std_dev())),
    ]);
    let summary = match watch.last_arrival {
        Some(last) => {
            let silence = now.monotonic.saturating_duration_since(last.monotonic);
            details.insert("silence_ms".to_owned(), millis(silence));
            details.insert(
                "last_seen".to_owned(),
                Timestamp::from(last.wall).to_string(),
            );
            format!(
                "no heartbeat or passed probe for {:.2} s, suspicion {:.1} reached the threshold {threshold}",
                silence.as_secs_f64(),
                watch.suspicion
            )
        }
        None => format!(
            "no heartbeat or passed probe since it started serving, suspicion {:.1} reached the threshold {threshold}",
            watch.suspicion
        ),
    };
    if let Some(error) = &watch.last_probe_error {
        details.insert("last_probe_error".to_owned(), error.clone());
    }
    Evidence {
        sense: sense.to_owned(),
        summary,
        details,
        at: Some(Timestamp::from(now.wall)),
    }
}

/// Evidence of consecutive answered probe failures.
pub(crate) fn failed_probes(watch: &Watch, check: Option<&HealthCheck>, now: Moment) -> Evidence {
    let error = watch.last_probe_error.clone().unwrap_or_default();
    let mut details = HashMap::from([
        (
            "consecutive_failures".to_owned(),
            watch.probe_failures.to_string(),
        ),
        ("last_error".to_owned(), error.clone()),
    ]);
    if let Some(check) = check.and_then(describe_check) {
        details.insert("check".to_owned(), check);
    }
    Evidence {
        sense: "probe".to_owned(),
        summary: format!(
            "{} consecutive health checks failed, last: {error}",
            watch.probe_failures
        ),
        details,
        at: Some(Timestamp::from(now.wall)),
    }
}

/// Describes a health check, for example `http http://127.0.0.1:8080/healthz`.
pub(crate) fn describe_check(check: &HealthCheck) -> Option<String> {
    Some(match check.check.as_ref()? {
        health_check::Check::TcpPort(port) => format!("tcp 127.0.0.1:{port}"),
        health_check::Check::HttpUrl(url) => format!("http {url}"),
        health_check::Check::GrpcAddress(address) => format!("grpc {address}"),
        health_check::Check::Exec(exec) => format!("exec {}", exec.argv.join(" ")),
    })
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_by_signal_names_signal() {
        let exited = Exited {
            signal: Some(9),
            ..Exited::default()
        };
        assert_eq!(describe_exit(&exited), "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn exit_by_status_names_status() {
        let exited = Exited {
            code: Some(3),
            ..Exited::default()
        };
        assert_eq!(describe_exit(&exited), "exited with status 3");
    }

    #[test]
    fn exit_evidence_carries_details() {
        let exited = Exited {
            code: Some(137),
            oom_killed: true,
            ..Exited::default()
        };
        let evidence = exit(&exited, SystemTime::now(), 2, Duration::from_secs(60));
        assert_eq!(evidence.sense, "exit");
        assert_eq!(evidence.details["exit_code"], "137");
        assert_eq!(evidence.details["oom_killed"], "true");
        assert_eq!(evidence.details["recent_exits"], "2");
        assert!(
            evidence.summary.contains("out-of-memory"),
            "{}",
            evidence.summary
        );
        assert!(evidence.summary.contains("exit 2"), "{}", evidence.summary);
    }
}
