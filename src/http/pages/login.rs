//! `/login`: the sign-in form, and `/logout`.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::layout::{error_box, escape, hidden};
use super::{csrf, respond, safe_redirect, see_other};
use crate::domain::DomainError;
use crate::http::cookies::{SESSION_COOKIE, set_cookie};
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::http::users::session_cookie;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(submit))
        .route("/logout", post(logout))
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    redirect: Option<String>,
    message: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let redirect = safe_redirect(query.redirect.as_deref());
    if user.is_some() {
        return see_other(&redirect, &[]);
    }
    if !state.services.first_user_exists().await.unwrap_or(true) {
        return see_other("/setup", &[]);
    }
    render(
        &state,
        &headers,
        &redirect,
        "",
        query.message.as_deref(),
        StatusCode::OK,
    )
}

fn render(
    state: &AppState,
    headers: &HeaderMap,
    redirect: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let body = format!(
        "<h1>Sign in</h1><p class=\"lead\">Sign in to your Coder account to continue.</p>{error}\
         <form method=\"post\" action=\"/login\">{csrf}{redirect}\
         <label for=\"email\">Email</label>\
         <input id=\"email\" type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>",
        error = error_box(error),
        csrf = hidden(csrf::FIELD, &token),
        redirect = hidden("redirect", redirect),
        email = escape(email),
    );
    respond(status, "Sign in", &body, cookie.as_slice())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    redirect: String,
    #[serde(default)]
    csrf_token: String,
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return render(
            &state,
            &headers,
            "/",
            "",
            Some("The form could not be read. Try again."),
            StatusCode::BAD_REQUEST,
        );
    };
    let redirect = safe_redirect(Some(&form.redirect));
    if !csrf::verify(&state, &headers, &form.csrf_token) {
        return render(
            &state,
            &headers,
            &redirect,
            &form.email,
            Some("This form expired. Sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    match state
        .services
        .login(&form.email, form.password, &ip.to_string())
        .await
    {
        Ok((_, token)) => see_other(&redirect, &[session_cookie(&state, token.expose())]),
        Err(err) => {
            let (status, message) = match &err {
                DomainError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m.clone()),
                DomainError::RateLimited { message, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, message.clone())
                }
                other => {
                    tracing::error!(error = %other, "sign-in failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Sign-in failed. Try again.".to_owned(),
                    )
                }
            };
            render(
                &state,
                &headers,
                &redirect,
                &form.email,
                Some(&message),
                status,
            )
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let submitted = form.map(|f| f.0.csrf_token).unwrap_or_default();
    if !csrf::verify(&state, &headers, &submitted) {
        return see_other("/", &[]);
    }
    if let Some(user) = user
        && let Err(err) = state.services.logout(&user).await
    {
        tracing::error!(error = %err, "sign-out failed");
    }
    let clear = set_cookie(
        SESSION_COOKIE,
        "",
        0,
        "Lax",
        state.settings.secure_cookies(),
    );
    see_other("/login", &[clear])
}
