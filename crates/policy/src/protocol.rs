//! JSON-lines protocol of the `aro-sim` binary, through which the Python training code drives
//! the simulator.
//!
//! Each request is one JSON object on one line, and each gets one JSON object on one line back:
//!
//! | request | response |
//! | --- | --- |
//! | `{"op":"spec"}` | `schema_version`, `n_features`, `n_actions`, `actions`, `features`, `reward_scale`, `costs` (`action_costs` in model output order and `escalation_secs`, the median time a person takes, both in seconds of downtime) |
//! | `{"op":"reset","seed":N}`, optionally `"cause":"bad_release"` | `observation`, `features`, `info.cause` |
//! | `{"op":"step","action":I}` with I a model output index | `observation`, `features`, `reward`, `done`, `info` (the step's figures, the cause, and the finished `episode` when done) |
//! | `{"op":"evaluate","policy":"rules","episodes":N,"seed":S}`, optionally `"records":true` | `summary`, and `records` when requested |
//! | `{"op":"summarize","records":[...]}` | `summary` of episode records that `step` returned |
//! | `{"op":"features","observations":[...]}` | `features`, one vector per observation, as [`Observation::features`] computes it |
//!
//! A request that fails gets `{"error":"..."}` and leaves the session as it was.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::action::{Action, N_ACTIONS};
use crate::evaluate::{Baseline, EvalConfig, Summary, run_baseline};
use crate::features::{FEATURE_SCHEMA_VERSION, N_FEATURES, feature_spec};
use crate::observation::Observation;
use crate::sim::{
    Episode, EpisodeRecord, REWARD_SCALE, RootCause, SimError, StepInfo, action_cost,
    duration_params,
};

/// Error raised by one request.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] serde_json::Error),
    #[error("invalid action {index}: expected a model output index from 0 to {}", N_ACTIONS - 1)]
    InvalidAction { index: u64 },
    #[error("failed to step: no episode, send a reset first")]
    NoEpisode,
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// Result of one request.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// One request line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Spec,
    Reset {
        seed: u64,
        #[serde(default)]
        cause: Option<RootCause>,
    },
    Step {
        action: u64,
    },
    Evaluate {
        policy: Baseline,
        episodes: u64,
        seed: u64,
        #[serde(default)]
        records: bool,
    },
    Summarize {
        records: Vec<EpisodeRecord>,
    },
    Features {
        observations: Vec<Observation>,
    },
}

#[derive(Debug, Serialize)]
struct StepResponse<'a> {
    observation: &'a Observation,
    features: Vec<f32>,
    reward: f32,
    done: bool,
    info: StepResponseInfo<'a>,
}

#[derive(Debug, Serialize)]
struct StepResponseInfo<'a> {
    #[serde(flatten)]
    step: StepInfo,
    cause: RootCause,
    #[serde(skip_serializing_if = "Option::is_none")]
    episode: Option<&'a EpisodeRecord>,
}

/// State of one simulator connection: the episode in progress, if any.
#[derive(Debug, Default)]
pub struct Session {
    episode: Option<Episode>,
}

impl Session {
    /// Handles one request line and returns the response line, without the newline.
    pub fn handle_line(&mut self, line: &str) -> String {
        match self.handle(line) {
            Ok(response) => response.to_string(),
            Err(err) => json!({ "error": err.to_string() }).to_string(),
        }
    }

    fn handle(&mut self, line: &str) -> Result<Value> {
        let request: Request = serde_json::from_str(line)?;
        match request {
            Request::Spec => Ok(spec()),
            Request::Reset { seed, cause } => {
                let episode = match cause {
                    Some(cause) => Episode::with_cause(seed, cause),
                    None => Episode::new(seed),
                };
                let observation = episode.observation();
                let response = json!({
                    "observation": observation,
                    "features": observation.features().to_vec(),
                    "info": { "cause": episode.cause() },
                });
                self.episode = Some(episode);
                Ok(response)
            }
            Request::Step { action: index } => {
                let action = usize::try_from(index)
                    .ok()
                    .and_then(Action::from_index)
                    .ok_or(ProtocolError::InvalidAction { index })?;
                let episode = self.episode.as_mut().ok_or(ProtocolError::NoEpisode)?;
                let step = episode.step(action)?;
                let observation = episode.observation();
                let response = StepResponse {
                    observation,
                    features: observation.features().to_vec(),
                    reward: step.reward,
                    done: step.done,
                    info: StepResponseInfo {
                        step: step.info,
                        cause: episode.cause(),
                        episode: step.done.then(|| episode.record()),
                    },
                };
                Ok(serde_json::to_value(response)?)
            }
            Request::Evaluate {
                policy,
                episodes,
                seed,
                records,
            } => {
                let config = EvalConfig {
                    episodes,
                    first_seed: seed,
                };
                let episodes = run_baseline(policy, config);
                let summary = Summary::from_records(&episodes);
                Ok(if records {
                    json!({ "summary": summary, "records": episodes })
                } else {
                    json!({ "summary": summary })
                })
            }
            Request::Summarize { records } => {
                Ok(json!({ "summary": Summary::from_records(&records) }))
            }
            Request::Features { observations } => {
                let features: Vec<Vec<f32>> = observations
                    .iter()
                    .map(|observation| observation.features().to_vec())
                    .collect();
                Ok(json!({ "features": features }))
            }
        }
    }
}

fn spec() -> Value {
    json!({
        "schema_version": FEATURE_SCHEMA_VERSION,
        "n_features": N_FEATURES,
        "n_actions": N_ACTIONS,
        "actions": Action::ALL.map(Action::as_str),
        "features": feature_spec().names().collect::<Vec<_>>(),
        "reward_scale": REWARD_SCALE,
        "costs": {
            "action_costs": Action::ALL.map(action_cost),
            "escalation_secs": duration_params(Action::Escalate).0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(session: &mut Session, line: &str) -> Value {
        serde_json::from_str(&session.handle_line(line)).expect("response is JSON")
    }

    #[test]
    fn spec_lists_features_and_actions() {
        let response = send(&mut Session::default(), r#"{"op":"spec"}"#);
        assert_eq!(response["n_features"], N_FEATURES);
        assert_eq!(
            response["features"].as_array().map(Vec::len),
            Some(N_FEATURES)
        );
        assert_eq!(response["actions"][0], "observe");
        assert_eq!(response["actions"][6], "escalate");
        assert_eq!(response["schema_version"], FEATURE_SCHEMA_VERSION);
    }

    #[test]
    fn reset_returns_observation_and_features() {
        let response = send(&mut Session::default(), r#"{"op":"reset","seed":3}"#);
        let features = response["features"].as_array().expect("features is a list");
        assert_eq!(features.len(), N_FEATURES);
        let observation: Observation =
            serde_json::from_value(response["observation"].clone()).expect("observation parses");
        assert_eq!(observation, *Episode::new(3).observation());
        let expected = observation.features();
        for (value, expected) in features.iter().zip(expected) {
            assert_eq!(value.as_f64().map(|value| value as f32), Some(expected));
        }
    }

    #[test]
    fn steps_run_until_done_with_episode_record() {
        let mut session = Session::default();
        send(
            &mut session,
            r#"{"op":"reset","seed":11,"cause":"node_problem"}"#,
        );
        let mut last = Value::Null;
        for _ in 0..20 {
            last = send(&mut session, r#"{"op":"step","action":1}"#);
            if last["done"] == true {
                break;
            }
        }
        assert_eq!(last["done"], true);
        assert_eq!(last["info"]["cause"], "node_problem");
        assert!(last["reward"].as_f64().is_some_and(|reward| reward < 0.0));
        let record: EpisodeRecord =
            serde_json::from_value(last["info"]["episode"].clone()).expect("record parses");
        assert!(
            record
                .actions
                .iter()
                .all(|action| *action == Action::Restart)
        );
        let after = send(&mut session, r#"{"op":"step","action":1}"#);
        assert_eq!(
            after["error"],
            "failed to step: the episode is over, reset it first"
        );
    }

    #[test]
    fn step_matches_episode_in_process() {
        let mut session = Session::default();
        send(&mut session, r#"{"op":"reset","seed":21}"#);
        let response = send(&mut session, r#"{"op":"step","action":2}"#);
        let mut episode = Episode::new(21);
        let step = episode.step(Action::Replace).expect("first step");
        assert_eq!(response["done"], step.done);
        assert_eq!(
            response["reward"].as_f64().map(|reward| reward as f32),
            Some(step.reward)
        );
        assert_eq!(response["info"]["action"], "replace");
    }

    #[test]
    fn summarize_matches_evaluate() {
        let mut session = Session::default();
        let evaluated = send(
            &mut session,
            r#"{"op":"evaluate","policy":"rules","episodes":50,"seed":4,"records":true}"#,
        );
        let request = json!({ "op": "summarize", "records": evaluated["records"] });
        let summarized = send(&mut session, &request.to_string());
        assert_eq!(summarized["summary"], evaluated["summary"]);
        assert_eq!(evaluated["summary"]["episodes"], 50);
    }

    #[test]
    fn spec_lists_costs_in_model_order() {
        let response = send(&mut Session::default(), r#"{"op":"spec"}"#);
        let costs = &response["costs"];
        assert_eq!(costs["action_costs"][Action::Restart.index()], 1.0);
        assert_eq!(costs["action_costs"][Action::Escalate.index()], 600.0);
        assert_eq!(costs["escalation_secs"], 900.0);
    }

    #[test]
    fn features_op_computes_each_observation() {
        let request = json!({
            "op": "features",
            "observations": [
                Episode::new(5).observation(),
                { "fault": "hang", "attempt": 1, "suspicion": null },
            ],
        });
        let response = send(&mut Session::default(), &request.to_string());
        let vectors = response["features"].as_array().expect("features is a list");
        assert_eq!(vectors.len(), 2);
        let first: Vec<f32> =
            serde_json::from_value(vectors[0].clone()).expect("a vector of numbers");
        assert_eq!(first, Episode::new(5).observation().features().to_vec());
        let mut hang = Observation::new(crate::FaultKind::Hang);
        hang.desired_replicas = 0;
        hang.suspicion = f32::NAN;
        let second: Vec<f32> =
            serde_json::from_value(vectors[1].clone()).expect("a vector of numbers");
        assert_eq!(second, hang.features().to_vec());
    }

    #[test]
    fn features_op_rejects_invalid_observation() {
        let request = r#"{"op":"features","observations":[{"fault":"meltdown","attempt":1}]}"#;
        let response = send(&mut Session::default(), request);
        let message = response["error"].as_str().expect("error is text");
        assert!(message.contains("unknown variant `meltdown`"), "{message}");
    }

    #[test]
    fn step_before_reset_is_an_error() {
        let response = send(&mut Session::default(), r#"{"op":"step","action":0}"#);
        assert_eq!(
            response["error"],
            "failed to step: no episode, send a reset first"
        );
    }

    #[test]
    fn action_out_of_range_is_an_error() {
        let mut session = Session::default();
        send(&mut session, r#"{"op":"reset","seed":1}"#);
        let response = send(&mut session, r#"{"op":"step","action":7}"#);
        assert_eq!(
            response["error"],
            "invalid action 7: expected a model output index from 0 to 6"
        );
        let still_open = send(&mut session, r#"{"op":"step","action":0}"#);
        assert!(still_open.get("error").is_none(), "{still_open}");
    }

    #[test]
    fn unknown_op_is_an_error() {
        let response = send(&mut Session::default(), r#"{"op":"launch"}"#);
        let message = response["error"].as_str().expect("error is text");
        assert!(
            message.starts_with("invalid request: unknown variant `launch`"),
            "{message}"
        );
    }

    #[test]
    fn malformed_line_is_an_error() {
        let response = send(&mut Session::default(), "{not json");
        let message = response["error"].as_str().expect("error is text");
        assert!(message.starts_with("invalid request:"), "{message}");
    }
}
