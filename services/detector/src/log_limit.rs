//! Rate limits for log lines about repeated events, such as bad input that a client sends in a
//! loop: one line per interval, with the count of the lines held back in between.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Lets one log line through per interval and counts the lines held back.
#[derive(Debug)]
pub(crate) struct LogLimit {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// Returns `Some(held_back)` when a line may be logged now, with the number of lines held
    /// back since the previous one, and `None` when this line must be held back.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .expect("no thread panics while holding the log limit lock");
        let now = Instant::now();
        if state
            .last_logged
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            state.suppressed += 1;
            return None;
        }
        state.last_logged = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_passes() {
        let limit = LogLimit::new(Duration::from_secs(10));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(limit.admit(), Some(2));
        assert_eq!(limit.admit(), None);
    }
}
