//! How long a fetched metadata document is used before it is fetched again: its HTTP caching
//! headers (RFC 9111 §5.2 `Cache-Control`, §5.3 `Expires`), clamped to between 5 minutes and
//! 24 hours; and a bounded in-memory cache of validated documents.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use reqwest::header::{CACHE_CONTROL, DATE, EXPIRES, HeaderMap};

/// Shortest use of a document, even one marked `no-store`: the authorization and token
/// requests of one sign-in must see the same document, and a stranger's URL must not make the
/// server fetch on every request.
pub const MIN_LIFETIME: Duration = Duration::minutes(5);
/// Longest use of a document, so a client's changes (new redirect URIs, rotated keys) arrive.
pub const MAX_LIFETIME: Duration = Duration::hours(24);
/// At most this many documents are kept; beyond it the one expiring first is dropped.
pub const MAX_ENTRIES: usize = 1024;

/// The lifetime the response headers ask for, clamped to `MIN_LIFETIME..=MAX_LIFETIME`.
/// Without caching headers a document is used for `MIN_LIFETIME`.
pub fn lifetime(headers: &HeaderMap, now: DateTime<Utc>) -> Duration {
    let asked = cache_control(headers).or_else(|| expires(headers, now));
    asked
        .unwrap_or(MIN_LIFETIME)
        .clamp(MIN_LIFETIME, MAX_LIFETIME)
}

/// `no-store`/`no-cache` ask for no reuse; `max-age` (or `s-maxage`, which a shared cache like
/// this one prefers, RFC 9111 §5.2.2.10) for its seconds.
fn cache_control(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    let mut shared = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (
                    n.trim().to_owned(),
                    Some(a.trim().trim_matches('"').to_owned()),
                ),
                None => (directive.clone(), None),
            };
            let seconds = || arg.as_deref().and_then(|a| a.parse::<i64>().ok());
            match name.as_str() {
                "no-store" | "no-cache" => return Some(Duration::zero()),
                "max-age" => max_age = seconds(),
                "s-maxage" => shared = seconds(),
                _ => {}
            }
        }
    }
    shared
        .or(max_age)
        .map(|s| Duration::seconds(s.clamp(0, MAX_LIFETIME.num_seconds())))
}

/// `Expires` relative to the response's `Date` (RFC 9111 §4.2.1), or to now without one.
fn expires(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let date = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .map(|d| d.with_timezone(&Utc))
    };
    // An unreadable Expires means "already expired" (RFC 9111 §5.3).
    let Some(expires) = date(EXPIRES) else {
        return headers.contains_key(EXPIRES).then(Duration::zero);
    };
    let base = date(DATE).unwrap_or(now);
    Some((expires - base).max(Duration::zero()))
}

/// Documents by URL, each with the time it stops being used.
#[derive(Debug)]
pub struct Cache<T> {
    entries: HashMap<String, (T, DateTime<Utc>)>,
}

impl<T: Clone> Cache<T> {
    pub fn new() -> Self {
        Cache {
            entries: HashMap::new(),
        }
    }

    /// The document for `url`, if it is still fresh at `now`.
    pub fn get(&self, url: &str, now: DateTime<Utc>) -> Option<T> {
        self.entries
            .get(url)
            .filter(|(_, until)| now < *until)
            .map(|(doc, _)| doc.clone())
    }

    /// Keeps `doc` until `until`, first making room: expired entries go, then the one expiring
    /// soonest.
    pub fn insert(&mut self, url: String, doc: T, until: DateTime<Utc>, now: DateTime<Utc>) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&url) {
            self.entries.retain(|_, (_, u)| now < *u);
            if self.entries.len() >= MAX_ENTRIES {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| k.clone());
                if let Some(key) = soonest {
                    self.entries.remove(&key);
                }
            }
        }
        self.entries.insert(url, (doc, until));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<T: Clone> Default for Cache<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(reqwest::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), HeaderValue::from_static(value));
        }
        h
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn caching_headers_are_honoured_within_the_bounds() {
        let now = at("2026-12-05T10:00:00Z");
        let life = |pairs: &[(reqwest::header::HeaderName, &'static str)]| {
            lifetime(&headers(pairs), now).num_seconds()
        };
        assert_eq!(life(&[]), 300);
        assert_eq!(life(&[(CACHE_CONTROL, "public, max-age=3600")]), 3600);
        assert_eq!(life(&[(CACHE_CONTROL, "max-age=60")]), 300);
        assert_eq!(life(&[(CACHE_CONTROL, "max-age=999999")]), 86_400);
        assert_eq!(life(&[(CACHE_CONTROL, "no-store")]), 300);
        assert_eq!(life(&[(CACHE_CONTROL, "max-age=600, s-maxage=7200")]), 7200);
        assert_eq!(life(&[(CACHE_CONTROL, "max-age=-5")]), 300);
        assert_eq!(
            life(&[
                (EXPIRES, "Sat, 05 Dec 2026 12:00:00 GMT"),
                (DATE, "Sat, 05 Dec 2026 10:00:00 GMT"),
            ]),
            7200
        );
        assert_eq!(life(&[(EXPIRES, "Sat, 05 Dec 2026 11:00:00 GMT")]), 3600);
        assert_eq!(life(&[(EXPIRES, "0")]), 300);
        // Cache-Control wins over Expires (RFC 9111 §5.3).
        assert_eq!(
            life(&[
                (CACHE_CONTROL, "max-age=1800"),
                (EXPIRES, "Sun, 06 Dec 2026 10:00:00 GMT")
            ]),
            1800
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_soonest_expiring() {
        let now = at("2026-12-05T10:00:00Z");
        let mut cache = Cache::new();
        for i in 0..MAX_ENTRIES {
            let until = now + Duration::minutes(10 + i as i64);
            cache.insert(format!("https://c{i}.example/m"), i, until, now);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        cache.insert(
            "https://new.example/m".into(),
            9999,
            now + Duration::hours(1),
            now,
        );
        assert_eq!(cache.len(), MAX_ENTRIES);
        assert_eq!(cache.get("https://c0.example/m", now), None);
        assert_eq!(cache.get("https://c1.example/m", now), Some(1));
        assert_eq!(cache.get("https://new.example/m", now), Some(9999));
        assert_eq!(
            cache.get("https://c1.example/m", now + Duration::minutes(11)),
            None
        );
    }
}
