//! Token buckets keyed by a string (a user id, an admin id, a client IP): `limit` events
//! per `window`, refilled continuously so a client that paces itself is never blocked.

use std::time::{Duration, Instant};

use crate::hash::NameMap;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A wait as the `retry_after` milliseconds clients are told: at least 1, so that a
/// client never retries at once.
pub fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

pub struct RateLimiter {
    capacity: f64,
    /// Tokens regained per second.
    refill: f64,
    buckets: NameMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        let capacity = f64::from(limit.max(1));
        RateLimiter {
            capacity,
            refill: capacity / window.as_secs_f64().max(0.001),
            buckets: NameMap::default(),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        let bucket = match self.buckets.get_mut(key) {
            Some(bucket) => bucket,
            None => self.buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: self.capacity,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.refill).min(self.capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.refill))
        }
    }

    /// Forgets keys whose bucket has refilled: they would behave the same when new.
    pub fn cleanup(&mut self, now: Instant) {
        let (capacity, refill) = (self.capacity, self.refill);
        self.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens + elapsed * refill < capacity
        });
    }

    /// Keys with a bucket: what the limiter holds in memory.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_says_when_to_retry() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(3));
        for _ in 0..3 {
            assert_eq!(limiter.check("ann", start), Ok(()));
        }
        let wait = limiter.check("ann", start).expect_err("fourth is over");
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(limiter.check("bob", start), Ok(()), "keys are independent");
        assert_eq!(limiter.check("ann", start + Duration::from_secs(1)), Ok(()));
        assert!(limiter
            .check("ann", start + Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn cleanup_forgets_only_refilled_buckets() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, Duration::from_secs(10));
        limiter.check("ann", start).expect("allowed");
        limiter
            .check("bob", start + Duration::from_secs(9))
            .expect("allowed");
        limiter.cleanup(start + Duration::from_secs(10));
        assert_eq!(limiter.tracked(), 1, "ann refilled, bob not yet");
    }
}
