//! `/`: where a signed-in user lands; everyone else is sent to sign in or set up.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::layout::{escape, hidden};
use super::{csrf, respond, see_other};
use crate::domain::{Experiment, Principal};
use crate::http::extract::MaybeBrowserUser;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
) -> Response {
    let Some(me) = user else {
        let to = if state.services.first_user_exists().await.unwrap_or(true) {
            "/login"
        } else {
            "/setup"
        };
        return see_other(to, &[]);
    };
    let (token, cookie) = csrf::token_for(&headers, state.settings.secure_cookies());
    let experiments = state.settings.experiments.names();
    let body = format!(
        "<h1>Hello, {name}</h1><p class=\"lead\">Signed in as <strong>{username}</strong> \
         ({email}), {role}.</p>\
         <p class=\"muted\">Server: {url}<br>Experiments: {experiments}</p>{links}\
         <form method=\"post\" action=\"/logout\">{csrf}<button class=\"secondary\" type=\"submit\">Sign out</button></form>",
        name = escape(if me.user.name.is_empty() {
            &me.user.username
        } else {
            &me.user.name
        }),
        username = escape(&me.user.username),
        email = escape(&me.user.email),
        role = me.user.role.display_name().to_lowercase(),
        url = escape(state.settings.access_url_str()),
        experiments = if experiments.is_empty() {
            "none".to_owned()
        } else {
            escape(&experiments.join(", "))
        },
        links = oauth2_links(&state, &me),
        csrf = hidden(csrf::FIELD, &token),
    );
    respond(StatusCode::OK, "Home", &body, cookie.as_slice())
}

/// Links to the OAuth2 pages, while the oauth2 experiment is on.
fn oauth2_links(state: &AppState, me: &Principal) -> String {
    if !state.experiment_enabled(Experiment::OAuth2) {
        return String::new();
    }
    let admin = if me.is_owner() {
        "<li><a href=\"/deployment/oauth2-provider/apps\">OAuth2 applications</a></li>"
    } else {
        ""
    };
    format!(
        "<ul class=\"plain\"><li><a href=\"/settings/oauth2-provider\">Authorized applications</a></li>{admin}</ul>"
    )
}
