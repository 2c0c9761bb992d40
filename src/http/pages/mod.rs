//! Server-rendered pages: sign-in, first-user setup, the signed-in home page, workspaces,
//! templates, API tokens, connecting an AI agent, the owner's OAuth2 applications, users, audit
//! log and deployment settings, a user's authorized applications, and device verification.

mod audit_log;
mod authorized_apps;
pub mod chrome;
mod connect;
pub(crate) mod csrf;
mod deployment;
mod deployment_users;
mod device;
mod folder_upload;
pub(crate) mod form;
mod home;
pub mod layout;
mod login;
mod oauth_apps;
mod owners;
pub(crate) mod parts;
mod setup;
mod templates;
mod tokens;
mod workspaces;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use self::parts::message_page;
use crate::domain::{DomainError, Experiment, Principal};
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(login::routes())
        .merge(setup::routes())
        .merge(home::routes())
        .merge(oauth_apps::routes())
        .merge(authorized_apps::routes())
        .merge(workspaces::routes())
        .merge(tokens::routes())
        .merge(connect::routes())
        .merge(templates::routes())
        .merge(device::routes())
        .merge(deployment_users::routes())
        .merge(audit_log::routes())
        .merge(deployment::routes())
}

/// 303 to a local path, setting cookies on the way.
pub(crate) fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut response = Redirect::to(to).into_response();
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    layout::with_page_headers(response)
}

/// The redirect to sign in, and back to `path` afterwards.
pub(crate) fn sign_in_first(path: &str) -> Response {
    let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    see_other(&format!("/login?redirect={back}"), &[])
}

/// The OAuth2 pages exist only while the oauth2 experiment is on; otherwise they answer a 404
/// page, to visitors too (there is nothing to sign in for).
pub(crate) struct OAuth2Pages;

impl FromRequestParts<AppState> for OAuth2Pages {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if state.experiment_enabled(Experiment::OAuth2) {
            Ok(OAuth2Pages)
        } else {
            Err(message_page(
                StatusCode::NOT_FOUND,
                "Page not found",
                "The OAuth2 provider is an experimental feature. Start the server with \
                 --experiments=oauth2 to use it.",
                "",
                None,
            ))
        }
    }
}

/// The signed-in user of a page, or the redirect to sign in and come back to `path`.
pub(crate) fn signed_in(user: Option<Principal>, path: &str) -> Result<Principal, Box<Response>> {
    user.ok_or_else(|| Box::new(sign_in_first(path)))
}

/// The answer to a POST whose CSRF token is missing or wrong; nothing was changed.
pub(crate) fn form_expired(back: &str) -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "This form expired",
        "Nothing was changed. Reload the page and try again.",
        "",
        Some(back),
    )
}

/// A name a post/redirect/get carries in its query to the notice that follows ("Deleted alice.").
/// Anyone can craft such a link, so the page shows it escaped and cut to 64 characters.
pub(crate) fn notice_name(raw: Option<&str>) -> String {
    raw.unwrap_or("").chars().take(64).collect()
}

/// The status and the words a page shows for a failed action; internal causes are logged, not shown.
pub(crate) fn error_status(err: &DomainError) -> (StatusCode, String) {
    match err {
        DomainError::Invalid { message, .. } => (StatusCode::BAD_REQUEST, message.clone()),
        DomainError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m.clone()),
        DomainError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
        DomainError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        DomainError::Conflict { message, .. } => (StatusCode::CONFLICT, message.clone()),
        DomainError::RateLimited { message, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, message.clone())
        }
        DomainError::Unavailable { message, .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, message.clone())
        }
        DomainError::Internal(cause) => {
            tracing::error!(error = %cause, "page action failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong. Try again.".to_owned(),
            )
        }
    }
}

/// A page that only says what went wrong, with a link back.
pub(crate) fn error_page(err: &DomainError, back: &str) -> Response {
    let (status, message) = error_status(err);
    let title = status.canonical_reason().unwrap_or("Error");
    let mut page = message_page(status, title, &message, "", Some(back));
    if let DomainError::RateLimited {
        retry_after_secs, ..
    }
    | DomainError::Unavailable {
        retry_after_secs, ..
    } = err
    {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    page
}

/// A submitted form as name/value pairs, in order; a checkbox group repeats its name.
#[derive(Debug, Default)]
pub(crate) struct FormFields(pub(crate) Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`, or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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
    if local {
        raw.to_owned()
    } else {
        "/".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::safe_redirect;

    #[test]
    fn redirects_stay_on_this_server() {
        assert_eq!(
            safe_redirect(Some("/oauth2/authorize?a=b")),
            "/oauth2/authorize?a=b"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\\b",
            "/a\nb",
        ] {
            assert_eq!(safe_redirect(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_redirect(None), "/");
    }
}
