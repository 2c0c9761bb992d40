//! In-process rate limiting: a fixed window of attempts per key (a client IP, a client id).

use std::collections::HashMap;
use std::net::IpAddr;
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

/// Failures per key (an account) with an exponential backoff: the first `free` failures cost
/// nothing, each one after that blocks the key for twice as long as the one before (1 s, 2 s,
/// 4 s ...) up to `max_wait`. A success, or `forget_after` without a failure, starts over.
#[derive(Debug)]
pub struct FailureBackoff {
    free: u32,
    max_wait: Duration,
    forget_after: Duration,
    clock: SharedClock,
    entries: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    blocked_until: DateTime<Utc>,
}

impl FailureBackoff {
    pub fn new(free: u32, max_wait: Duration, clock: SharedClock) -> Self {
        Self {
            free,
            max_wait,
            forget_after: Duration::hours(1).max(max_wait * 2),
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses an attempt for `key` while its backoff runs.
    pub fn check(&self, key: &str) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        match self.lock().get(key) {
            Some(f) if f.blocked_until > now => {
                let remaining = (f.blocked_until - now).num_seconds().max(1);
                Err(RetryAfter(remaining.unsigned_abs()))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed attempt for `key`.
    pub fn fail(&self, key: &str) {
        let now = self.clock.now();
        let forget_after = self.forget_after;
        let mut entries = self.lock();
        if entries.len() > SWEEP_THRESHOLD {
            entries.retain(|_, f| now - f.last < forget_after);
        }
        let entry = entries.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: now,
        });
        if now - entry.last >= forget_after {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count > self.free {
            let doublings = (entry.count - self.free - 1).min(30);
            let wait = Duration::seconds(1_i64 << doublings).min(self.max_wait);
            entry.blocked_until = now + wait;
        }
    }

    /// Records a successful attempt: `key` starts over.
    pub fn succeed(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// The part of a client address a limit counts: an IPv4 address, or an IPv6 address's /64.
/// One IPv6 host is usually given a whole /64, so counting single addresses would let it rotate
/// through 2^64 of them. An IPv4-mapped IPv6 address counts as its IPv4 address; a string that
/// is no IP address counts as itself.
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => ip.to_owned(),
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

    #[test]
    fn backoff_doubles_after_the_free_failures_and_resets_on_success() {
        let clock = ManualClock::new(Utc::now());
        let backoff = FailureBackoff::new(2, Duration::seconds(5), Arc::new(clock.clone()));
        backoff.fail("a");
        backoff.fail("a");
        assert!(backoff.check("a").is_ok(), "the free failures cost nothing");
        backoff.fail("a");
        assert_eq!(backoff.check("a"), Err(RetryAfter(1)));
        clock.advance(Duration::seconds(1));
        assert!(backoff.check("a").is_ok());
        backoff.fail("a");
        assert_eq!(backoff.check("a"), Err(RetryAfter(2)));
        backoff.fail("a");
        backoff.fail("a");
        backoff.fail("a");
        assert_eq!(backoff.check("a"), Err(RetryAfter(5)), "capped");
        assert!(backoff.check("b").is_ok(), "per key");
        backoff.succeed("a");
        assert!(backoff.check("a").is_ok());
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        assert_eq!(ip_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:ffff:1:2:3"), ip_key("2001:db8:1:2::9"));
        assert_ne!(ip_key("2001:db8:1:3::1"), ip_key("2001:db8:1:2::1"));
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("192.0.2.7"), "192.0.2.7");
    }
}
