//! `/`: where a signed-in user lands; everyone else is sent to sign in or set up.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::layout::{escape, hidden};
use super::{csrf, respond, see_other};
use crate::http::extract::MaybeBrowserUser;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(State(state): State<AppState>, MaybeBrowserUser(user): MaybeBrowserUser, headers: HeaderMap) -> Response {
    let Some(me) = user else {
        let to = if state.services.first_user_exists().await.unwrap_or(true) { "/login" } else { "/setup" };
        return see_other(to, &[]);
    };
    let (token, cookie) = csrf::token_for(&headers, state.settings.secure_cookies());
    let experiments = state.settings.experiments.names();
    let body = format!(
        "<h1>Hello, {name}</h1><p class=\"lead\">Signed in as <strong>{username}</strong> \
         ({email}), {role}.</p>\
         <p class=\"muted\">Server: {url}<br>Experiments: {experiments}</p>\
         <form method=\"post\" action=\"/logout\">{csrf}<button class=\"secondary\" type=\"submit\">Sign out</button></form>",
        name = escape(if me.user.name.is_empty() { &me.user.username } else { &me.user.name }),
        username = escape(&me.user.username),
        email = escape(&me.user.email),
        role = me.user.role.display_name().to_lowercase(),
        url = escape(state.settings.access_url_str()),
        experiments = if experiments.is_empty() { "none".to_owned() } else { escape(&experiments.join(", ")) },
        csrf = hidden(csrf::FIELD, &token),
    );
    respond(StatusCode::OK, "Home", &body, cookie.as_slice())
}
