//! CSRF protection for server-rendered forms: a double-submit token.
//!
//! The token lives in an HttpOnly, SameSite=Lax cookie and in a hidden form field; a POST is
//! accepted only when both are present and equal. Another site can neither read the cookie nor
//! make the browser send it on a cross-site POST.

use axum::http::HeaderMap;

use crate::http::cookies::{CSRF_COOKIE, read_cookie, set_cookie};
use crate::secret::{constant_time_eq, random_alphanumeric};

pub const FIELD: &str = "csrf_token";
const TOKEN_LEN: usize = 32;
const MAX_AGE_SECS: i64 = 12 * 3600;

/// The token for a form: the browser's existing one, or a new one with the cookie to set.
pub fn token_for(headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
    match read_cookie(headers, CSRF_COOKIE).filter(|t| t.len() == TOKEN_LEN) {
        Some(token) => (token, None),
        None => {
            let token = random_alphanumeric(TOKEN_LEN);
            let cookie = set_cookie(CSRF_COOKIE, &token, MAX_AGE_SECS, "Lax", secure);
            (token, Some(cookie))
        }
    }
}

/// Whether a submitted form carries the browser's token.
pub fn verify(headers: &HeaderMap, submitted: &str) -> bool {
    read_cookie(headers, CSRF_COOKIE).is_some_and(|cookie| {
        !submitted.is_empty() && constant_time_eq(cookie.as_bytes(), submitted.as_bytes())
    })
}
