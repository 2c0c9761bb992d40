//! CSRF protection for server-rendered forms.
//!
//! Signed in, a form's token is an HMAC keyed by the browser's session token (OWASP's signed
//! double-submit): a token taken from one session is worthless in another, and no other site can
//! read the HttpOnly session cookie to compute it. Before sign-in (the sign-in and setup forms)
//! there is no session: the token is a random value also kept in an HttpOnly, SameSite=Lax cookie
//! (double submit), named with the `__Host-` prefix over https so neither a sibling subdomain nor
//! a plain-http response can plant one. On top, every state-changing form refuses a browser that
//! says the request came from another site (`Sec-Fetch-Site`, else `Origin`).

use axum::http::{HeaderMap, header};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http::cookies::{CSRF_COOKIE, SESSION_COOKIE, read_cookie, set_cookie};
use crate::secret::{constant_time_eq, random_alphanumeric};
use crate::web::AppState;

pub const FIELD: &str = "csrf_token";
/// The pre-session cookie's name over https: the `__Host-` prefix requires `Secure`, `Path=/`
/// and no `Domain` (RFC 6265bis §4.1.3.2), which `set_cookie` gives.
const HOST_CSRF_COOKIE: &str = "__Host-coder_csrf";
const KEY_LEN: usize = 32;
const MAX_AGE_SECS: i64 = 12 * 3600;
/// Separates this use of the session token as a key from any other.
const CONTEXT: &[u8] = b"coder form csrf v1";

/// The pre-session cookie's name: prefixed when cookies are `Secure`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        HOST_CSRF_COOKIE
    } else {
        CSRF_COOKIE
    }
}

/// The token bound to `key`.
fn sign(key: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        // HMAC takes keys of any length; this cannot happen.
        return String::new();
    };
    mac.update(CONTEXT);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The token this browser's forms carry: bound to its session, else its pre-session cookie.
fn expected(headers: &HeaderMap, secure: bool) -> Option<String> {
    match read_cookie(headers, SESSION_COOKIE) {
        Some(session) => Some(sign(&session)),
        None => read_cookie(headers, cookie_name(secure)).filter(|k| k.len() == KEY_LEN),
    }
}

/// The token for a form, with the pre-session cookie to set when the browser has neither a
/// session nor that cookie yet.
pub fn token_for(headers: &HeaderMap, secure: bool) -> (String, Option<String>) {
    match expected(headers, secure) {
        Some(token) => (token, None),
        None => {
            let token = random_alphanumeric(KEY_LEN);
            let cookie = set_cookie(cookie_name(secure), &token, MAX_AGE_SECS, "Lax", secure);
            (token, Some(cookie))
        }
    }
}

/// Whether a submitted form comes from this site and carries the token bound to this browser.
pub fn verify(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    let secure = state.settings.secure_cookies();
    same_origin(state, headers)
        && !submitted.is_empty()
        && expected(headers, secure)
            .is_some_and(|token| constant_time_eq(token.as_bytes(), submitted.as_bytes()))
}

/// Whether the browser says the request comes from this site. Fetch Metadata first: only
/// `same-origin` (and `none`, a navigation the user started) pass, so a sibling subdomain
/// (`same-site`) does not. Without it, `Origin` must be the access URL's origin or this request's
/// own host. A client that sends neither is no browser, and the token alone protects it.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = url::Url::parse(origin) else {
        return false; // `null`, or garbage: an opaque origin is never ours.
    };
    let serialized = origin.origin().ascii_serialization();
    if serialized == state.settings.access_url.origin().ascii_serialization() {
        return true;
    }
    let origin_host = match (origin.host_str(), origin.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => return false,
    };
    text(header::HOST).is_some_and(|host| host.eq_ignore_ascii_case(&origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_bound_to_the_session_over_the_pre_session_cookie() {
        let pre = "abcdefghijklmnopqrstuvwxyz012345";
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("coder_csrf=abcdefghijklmnopqrstuvwxyz012345"),
        );
        assert_eq!(token_for(&headers, false), (pre.to_owned(), None));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "coder_csrf=abcdefghijklmnopqrstuvwxyz012345; coder_session_token=s1",
            ),
        );
        let (signed_in, cookie) = token_for(&headers, false);
        assert!(cookie.is_none());
        assert_eq!(signed_in, sign("s1"));
        assert_ne!(signed_in, sign("s2"));
        assert_ne!(signed_in, pre);
        // Over https only the prefixed cookie counts.
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("coder_csrf=abcdefghijklmnopqrstuvwxyz012345"),
        );
        let (token, cookie) = token_for(&headers, true);
        assert_ne!(token, pre);
        assert!(
            cookie.is_some_and(|c| c.starts_with("__Host-coder_csrf=") && c.contains("Secure"))
        );
    }
}
