//! Token bucket: a sustained rate in bytes per second with a burst. Used
//! to keep scrubbing and repair from starving client traffic.

use std::time::{Duration, Instant};

/// A token bucket. `rate == 0` means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full: the first `burst` bytes pass at once.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(1);
        Self {
            rate,
            burst,
            tokens: burst as f64,
            last: now,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst as f64);
    }

    /// Takes `amount` tokens (going into debt if needed) and returns how
    /// long to wait before the work they pay for may start, so that over
    /// any interval at most `rate × interval + burst` passes. An amount
    /// above the burst is allowed and simply waits longer.
    pub fn reserve(&mut self, amount: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= amount as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }

    /// [`Self::reserve`] and sleep.
    pub async fn take(&mut self, amount: u64) {
        let wait = self.reserve(amount, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated clock: work starts only when `reserve` allows; the bytes
    /// started by any time t never exceed rate × t + burst.
    #[test]
    fn never_more_than_rate_times_time_plus_burst() {
        let start = Instant::now();
        let (rate, burst) = (1_000_000u64, 256_000u64);
        let mut bucket = TokenBucket::new(rate, burst, start);
        let mut now = start;
        let mut started = 0u64;
        for i in 0..500u64 {
            let amount = 10_000 + (i * 7919) % 90_000; // uneven sizes
            now += bucket.reserve(amount, now);
            started += amount;
            let elapsed = now.duration_since(start).as_secs_f64();
            // Work started at `now` counts against the budget at `now`.
            assert!(
                started as f64 <= rate as f64 * elapsed + burst as f64 + 1.0,
                "{started} bytes by {elapsed}s"
            );
        }
        // And it is not needlessly slow: within 1% of the rate.
        let elapsed = now.duration_since(start).as_secs_f64();
        assert!(
            started as f64 >= rate as f64 * elapsed * 0.99,
            "{started} in {elapsed}s"
        );
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, now);
        assert_eq!(bucket.reserve(u64::MAX / 2, now), Duration::ZERO);
    }
}
