//! `/setup`: create the first user (the owner) from the browser.

use askama::Template;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::{csrf, see_other};
use crate::domain::{DomainError, FieldError};
use crate::http::extract::ClientIp;
use crate::http::users::session_cookie;
use crate::service::CreateUserRequest;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/setup", get(show).post(submit))
}

async fn show(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.services.first_user_exists().await.unwrap_or(true) {
        return see_other("/login", &[]);
    }
    setup_page(
        &state,
        &headers,
        &SetupForm::default(),
        &[],
        None,
        StatusCode::OK,
    )
}

#[derive(Deserialize, Default)]
struct SetupForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    chrome: Chrome,
    title: &'static str,
    csrf: String,
    form: &'a SetupForm,
    errors: Vec<String>,
}

fn setup_page(
    state: &AppState,
    headers: &HeaderMap,
    form: &SetupForm,
    problems: &[FieldError],
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (csrf, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let mut errors: Vec<String> = error.map(str::to_owned).into_iter().collect();
    errors.extend(
        problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.detail)),
    );
    let page = SetupPage {
        chrome: Chrome::anonymous(),
        title: "Set up",
        csrf,
        form,
        errors,
    };
    render(&page, status, cookie.as_slice())
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<SetupForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return setup_page(
            &state,
            &headers,
            &SetupForm::default(),
            &[],
            Some("The form could not be read. Try again."),
            StatusCode::BAD_REQUEST,
        );
    };
    if !csrf::verify(&state, &headers, &form.csrf_token) {
        return setup_page(
            &state,
            &headers,
            &form,
            &[],
            Some("This form expired. Submit it again."),
            StatusCode::FORBIDDEN,
        );
    }
    let request = CreateUserRequest {
        email: form.email.clone(),
        username: form.username.clone(),
        name: form.name.clone(),
        password: form.password.clone(),
    };
    match state.services.create_first_user(request).await {
        Ok(user) => match state
            .services
            .login(&user.email, form.password, &ip.to_string())
            .await
        {
            Ok((_, token)) => see_other("/", &[session_cookie(&state, token.expose())]),
            Err(_) => see_other("/login", &[]),
        },
        Err(DomainError::Invalid { message, fields }) => setup_page(
            &state,
            &headers,
            &form,
            &fields,
            Some(&message),
            StatusCode::BAD_REQUEST,
        ),
        Err(DomainError::Conflict { .. }) => see_other("/login", &[]),
        Err(other) => {
            tracing::error!(error = %other, "first-user setup failed");
            setup_page(
                &state,
                &headers,
                &form,
                &[],
                Some("Setup failed. Try again."),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        }
    }
}
