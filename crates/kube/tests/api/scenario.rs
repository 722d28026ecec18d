//! A scripted mock API server: each test lists the calls it expects, in order, with the
//! reply to each. The server fails the test on a call that differs from the next expected
//! one, on a call past the end of the script, and on expected calls that never came.

use std::collections::BTreeSet;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

/// Time the server has to see its last client go after the test is done.
const VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One check of a call's JSON body.
#[derive(Debug)]
enum BodyCheck {
    /// The body equals this JSON.
    Exact(Value),
    /// Every field of this JSON is in the body with the same value; arrays match element by
    /// element.
    Contains(Value),
    /// The value at this JSON pointer equals this JSON.
    At(String, Value),
}

/// The reply to a call.
#[derive(Debug)]
enum Reply {
    Json(StatusCode, Value),
    /// The request's body sent back, as the API server does for a create or an update.
    Echo(StatusCode),
    /// A plain-text body, as the log endpoint sends.
    Text(StatusCode, String),
}

#[derive(Debug)]
struct Expected {
    method: Method,
    path: String,
    query: Option<BTreeSet<(String, String)>>,
    body: Vec<BodyCheck>,
    reply: Reply,
}

impl Expected {
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The calls a test expects, in order.
#[derive(Debug, Default)]
pub(crate) struct Scenario {
    calls: Vec<Expected>,
}

impl Scenario {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn call(mut self, method: Method, path: &str) -> Self {
        self.calls.push(Expected {
            method,
            path: path.to_owned(),
            query: None,
            body: Vec::new(),
            reply: Reply::Json(StatusCode::OK, Value::Null),
        });
        self
    }

    pub(crate) fn get(self, path: &str) -> Self {
        self.call(Method::GET, path)
    }

    pub(crate) fn post(self, path: &str) -> Self {
        self.call(Method::POST, path)
    }

    pub(crate) fn put(self, path: &str) -> Self {
        self.call(Method::PUT, path)
    }

    pub(crate) fn patch(self, path: &str) -> Self {
        self.call(Method::PATCH, path)
    }

    pub(crate) fn delete(self, path: &str) -> Self {
        self.call(Method::DELETE, path)
    }

    fn last(&mut self) -> &mut Expected {
        self.calls
            .last_mut()
            .expect("a call is declared before its details")
    }

    /// Sets the query the last call must carry, as `key=value&...` (decoded values, any order).
    pub(crate) fn query(mut self, query: &str) -> Self {
        self.last().query = Some(parse_query(query));
        self
    }

    /// Sets the exact JSON body of the last call.
    pub(crate) fn body(mut self, body: Value) -> Self {
        self.last().body.push(BodyCheck::Exact(body));
        self
    }

    /// Sets fields the JSON body of the last call must contain.
    pub(crate) fn body_contains(mut self, body: Value) -> Self {
        self.last().body.push(BodyCheck::Contains(body));
        self
    }

    /// Sets the exact JSON value at `pointer` in the body of the last call.
    pub(crate) fn body_at(mut self, pointer: &str, value: Value) -> Self {
        self.last()
            .body
            .push(BodyCheck::At(pointer.to_owned(), value));
        self
    }

    /// Replies to the last call with `status` and a JSON body.
    pub(crate) fn reply(mut self, status: u16, body: Value) -> Self {
        self.last().reply = Reply::Json(status_code(status), body);
        self
    }

    /// Replies to the last call with its own body.
    pub(crate) fn echo(mut self, status: u16) -> Self {
        self.last().reply = Reply::Echo(status_code(status));
        self
    }

    /// Replies to the last call with a plain-text body.
    pub(crate) fn reply_text(mut self, status: u16, text: &str) -> Self {
        self.last().reply = Reply::Text(status_code(status), text.to_owned());
        self
    }

    /// Starts the mock server, builds the subject under test from a client connected to it,
    /// runs `act` on the subject, drops the subject and verifies the calls made.
    pub(crate) async fn run<S, R>(
        self,
        subject: impl FnOnce(Client) -> S,
        act: impl AsyncFnOnce(&S) -> R,
    ) -> R {
        let (client, server) = self.start();
        let subject = subject(client);
        let result = act(&subject).await;
        drop(subject);
        server.verify().await;
        result
    }

    /// Starts the mock server and returns a client connected to it.
    pub(crate) fn start(self) -> (Client, Server) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let task = tokio::spawn(serve(self.calls, handle));
        (Client::new(service, "default"), Server { task })
    }
}

/// The running mock server.
#[derive(Debug)]
pub(crate) struct Server {
    task: JoinHandle<()>,
}

impl Server {
    /// Waits until every client is dropped and fails the test when a call was missing,
    /// unexpected or different from the script. Drop every client, and every value that contains one, first.
    pub(crate) async fn verify(self) {
        let finished = tokio::time::timeout(VERIFY_TIMEOUT, self.task)
            .await
            .expect("the mock API server still has a client: drop every client before verify()");
        if let Err(error) = finished {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

async fn serve(calls: Vec<Expected>, mut handle: Handle<Request<Body>, Response<Body>>) {
    let total = calls.len();
    for (index, expected) in calls.into_iter().enumerate() {
        let number = index + 1;
        let Some((request, respond)) = handle.next_request().await else {
            panic!(
                "call {number} of {total} never came: expected {}",
                expected.describe()
            );
        };
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect_bytes()
            .await
            .expect("the request body is readable");
        let described = format!("{} {}", parts.method, parts.uri);
        assert_eq!(
            parts.method, expected.method,
            "call {number}: method of {described}"
        );
        assert_eq!(
            parts.uri.path(),
            expected.path,
            "call {number}: path of {described}"
        );
        if let Some(query) = &expected.query {
            let actual = parse_query(parts.uri.query().unwrap_or_default());
            assert_eq!(&actual, query, "call {number}: query of {described}");
        }
        for check in &expected.body {
            let actual = json(&bytes, &described);
            match check {
                BodyCheck::Exact(body) => {
                    assert_eq!(&actual, body, "call {number}: body of {described}");
                }
                BodyCheck::Contains(body) => {
                    if let Err(at) = contains(&actual, body, String::new()) {
                        panic!(
                            "call {number}: body of {described} differs at {at}\n expected to contain: {body}\n actual: {actual}"
                        );
                    }
                }
                BodyCheck::At(pointer, value) => {
                    assert_eq!(
                        actual.pointer(pointer),
                        Some(value),
                        "call {number}: {pointer} in the body of {described}"
                    );
                }
            }
        }
        let response = match expected.reply {
            Reply::Json(status, body) => {
                response(status, serde_json::to_vec(&body).expect("JSON encodes"))
            }
            Reply::Echo(status) => response(status, bytes.to_vec()),
            Reply::Text(status, text) => response(status, text.into_bytes()),
        };
        respond.send_response(response);
    }
    if let Some((request, _)) = handle.next_request().await {
        panic!(
            "unexpected call after the {total} expected ones: {} {}",
            request.method(),
            request.uri()
        );
    }
}

fn response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("the response is valid")
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).expect("the status code is valid")
}

fn json(bytes: &[u8], described: &str) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|error| panic!("body of {described} is not JSON: {error}"))
}

fn parse_query(query: &str) -> BTreeSet<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex =
                    std::str::from_utf8(&bytes[index + 1..index + 3]).expect("escape is ASCII");
                out.push(u8::from_str_radix(hex, 16).expect("escape is hexadecimal"));
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).expect("the decoded query is UTF-8")
}

/// Checks that `actual` contains `expected`; returns the JSON pointer of the first
/// difference.
fn contains(actual: &Value, expected: &Value, at: String) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let path = format!("{at}/{key}");
                let Some(found) = actual.get(key) else {
                    return Err(format!("{path} (missing)"));
                };
                contains(found, value, path)?;
            }
            Ok(())
        }
        (Value::Array(actual), Value::Array(expected)) if actual.len() == expected.len() => {
            for (index, (found, value)) in actual.iter().zip(expected).enumerate() {
                contains(found, value, format!("{at}/{index}"))?;
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(if at.is_empty() { "/".to_owned() } else { at }),
    }
}
