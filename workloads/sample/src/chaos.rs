//! Chaos hooks: faults that only the program itself can produce, injected on request over
//! HTTP, so that the engine's fault-injection API can break the workload in every way the
//! detector should notice. Served to loopback peers only when the server binds loopback.
//!
//! - `POST /chaos/log-storm?lines=N` writes N error lines to standard error (default 1000).
//! - `POST /chaos/stop-heartbeats` keeps serving HTTP but stops pushing heartbeats.
//! - `POST /chaos/grow-memory?mib_per_sec=N&max_mib=M` allocates and touches N MiB per second
//!   up to M MiB in all (defaults 16 and 1024).
//! - `POST /chaos/corrupt-data` serves and reports a data set with one flipped bit.
//! - `POST /chaos/reset` undoes all of these, except a storm already written.
//! - `GET /chaos` returns the current state, one `name: value` line each.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{info, warn};

use crate::data::DataSet;
use crate::log_storm;
use crate::memory::{self, Growth};

/// Faults the hooks injected, shared by the HTTP server and the heartbeat task.
#[derive(Debug)]
pub(crate) struct Chaos {
    pub(crate) data: DataSet,
    heartbeats_stopped: AtomicBool,
    growth: Growth,
}

impl Chaos {
    pub(crate) fn new(data: DataSet) -> Self {
        Self {
            data,
            heartbeats_stopped: AtomicBool::new(false),
            growth: Growth::default(),
        }
    }

    /// True while heartbeats are stopped on purpose.
    pub(crate) fn heartbeats_stopped(&self) -> bool {
        self.heartbeats_stopped.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.heartbeats_stopped.store(false, Ordering::Relaxed);
        self.growth.stop();
        self.data.set_corrupt(false);
    }

    fn status(&self) -> String {
        let heartbeats = if self.heartbeats_stopped() {
            "stopped"
        } else {
            "sending"
        };
        format!(
            "heartbeats: {heartbeats}\ndata_checksum: {}\ndata_corrupt: {}\ngrown_bytes: {}\nresident_bytes: {}\n",
            self.data.checksum(),
            self.data.is_corrupt(),
            self.growth.grown_bytes(),
            memory::resident_bytes().unwrap_or(0),
        )
    }
}

type Shared = Arc<Chaos>;

/// Returns the routes of the chaos hooks. On a loopback address they serve loopback peers
/// only. On another address (inside a container, on the project's network) they serve every
/// peer that reaches it.
pub(crate) fn routes(chaos: Shared, bound: IpAddr) -> axum::Router {
    axum::Router::new()
        .route("/chaos", get(status))
        .route("/chaos/log-storm", post(log_storm))
        .route("/chaos/stop-heartbeats", post(stop_heartbeats))
        .route("/chaos/grow-memory", post(grow_memory))
        .route("/chaos/corrupt-data", post(corrupt_data))
        .route("/chaos/reset", post(reset))
        .layer(middleware::from_fn_with_state(bound, local_only))
        .with_state(chaos)
}

/// Rejects peers that are not on the loopback interface while the server is bound to
/// loopback. None should get here, so this only keeps the hooks closed if that changes.
async fn local_only(
    State(bound): State<IpAddr>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() || !bound.is_loopback() {
        next.run(request).await
    } else {
        warn!(%peer, path = %request.uri().path(), "chaos hook called from outside loopback, rejected");
        (
            StatusCode::FORBIDDEN,
            "chaos hooks answer loopback peers only\n",
        )
            .into_response()
    }
}

async fn status(State(chaos): State<Shared>) -> String {
    chaos.status()
}

async fn log_storm(request: Request) -> Response {
    let params = match Params::parse(request.uri().query(), &["lines"]) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let lines = match params.number("lines", 1000, 1..=1_000_000) {
        Ok(lines) => u32::try_from(lines).expect("at most 1000000"),
        Err(message) => return bad_request(message),
    };
    info!(lines, "chaos: log storm");
    tokio::spawn(log_storm::write(lines));
    (
        StatusCode::ACCEPTED,
        format!("writing {lines} error lines to standard error\n"),
    )
        .into_response()
}

async fn stop_heartbeats(State(chaos): State<Shared>) -> &'static str {
    info!("chaos: heartbeats stopped");
    chaos.heartbeats_stopped.store(true, Ordering::Relaxed);
    "heartbeats stopped\n"
}

async fn grow_memory(State(chaos): State<Shared>, request: Request) -> Response {
    let params = match Params::parse(request.uri().query(), &["mib_per_sec", "max_mib"]) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let rate = params.number("mib_per_sec", 16, 1..=1024);
    let max = params.number("max_mib", 1024, 1..=65_536);
    let (rate, max) = match (rate, max) {
        (Ok(rate), Ok(max)) => (rate, max),
        (Err(message), _) | (_, Err(message)) => return bad_request(message),
    };
    info!(mib_per_sec = rate, max_mib = max, "chaos: memory growth");
    let as_usize = |value: u64| usize::try_from(value).expect("at most 65536");
    chaos.growth.start(as_usize(rate), as_usize(max));
    format!("growing by {rate} MiB per second up to {max} MiB\n").into_response()
}

async fn corrupt_data(State(chaos): State<Shared>) -> String {
    chaos.data.set_corrupt(true);
    info!(checksum = %chaos.data.checksum(), "chaos: data checksum altered");
    format!("data checksum is now {}\n", chaos.data.checksum())
}

async fn reset(State(chaos): State<Shared>) -> &'static str {
    chaos.reset();
    info!("chaos: reset");
    "heartbeats sending, grown memory freed, data intact\n"
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

/// Query parameters of a hook.
#[derive(Debug)]
struct Params<'a>(HashMap<&'a str, &'a str>);

impl<'a> Params<'a> {
    /// Splits `query` into parameters, rejecting any not in `known`.
    fn parse(query: Option<&'a str>, known: &[&str]) -> Result<Self, String> {
        let mut params = HashMap::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !known.contains(&name) {
                return Err(format!(
                    "unknown parameter {name:?}: expected {}",
                    known.join(" or ")
                ));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    /// Returns the whole number `name`, or `default` when absent.
    fn number(&self, name: &str, default: u64, range: RangeInclusive<u64>) -> Result<u64, String> {
        let Some(value) = self.0.get(name) else {
            return Ok(default);
        };
        value
            .parse::<u64>()
            .ok()
            .filter(|number| range.contains(number))
            .ok_or_else(|| {
                format!(
                    "invalid {name} {value:?}: expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_parsed() {
        let params = Params::parse(Some("lines=25"), &["lines"]).expect("valid");
        assert_eq!(params.number("lines", 1000, 1..=100), Ok(25));
        let empty = Params::parse(None, &["lines"]).expect("valid");
        assert_eq!(empty.number("lines", 1000, 1..=10_000), Ok(1000));
    }

    #[test]
    fn unknown_parameter_is_rejected() {
        let message = Params::parse(Some("line=25"), &["lines"]).expect_err("unknown");
        assert!(message.contains("\"line\""), "{message}");
    }

    #[test]
    fn number_out_of_range_names_field_and_value() {
        let params = Params::parse(Some("lines=0"), &["lines"]).expect("valid");
        let message = params
            .number("lines", 1000, 1..=100)
            .expect_err("out of range");
        assert!(message.contains("invalid lines \"0\""), "{message}");
        let params = Params::parse(Some("lines=many"), &["lines"]).expect("valid");
        let message = params
            .number("lines", 1000, 1..=100)
            .expect_err("not a number");
        assert!(message.contains("\"many\""), "{message}");
    }

    #[test]
    fn reset_undoes_every_fault() {
        let chaos = Chaos::new(DataSet::load(None).expect("generating"));
        let intact = chaos.data.checksum().to_owned();
        chaos.heartbeats_stopped.store(true, Ordering::Relaxed);
        chaos.data.set_corrupt(true);
        chaos.reset();
        assert!(!chaos.heartbeats_stopped());
        assert_eq!(chaos.data.checksum(), intact);
    }
}
