//! In-process rate limiting: a fixed window of attempts per key (a client IP, a client id).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::clock::SharedClock;

/// Beyond this many tracked keys, expired windows are swept on the next check.
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    clock: SharedClock,
    windows: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    count: u32,
}

/// Refused: the caller may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RateLimiter {
    pub fn new(limit: u32, window: Duration, clock: SharedClock) -> Self {
        Self {
            limit,
            window,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt for `key`, refusing it once the window's limit is reached.
    pub fn check(&self, key: &str) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            let window = self.window;
            windows.retain(|_, w| now - w.started < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now - entry.started >= self.window {
            *entry = Window {
                started: now,
                count: 0,
            };
        }
        if entry.count >= self.limit {
            let remaining = (entry.started + self.window - now).num_seconds().max(1);
            return Err(RetryAfter(remaining.unsigned_abs()));
        }
        entry.count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn refuses_past_the_limit_until_the_window_ends() {
        let clock = ManualClock::new(Utc::now());
        let limiter = RateLimiter::new(2, Duration::seconds(60), Arc::new(clock.clone()));
        assert!(limiter.check("ip").is_ok());
        assert!(limiter.check("ip").is_ok());
        assert_eq!(limiter.check("ip"), Err(RetryAfter(60)));
        assert!(limiter.check("other").is_ok());
        clock.advance(Duration::seconds(45));
        assert_eq!(limiter.check("ip"), Err(RetryAfter(15)));
        clock.advance(Duration::seconds(15));
        assert!(limiter.check("ip").is_ok());
    }
}
