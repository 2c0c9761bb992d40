//! `/oauth2/device/verify`: where a person approves a device (RFC 8628 §3.3). Signed in first
//! (the login page returns here), they type the code the device shows (or follow
//! `verification_uri_complete`, which fills it in), see which application asks and for what,
//! and allow or deny it. The form is protected as the consent page is.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::form::SignedInForm;
use super::parts::message_page;
use super::{OAuth2Pages, signed_in};
use crate::domain::Principal;
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::oauth::device::{PendingDevice, VERIFICATION_PATH, VerifyFailure, display_user_code};
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(VERIFICATION_PATH, get(show).post(decide))
}

#[derive(Deserialize, Default)]
struct CodeQuery {
    user_code: Option<String>,
}

async fn show(
    _: OAuth2Pages,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    query: Result<Query<CodeQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let typed = query
        .ok()
        .and_then(|q| q.0.user_code)
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    // Back here after signing in, with the code still filled in.
    let back = match &typed {
        Some(code) => format!(
            "{VERIFICATION_PATH}?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", code)
                .finish()
        ),
        None => VERIFICATION_PATH.to_owned(),
    };
    let me = match signed_in(user, &back) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(typed) = typed else {
        return code_form(layout_for(&state, &headers, &me), None, StatusCode::OK);
    };
    match state
        .oauth
        .pending_device(&typed, &me.user, &ip.to_string())
        .await
    {
        Ok(pending) => confirm_page(&state, &headers, &me, &pending, StatusCode::OK),
        Err(failure) => failure_page(layout_for(&state, &headers, &me), failure),
    }
}

async fn decide(
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let ip = ip.to_string();
    let pending = match state
        .oauth
        .pending_device(fields.get("user_code"), &me.user, &ip)
        .await
    {
        Ok(pending) => pending,
        Err(failure) => return failure_page(layout_for(&state, &headers, &me), failure),
    };
    let approved = fields.get("action") == "allow";
    if let Err(failure) = state
        .oauth
        .decide_device(&pending, &me.user, approved, &ip)
        .await
    {
        return failure_page(layout_for(&state, &headers, &me), failure);
    }
    let (title, message) = if approved {
        (
            "Device connected",
            format!(
                "{} can now access your Coder account. Return to your device.",
                pending.app.name
            ),
        )
    } else {
        (
            "Request denied",
            format!(
                "{} was not given access. You can close this window.",
                pending.app.name
            ),
        )
    };
    message_page(StatusCode::OK, title, &message, "", None)
}

#[derive(Template)]
#[template(path = "device_code.html")]
struct CodePage<'a> {
    chrome: Chrome,
    title: &'static str,
    action: &'static str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome,
    title: &'static str,
    action: &'static str,
    app_name: &'a str,
    code: String,
    user_code: &'a str,
    username: &'a str,
    email: &'a str,
    builtin: bool,
    /// (name, description) of the scopes asked for, the powerful ones apart.
    scopes: Vec<(&'static str, &'static str)>,
    powerful: Vec<(&'static str, &'static str)>,
}

/// The form to type the code in; it is a GET to this page, so nothing changes until the user
/// confirms on the next page.
/// The layout for the signed-in user, with the CSRF cookie to set if the browser had none.
fn layout_for(state: &AppState, headers: &HeaderMap, me: &Principal) -> (Chrome, Option<String>) {
    Chrome::signed_in(me, headers, &state.settings, "")
}

fn code_form(
    (chrome, cookie): (Chrome, Option<String>),
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let page = CodePage {
        chrome,
        title: "Connect a device",
        action: VERIFICATION_PATH,
        error,
    };
    render(&page, status, cookie.as_slice())
}

fn failure_page(chrome: (Chrome, Option<String>), failure: VerifyFailure) -> Response {
    match failure {
        VerifyFailure::Refused(message) => {
            code_form(chrome, Some(&message), StatusCode::BAD_REQUEST)
        }
        VerifyFailure::RateLimited(err) => {
            let mut page = code_form(
                chrome,
                Some(&err.description),
                StatusCode::TOO_MANY_REQUESTS,
            );
            if let Some(secs) = err.retry_after {
                page.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            page
        }
        VerifyFailure::Failed(err) => {
            let status =
                StatusCode::from_u16(err.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut page = message_page(status, "Something went wrong", &err.description, "", None);
            if let Some(secs) = err.retry_after {
                page.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            page
        }
    }
}

fn confirm_page(
    state: &AppState,
    headers: &HeaderMap,
    me: &Principal,
    pending: &PendingDevice,
    status: StatusCode,
) -> Response {
    let (chrome, cookie) = layout_for(state, headers, me);
    let page = ConfirmPage {
        chrome,
        title: "Authorize device",
        action: VERIFICATION_PATH,
        app_name: &pending.app.name,
        code: display_user_code(&pending.code.user_code),
        user_code: &pending.code.user_code,
        username: &me.user.username,
        email: &me.user.email,
        // The built-in CLI gets a session, as a password sign-in does: the page says so rather
        // than list scopes that do not bound it.
        builtin: pending.app.is_builtin(),
        scopes: pending
            .scopes
            .iter()
            .filter(|s| !s.powerful())
            .map(|s| (s.name(), s.description()))
            .collect(),
        powerful: pending
            .scopes
            .iter()
            .filter(|s| s.powerful())
            .map(|s| (s.name(), s.description()))
            .collect(),
    };
    render(&page, status, cookie.as_slice())
}
