//! Serves the fault-and-recovery simulator over JSON lines on stdin and stdout; see
//! `aro_policy::protocol` for the requests.

use std::io::{BufRead, Write};

use anyhow::Context;
use aro_policy::protocol::Session;

fn main() -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut session = Session::default();
    for line in stdin.lines() {
        let line = line.context("failed to read a request from stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let response = session.handle_line(&line);
        writeln!(stdout, "{response}").context("failed to write a response to stdout")?;
        stdout.flush().context("failed to flush stdout")?;
    }
    Ok(())
}
