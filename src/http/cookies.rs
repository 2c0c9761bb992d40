//! Cookies: reading the `Cookie` header and building `Set-Cookie` values.

use axum::http::HeaderMap;
use axum::http::header;

/// The browser session cookie (Coder's name).
pub const SESSION_COOKIE: &str = "coder_session_token";
/// The double-submit CSRF cookie for server-rendered forms.
pub const CSRF_COOKIE: &str = "coder_csrf";

pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// An HttpOnly cookie for the whole site; `max_age_secs = 0` deletes it.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: i64,
    same_site: &str,
    secure: bool,
) -> String {
    let mut cookie =
        format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite={same_site}");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_named_cookie_among_many() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; coder_session_token=xyz; b=2"),
        );
        assert_eq!(
            read_cookie(&headers, SESSION_COOKIE).as_deref(),
            Some("xyz")
        );
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
