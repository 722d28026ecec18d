use std::future::Future;

use tracing::debug;

use crate::{Error, Result};

/// Runs `attempt` (a read followed by an optimistic-concurrency write) until it ends in
/// something other than 409 Conflict, at most `attempts` times.
///
/// # Errors
///
/// Returns [`Error::ConflictExhausted`] when every attempt ended in a conflict, and any other
/// error of an attempt at once.
pub(crate) async fn retry_on_conflict<T, F, Fut>(
    object: &str,
    attempts: u32,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let attempts = attempts.max(1);
    for number in 1..=attempts {
        match attempt().await {
            Err(error) if error.is_conflict() => {
                debug!(%object, attempt = number, attempts, "conflict on update, reading the object again");
            }
            other => return other,
        }
    }
    Err(Error::ConflictExhausted {
        object: object.to_owned(),
        attempts,
    })
}
