//! Reading an instance's standard output and error line by line.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tracing::debug;

use crate::logs::{LogSink, Stream};

/// Maximum length of one log line; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads the next line into `line`, without its newline, keeping at most `max` bytes of it.
/// Returns `None` at the end of the input, otherwise whether the line was truncated. A last
/// line without a newline is returned too.
///
/// # Errors
///
/// Returns the read error of the underlying pipe.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut truncated = false;
    let mut read_any = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let newline = buffer.iter().position(|&byte| byte == b'\n');
        let chunk = &buffer[..newline.unwrap_or(buffer.len())];
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            truncated = true;
        } else {
            line.extend_from_slice(chunk);
        }
        let consumed = chunk.len() + usize::from(newline.is_some());
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(Some(truncated));
        }
    }
}

/// Forwards every line of `pipe` to `sink` until the pipe closes.
pub(in crate::backend) async fn pump(
    pipe: impl AsyncRead + Unpin,
    workload: String,
    instance: String,
    stream: Stream,
    sink: LogSink,
) {
    let mut reader = BufReader::with_capacity(MAX_LINE, pipe);
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, MAX_LINE, &mut line).await {
            Ok(Some(truncated)) => {
                sink.push(&workload, &instance, stream, line.clone(), truncated);
            }
            Ok(None) => return,
            Err(error) => {
                debug!(%workload, %instance, %error, "reading instance output failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(truncated) = read_line(&mut reader, max, &mut line)
            .await
            .expect("reading from memory cannot fail")
        {
            out.push((String::from_utf8_lossy(&line).into_owned(), truncated));
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_on_newlines() {
        let read = lines(b"first\nsecond line\n\nlast", 100).await;
        assert_eq!(
            read,
            [
                ("first".to_owned(), false),
                ("second line".to_owned(), false),
                (String::new(), false),
                ("last".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn long_lines_are_truncated() {
        let read = lines(b"0123456789\nabc\n", 6).await;
        assert_eq!(
            read,
            [("012345".to_owned(), true), ("abc".to_owned(), false)]
        );
    }

    #[tokio::test]
    async fn empty_input_has_no_lines() {
        assert!(lines(b"", 10).await.is_empty());
    }
}
