//! `/setup`: create the first user (the owner) from the browser.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::layout::{escape, hidden};
use super::{csrf, respond, see_other};
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
    render(
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

fn render(
    state: &AppState,
    headers: &HeaderMap,
    form: &SetupForm,
    problems: &[FieldError],
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let mut errors: Vec<String> = error.map(escape).into_iter().collect();
    errors.extend(
        problems
            .iter()
            .map(|p| format!("{}: {}", escape(&p.field), escape(&p.detail))),
    );
    let error_html = if errors.is_empty() {
        String::new()
    } else {
        format!(
            "<div class=\"error\" role=\"alert\">{}</div>",
            errors.join("<br>")
        )
    };
    let body = format!(
        "<h1>Welcome to Coder</h1><p class=\"lead\">Create the first user. It becomes the owner of \
         this deployment.</p>{error_html}<form method=\"post\" action=\"/setup\">{csrf}\
         <label for=\"email\">Email</label>\
         <input id=\"email\" type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"email\" required autofocus>\
         <label for=\"username\">Username</label>\
         <input id=\"username\" type=\"text\" name=\"username\" value=\"{username}\" autocomplete=\"username\" required>\
         <label for=\"name\">Full name <span class=\"muted\">(optional)</span></label>\
         <input id=\"name\" type=\"text\" name=\"name\" value=\"{name}\" autocomplete=\"name\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"new-password\" minlength=\"8\" required>\
         <p class=\"muted\">At least 8 characters, and not your username or email.</p>\
         <button type=\"submit\">Create account</button></form>",
        csrf = hidden(csrf::FIELD, &token),
        email = escape(&form.email),
        username = escape(&form.username),
        name = escape(&form.name),
    );
    respond(status, "Set up", &body, cookie.as_slice())
}

async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<SetupForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return render(
            &state,
            &headers,
            &SetupForm::default(),
            &[],
            Some("The form could not be read. Try again."),
            StatusCode::BAD_REQUEST,
        );
    };
    if !csrf::verify(&state, &headers, &form.csrf_token) {
        return render(
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
        Err(DomainError::Invalid { message, fields }) => render(
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
            render(
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
