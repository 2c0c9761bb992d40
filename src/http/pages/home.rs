//! `/`: the signed-in user's landing page (who they are, this deployment, where to go next);
//! everyone else is sent to sign in or set up.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::chrome::{Chrome, render};
use super::see_other;
use crate::domain::Experiment;
use crate::http::extract::MaybeBrowserUser;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    title: &'static str,
    display_name: String,
    username: String,
    email: String,
    role: String,
    access_url: String,
    experiments: String,
    owner: bool,
    /// The OAuth2 pages exist only while the oauth2 experiment is on.
    oauth2: bool,
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
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "");
    let experiments = state.settings.experiments.names();
    let page = HomePage {
        chrome,
        title: "Home",
        display_name: if me.user.name.is_empty() {
            me.user.username.clone()
        } else {
            me.user.name.clone()
        },
        username: me.user.username.clone(),
        email: me.user.email.clone(),
        role: me.user.role.display_name().to_lowercase(),
        access_url: state.settings.access_url_str().to_owned(),
        experiments: if experiments.is_empty() {
            "none".to_owned()
        } else {
            experiments.join(", ")
        },
        owner: me.is_owner(),
        oauth2: state.experiment_enabled(Experiment::OAuth2),
    };
    render(&page, StatusCode::OK, cookie.as_slice())
}
