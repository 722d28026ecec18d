//! A burst of error lines on standard error, as a service writes when its database goes away.

use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// Lines written per write call.
const BATCH: u32 = 256;

/// Returns line `number` of a storm: three error templates in turn, each with varying values.
pub(crate) fn line(number: u32) -> String {
    let request = 4711 + u64::from(number);
    match number % 3 {
        0 => format!("ERROR request {request} failed: connection refused to db-1:5432\n"),
        1 => format!("ERROR request {request} failed: upstream timed out after 3000 ms\n"),
        _ => format!(
            "ERROR pool exhausted: {} of 32 connections busy, request {request} rejected\n",
            32 - number % 4
        ),
    }
}

/// Writes `lines` error lines to standard error, as fast as the pipe takes them. Writes go
/// through Tokio's blocking pool, so a slow reader does not stall the heartbeats.
pub(crate) async fn write(lines: u32) {
    let mut stderr = tokio::io::stderr();
    let mut written = 0;
    while written < lines {
        let batch_end = (written + BATCH).min(lines);
        let text: String = (written..batch_end).map(line).collect();
        if let Err(error) = stderr.write_all(text.as_bytes()).await {
            warn!(%error, written, "writing the log storm failed");
            return;
        }
        written = batch_end;
    }
    let _ = stderr.flush().await;
    info!(lines, "log storm written");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_rotate_three_templates() {
        assert_eq!(
            line(0),
            "ERROR request 4711 failed: connection refused to db-1:5432\n"
        );
        assert!(line(1).contains("timed out"));
        assert!(line(2).starts_with("ERROR pool exhausted"));
        assert!(line(3).contains("connection refused"));
    }
}
