//! `/login`: the sign-in form (naming the application a person signs in for, when they come
//! from `/oauth2/authorize`), and `/logout`.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::{csrf, safe_redirect, see_other};
use crate::domain::{DomainError, Experiment};
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
    login_page(
        &state,
        &headers,
        &redirect,
        "",
        query.message.as_deref(),
        StatusCode::OK,
    )
    .await
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    title: &'static str,
    csrf: String,
    redirect: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    app_name: Option<String>,
}

async fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    redirect: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let page = LoginPage {
        chrome: Chrome::anonymous(),
        title: "Sign in",
        csrf,
        redirect,
        email,
        error,
        app_name: asking_app(state, redirect).await,
    };
    render(&page, status, cookie.as_slice())
}

/// The name of the application a person signs in for: the one whose authorization request
/// (`/oauth2/authorize?client_id=...`) sent them here, when the server knows it.
async fn asking_app(state: &AppState, redirect: &str) -> Option<String> {
    if !state.experiment_enabled(Experiment::OAuth2) {
        return None;
    }
    let query = redirect.strip_prefix("/oauth2/authorize?")?;
    let client_id = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())?;
    state.oauth.client_name(&client_id).await
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
        return login_page(
            &state,
            &headers,
            "/",
            "",
            Some("The form could not be read. Try again."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let redirect = safe_redirect(Some(&form.redirect));
    if !csrf::verify(&state, &headers, &form.csrf_token) {
        return login_page(
            &state,
            &headers,
            &redirect,
            &form.email,
            Some("This form expired. Sign in again."),
            StatusCode::FORBIDDEN,
        )
        .await;
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
            login_page(
                &state,
                &headers,
                &redirect,
                &form.email,
                Some(&message),
                status,
            )
            .await
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
