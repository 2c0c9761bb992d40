//! `/oauth2/device/verify`: where a person approves a device (RFC 8628 §3.3). Signed in first
//! (the login page returns here), they type the code the device shows (or follow
//! `verification_uri_complete`, which fills it in), see which application asks and for what,
//! and allow or deny it. The form is protected as the consent page is.

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::layout::{escape, hidden};
use super::{csrf, csrf_checked, form_expired, oauth2_page_user, respond};
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
    let me = match oauth2_page_user(&state, user, &back) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(typed) = typed else {
        return code_form(None, StatusCode::OK);
    };
    match state
        .oauth
        .pending_device(&typed, &me.user, &ip.to_string())
        .await
    {
        Ok(pending) => confirm_page(&state, &headers, &me, &pending, StatusCode::OK),
        Err(failure) => failure_page(failure),
    }
}

async fn decide(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let me = match oauth2_page_user(&state, user, VERIFICATION_PATH) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(VERIFICATION_PATH);
    };
    let ip = ip.to_string();
    let pending = match state
        .oauth
        .pending_device(fields.get("user_code"), &me.user, &ip)
        .await
    {
        Ok(pending) => pending,
        Err(failure) => return failure_page(failure),
    };
    let approved = fields.get("action") == "allow";
    if let Err(failure) = state
        .oauth
        .decide_device(&pending, &me.user, approved, &ip)
        .await
    {
        return failure_page(failure);
    }
    let (title, body) = if approved {
        (
            "Device connected",
            format!(
                "<h1>Device connected</h1><p class=\"lead\"><strong>{}</strong> can now access \
                 your Coder account. Return to your device.</p>",
                escape(&pending.app.name)
            ),
        )
    } else {
        (
            "Request denied",
            format!(
                "<h1>Request denied</h1><p class=\"lead\"><strong>{}</strong> was not given \
                 access. You can close this window.</p>",
                escape(&pending.app.name)
            ),
        )
    };
    respond(StatusCode::OK, title, &body, &[])
}

/// The form to type the code in; it is a GET to this page, so nothing changes until the user
/// confirms on the next page.
fn code_form(error: Option<&str>, status: StatusCode) -> Response {
    let error = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Connect a device</h1>{error}<p class=\"lead\">Enter the code shown on your device.</p>\
         <form method=\"get\" action=\"{VERIFICATION_PATH}\"><label for=\"user_code\">Code</label>\
         <input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" autocapitalize=\"characters\" \
         spellcheck=\"false\" placeholder=\"XXXX-XXXX\" required autofocus> \
         <button type=\"submit\">Continue</button></form>"
    );
    respond(status, "Connect a device", &body, &[])
}

fn failure_page(failure: VerifyFailure) -> Response {
    match failure {
        VerifyFailure::Refused(message) => code_form(Some(&message), StatusCode::BAD_REQUEST),
        VerifyFailure::RateLimited(err) => {
            let mut page = code_form(Some(&err.description), StatusCode::TOO_MANY_REQUESTS);
            if let Some(secs) = err.retry_after {
                page.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            page
        }
        VerifyFailure::Failed(err) => {
            let status =
                StatusCode::from_u16(err.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let body = format!(
                "<h1>Something went wrong</h1><p class=\"lead\">{}</p>",
                escape(&err.description)
            );
            let mut page = respond(status, "Something went wrong", &body, &[]);
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
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let scopes: String = pending
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li><strong>{}</strong>: {}</li>",
                escape(s.name()),
                escape(s.description())
            )
        })
        .collect();
    // The built-in CLI gets a session, as a password sign-in does: say so rather than list
    // scopes that do not bound it.
    let access = if pending.app.is_builtin() {
        "<p>The Coder CLI (<code>coder login --device</code>) will be signed in as you, with \
         the same access as signing in with your password, until the session expires or you \
         run <code>coder logout</code>.</p>"
            .to_owned()
    } else {
        format!("<p>It will be able to:</p><ul class=\"plain\">{scopes}</ul>")
    };
    let body = format!(
        "<h1>Authorize {name}</h1>\
         <p class=\"lead\"><strong>{name}</strong> on a device showing the code \
         <strong>{code}</strong> wants to access your Coder account <strong>{username}</strong> \
         ({email}).</p>{access}\
         <p class=\"warning\" role=\"note\">Allow it only if you started this on your own device \
         and the code matches. Never enter a code someone else gave you.</p>\
         <form method=\"post\" action=\"{VERIFICATION_PATH}\">{csrf}{user_code}\
         <button type=\"submit\" name=\"action\" value=\"allow\">Allow</button> \
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        name = escape(&pending.app.name),
        code = escape(&display_user_code(&pending.code.user_code)),
        username = escape(&me.user.username),
        email = escape(&me.user.email),
        csrf = hidden(csrf::FIELD, &token),
        user_code = hidden("user_code", &pending.code.user_code),
    );
    respond(status, "Authorize device", &body, cookie.as_slice())
}
