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
mod home;
pub mod layout;
mod login;
mod oauth_apps;
mod owners;
mod setup;
mod templates;
mod tokens;
mod workspaces;

use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Router};

use crate::domain::{DomainError, Experiment, Principal};
use crate::web::AppState;

pub use layout::{escape, page};

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

/// A page response with a status and optional cookies to set.
pub(crate) fn respond(status: StatusCode, title: &str, body: &str, cookies: &[String]) -> Response {
    with_status_and_cookies(page(title, body), status, cookies)
}

/// [`respond`] with the wide layout, for pages with tables.
pub(crate) fn respond_wide(
    status: StatusCode,
    title: &str,
    body: &str,
    cookies: &[String],
) -> Response {
    with_status_and_cookies(layout::wide_page(title, body), status, cookies)
}

fn with_status_and_cookies(
    mut response: Response,
    status: StatusCode,
    cookies: &[String],
) -> Response {
    *response.status_mut() = status;
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
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

/// The signed-in user of an OAuth2 page, or what answers instead: a 404 page while the oauth2
/// experiment is off, a redirect to sign in (and back to `path`) for visitors.
pub(crate) fn oauth2_page_user(
    state: &AppState,
    user: Option<Principal>,
    path: &str,
) -> Result<Principal, Box<Response>> {
    if !state.experiment_enabled(Experiment::OAuth2) {
        let body = "<h1>Page not found</h1><p class=\"lead\">The OAuth2 provider is an experimental \
                    feature. Start the server with <code>--experiments=oauth2</code> to use it.</p>";
        return Err(Box::new(respond(
            StatusCode::NOT_FOUND,
            "Page not found",
            body,
            &[],
        )));
    }
    user.ok_or_else(|| {
        let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        Box::new(see_other(&format!("/login?redirect={back}"), &[]))
    })
}

/// The answer to a POST whose CSRF token is missing or wrong; nothing was changed.
pub(crate) fn form_expired(back: &str) -> Response {
    let body = format!(
        "<h1>This form expired</h1><p class=\"lead\">Nothing was changed. Reload the page and try \
         again.</p><p><a href=\"{}\">Back</a></p>",
        escape(back)
    );
    respond(StatusCode::FORBIDDEN, "Form expired", &body, &[])
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
    let body = format!(
        "<h1>{title}</h1><p class=\"lead\">{message}</p><p><a href=\"{back}\">Back</a></p>",
        title = escape(title),
        message = escape(&message),
        back = escape(back),
    );
    let mut page = respond(status, title, &body, &[]);
    if let DomainError::RateLimited {
        retry_after_secs, ..
    }
    | DomainError::Unavailable {
        retry_after_secs, ..
    } = err
    {
        page.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(*retry_after_secs),
        );
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

/// The submitted form, if it carries this browser's CSRF token (an unreadable form does not).
pub(crate) fn csrf_checked(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Option<FormFields> {
    let fields = FormFields(form.map(|f| f.0).unwrap_or_default());
    csrf::verify(state, headers, fields.get(csrf::FIELD)).then_some(fields)
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
