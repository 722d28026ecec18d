use std::time::{Duration, Instant, SystemTime};

/// A point in time on both clocks: the monotonic clock measures silences, the wall clock
/// stamps what other services read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    pub monotonic: Instant,
    pub wall: SystemTime,
}

impl Moment {
    /// Returns the moment `elapsed` later on both clocks.
    pub fn after(self, elapsed: Duration) -> Self {
        Self {
            monotonic: self.monotonic + elapsed,
            wall: self.wall + elapsed,
        }
    }
}
