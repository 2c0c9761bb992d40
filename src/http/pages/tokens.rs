//! `/settings/tokens`: a user's API tokens. A new token is shown once: the POST stores it for
//! one minute in a cookie scoped to this page, and the GET it redirects to shows it and clears
//! the cookie (post/redirect/get, so a reload neither re-submits nor shows it again).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::chrome::{COPY_SCRIPT, Chrome, allow_copy_script, render};
use super::form::SignedInForm;
use super::signed_in;
use super::{error_page, error_status, see_other};
use crate::domain::{DomainError, Principal};
use crate::http::cookies::read_cookie;
use crate::service::{CreateTokenRequest, UserSelector};
use crate::web::AppState;

const PAGE: &str = "/settings/tokens";
/// Holds a just-created token between the POST and the GET that shows it.
const NEW_TOKEN_COOKIE: &str = "coder_new_token";
const NEW_TOKEN_SECS: i64 = 60;
const LIFETIMES: [(i64, &str); 5] = [
    (1, "1 day"),
    (7, "7 days"),
    (30, "30 days"),
    (90, "90 days"),
    (365, "1 year"),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show).post(create))
        .route("/settings/tokens/{id}/delete", post(delete))
}

/// The flash cookie: this page's path only, HttpOnly, never sent cross-site.
fn new_token_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let mut cookie = format!(
        "{NEW_TOKEN_COOKIE}={value}; Path={PAGE}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

struct TokenRow {
    id: String,
    name: String,
    created: String,
    last_used: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    title: &'static str,
    new_token: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    name: String,
    lifetimes: Vec<(i64, &'static str)>,
    tokens: Vec<TokenRow>,
    copy_script: &'static str,
}

#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: String,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): crate::http::extract::MaybeBrowserUser,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let me = match signed_in(user, PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let secure = state.settings.secure_cookies();
    let new_token = read_cookie(&headers, NEW_TOKEN_COOKIE);
    let mut cookies = Vec::new();
    if new_token.is_some() {
        cookies.push(new_token_cookie("", 0, secure));
    }
    let notice = (q.done == "deleted").then(|| "Token deleted; it no longer works.".to_owned());
    page(
        &state,
        &me,
        &headers,
        new_token,
        notice,
        None,
        "",
        StatusCode::OK,
        cookies,
    )
    .await
}

use crate::http::extract::MaybeBrowserUser;

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    me: &Principal,
    headers: &HeaderMap,
    new_token: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    name: &str,
    status: StatusCode,
    mut cookies: Vec<String>,
) -> Response {
    let (chrome, csrf_cookie) = Chrome::signed_in(me, headers, &state.settings, "account");
    cookies.extend(csrf_cookie);
    let tokens = match state.services.list_tokens(me, &UserSelector::Me).await {
        Ok((_, keys)) => keys,
        Err(e) => return error_page(&e, "/"),
    };
    let when = |t: &chrono::DateTime<chrono::Utc>| {
        if t.timestamp() <= 0 {
            "never".to_owned()
        } else {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        }
    };
    let page = TokensPage {
        chrome,
        title: "API tokens",
        new_token,
        notice,
        error,
        name: name.to_owned(),
        lifetimes: LIFETIMES.to_vec(),
        tokens: tokens
            .iter()
            .map(|k| TokenRow {
                id: k.id.0.clone(),
                name: k.token_name.clone(),
                created: when(&k.created_at),
                last_used: when(&k.last_used),
                expires: when(&k.expires_at),
            })
            .collect(),
        copy_script: COPY_SCRIPT,
    };
    allow_copy_script(render(&page, status, &cookies))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let name = fields.get("name").trim().to_owned();
    let days = fields
        .get("lifetime_days")
        .parse::<i64>()
        .ok()
        .filter(|d| LIFETIMES.iter().any(|(l, _)| l == d));
    let Some(days) = days else {
        let err = DomainError::invalid("Choose one of the lifetimes offered.");
        let message = error_status(&err).1;
        return page(
            &state,
            &me,
            &headers,
            None,
            None,
            Some(message),
            &name,
            StatusCode::BAD_REQUEST,
            Vec::new(),
        )
        .await;
    };
    let created = state
        .services
        .create_token(
            &me,
            &UserSelector::Me,
            CreateTokenRequest {
                token_name: name.clone(),
                lifetime_ns: days * 24 * 3600 * 1_000_000_000,
            },
        )
        .await;
    match created {
        Ok(issued) => see_other(
            PAGE,
            &[new_token_cookie(
                issued.token.expose(),
                NEW_TOKEN_SECS,
                state.settings.secure_cookies(),
            )],
        ),
        Err(e) => {
            let (status, message) = error_status(&e);
            let detail = match &e {
                DomainError::Invalid { fields, .. } | DomainError::Conflict { fields, .. } => {
                    fields
                        .iter()
                        .map(|f| format!(" {}: {}", f.field, f.detail))
                        .collect::<String>()
                }
                _ => String::new(),
            };
            page(
                &state,
                &me,
                &headers,
                None,
                None,
                Some(format!("{message}{detail}")),
                &name,
                status,
                Vec::new(),
            )
            .await
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedInForm { me, .. }: SignedInForm,
) -> Response {
    match state.services.delete_key(&me, &UserSelector::Me, &id).await {
        Ok(()) => see_other(&format!("{PAGE}?done=deleted"), &[]),
        Err(e) => error_page(&e, PAGE),
    }
}
