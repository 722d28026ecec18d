//! The `aro-sim` binary serves its JSON-lines protocol over real pipes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use aro_policy::sim::Episode;
use aro_policy::{Action, N_FEATURES};
use serde_json::Value;

struct Sim {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aro-sim"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aro-sim");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Sim {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("write request");
        self.stdin.flush().expect("flush request");
        let mut response = String::new();
        self.stdout.read_line(&mut response).expect("read response");
        serde_json::from_str(&response).expect("response is one JSON line")
    }

    fn finish(self) -> std::process::ExitStatus {
        let Sim {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        child.wait().expect("wait for aro-sim")
    }
}

#[test]
fn binary_plays_an_episode_like_the_library() {
    let mut sim = Sim::start();
    let reset = sim.send(r#"{"op":"reset","seed":1234}"#);
    let features = reset["features"].as_array().expect("features is a list");
    assert_eq!(features.len(), N_FEATURES);

    let mut episode = Episode::new(1234);
    let actions = [
        Action::Observe,
        Action::Restart,
        Action::Move,
        Action::Escalate,
    ];
    for action in actions {
        let response = sim.send(&format!(r#"{{"op":"step","action":{}}}"#, action.index()));
        let step = episode.step(action).expect("library episode is open");
        assert_eq!(response["done"], step.done, "after {action}");
        let reward = response["reward"].as_f64().map(|reward| reward as f32);
        assert_eq!(reward, Some(step.reward), "after {action}");
        if step.done {
            break;
        }
    }
    assert!(episode.is_done());
    assert!(sim.finish().success());
}

#[test]
fn binary_reports_errors_and_keeps_serving() {
    let mut sim = Sim::start();
    let response = sim.send(r#"{"op":"step","action":1}"#);
    assert_eq!(
        response["error"],
        "failed to step: no episode, send a reset first"
    );
    let response = sim.send(r#"{"op":"reset","seed":"many"}"#);
    let message = response["error"].as_str().expect("error is text");
    assert!(message.starts_with("invalid request:"), "{message}");
    let response = sim.send(r#"{"op":"spec"}"#);
    assert_eq!(response["n_actions"], 7);
    assert!(sim.finish().success());
}

#[test]
fn binary_ignores_blank_lines() {
    let mut sim = Sim::start();
    writeln!(sim.stdin).expect("write blank line");
    let response = sim.send(r#"{"op":"spec"}"#);
    assert_eq!(response["n_features"], N_FEATURES);
    assert!(sim.finish().success());
}
