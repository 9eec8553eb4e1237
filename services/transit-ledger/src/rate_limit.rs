//! A token bucket per principal: each authenticated caller may make `rate` requests a second
//! on average, in bursts of up to `burst`. Time comes from a monotonic source passed in, so
//! tests drive it.
//!
//! Keyed by [`crate::auth::Principal::id`]: principals come only from verified tokens, so the
//! map is bounded by what trusted issuers issue; buckets idle long enough to be full again
//! are dropped when the map grows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Buckets kept before idle ones are swept.
const BUCKETS_SWEEP_AT: usize = 10_000;

/// Per-principal limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests a second, on average.
    pub rate: f64,
    /// Most requests at once after an idle spell.
    pub burst: f64,
}

impl RateLimit {
    /// The default: 1,000 requests a second per principal, bursts of 2,000 (a national
    /// system's HTTP ingest peak with headroom; the broker carries bulk traffic).
    pub const DEFAULT: RateLimit = RateLimit {
        rate: 1_000.0,
        burst: 2_000.0,
    };
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Empty buckets, each starting full.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one request from `key`'s bucket at `now`: `Ok` if allowed, else how long until
    /// one token is back.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { rate, burst } = self.limit;
        let mut buckets = self.buckets.lock();
        if buckets.len() >= BUCKETS_SWEEP_AT && !buckets.contains_key(key) {
            // A bucket that would have refilled is the same as no bucket.
            let full_after = Duration::from_secs_f64(burst / rate);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_principal() {
        let limiter = RateLimiter::new(RateLimit {
            rate: 10.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("tg", t0).is_ok());
        }
        let wait = limiter.check("tg", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // Another principal has its own bucket.
        assert!(limiter.check("bf", t0).is_ok());
        // 100 ms later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.check("tg", t1).is_ok());
        assert!(limiter.check("tg", t1).is_err());
        // Long idle: full again, never more than the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check("tg", t2).is_ok());
        }
        assert!(limiter.check("tg", t2).is_err());
    }
}
