//! Server-rendered pages: sign-in, first-user setup, and the signed-in home page.

mod csrf;
mod home;
pub mod layout;
mod login;
mod setup;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::state::AppState;

pub use layout::{escape, page};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(login::routes())
        .merge(setup::routes())
        .merge(home::routes())
}

/// A page response with a status and optional cookies to set.
fn respond(status: StatusCode, title: &str, body: &str, cookies: &[String]) -> Response {
    let mut response = page(title, body);
    *response.status_mut() = status;
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// 303 to a local path, setting cookies on the way.
fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut response = Redirect::to(to).into_response();
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    layout::with_page_headers(response)
}

/// Keeps a post-login redirect on this server: only absolute paths, never `//host` or `/\host`
/// (which browsers treat as another origin), never control characters.
pub fn safe_redirect(raw: Option<&str>) -> String {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return "/".to_owned();
    };
    let local = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/\\")
        && !raw.chars().any(|c| c.is_control() || c == '\\');
    if local { raw.to_owned() } else { "/".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::safe_redirect;

    #[test]
    fn redirects_stay_on_this_server() {
        assert_eq!(safe_redirect(Some("/oauth2/authorize?a=b")), "/oauth2/authorize?a=b");
        for bad in ["https://evil.example", "//evil.example", "/\\evil.example", "evil", "/a\\b", "/a\nb"] {
            assert_eq!(safe_redirect(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_redirect(None), "/");
    }
}
