//! A token bucket that paces work measured in units, such as bytes read for hashing.

use std::time::{Duration, Instant};

/// Refills at `rate` units per second up to one second's worth. Taking more units than the
/// bucket contains is allowed: the balance goes negative and the caller waits until it would be
/// back at zero, so any amount can be taken and the average rate still holds.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// Creates a full bucket at `now` that refills at `rate` units per second. A rate of 0 is
    /// raised to 1, so the bucket never waits forever.
    pub fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1) as f64;
        Self {
            rate,
            capacity: rate,
            tokens: rate,
            updated: now,
        }
    }

    /// Takes `units` at `now` and returns how long the caller must wait before it goes on.
    pub fn take(&mut self, units: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = self.updated.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens -= units as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_bucket_lets_one_second_through() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1000, now);
        assert_eq!(bucket.take(600, now), Duration::ZERO);
        assert_eq!(bucket.take(400, now), Duration::ZERO);
        assert_eq!(bucket.take(500, now), Duration::from_millis(500));
    }

    #[test]
    fn debt_is_paid_by_waiting() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1000, now);
        assert_eq!(bucket.take(3000, now), Duration::from_secs(2));
        let later = now + Duration::from_secs(2);
        assert_eq!(bucket.take(1000, later), Duration::from_secs(1));
    }

    #[test]
    fn idle_time_refills_up_to_capacity() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1000, now);
        bucket.take(1000, now);
        let much_later = now + Duration::from_secs(60);
        assert_eq!(bucket.take(1000, much_later), Duration::ZERO);
        assert_eq!(bucket.take(1000, much_later), Duration::from_secs(1));
    }

    #[test]
    fn zero_rate_still_moves() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, now);
        assert_eq!(bucket.take(3, now), Duration::from_secs(2));
    }
}
