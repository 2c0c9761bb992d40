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
    fn ipv6_counts_by_its_64() {
        assert_eq!(ip_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:ffff:1:2:3"), ip_key("2001:db8:1:2::9"));
        assert_ne!(ip_key("2001:db8:1:3::1"), ip_key("2001:db8:1:2::1"));
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("192.0.2.7"), "192.0.2.7");
    }
}
