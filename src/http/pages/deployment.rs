//! `/deployment/general`: what this deployment runs with, read-only, for owners: the access
//! URL, the database, the experiments (and so whether the OAuth2 provider and the MCP endpoint
//! are on), and the version.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::chrome::{Chrome, render};
use super::owners::owner_only;
use crate::domain::Experiment;
use crate::http::extract::MaybeBrowserUser;
use crate::web::AppState;

const PAGE: &str = "/deployment/general";

pub fn routes() -> Router<AppState> {
    Router::new().route(PAGE, get(show))
}

#[derive(Template)]
#[template(path = "deployment_general.html")]
struct GeneralPage {
    chrome: Chrome,
    title: &'static str,
    access_url: String,
    database: &'static str,
    experiments: Vec<&'static str>,
    oauth2: bool,
    mcp: bool,
    version: &'static str,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
) -> Response {
    let me = match owner_only(user, PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "deployment");
    let page = GeneralPage {
        chrome,
        title: "Deployment",
        access_url: state.settings.access_url.to_string(),
        database: match state.services.database_kind() {
            "postgres" => "PostgreSQL",
            _ => "SQLite (embedded)",
        },
        experiments: state.settings.experiments.names(),
        oauth2: state.experiment_enabled(Experiment::OAuth2),
        mcp: state.experiment_enabled(Experiment::McpServerHttp),
        version: env!("CARGO_PKG_VERSION"),
    };
    render(
        &page,
        StatusCode::OK,
        &cookie.into_iter().collect::<Vec<_>>(),
    )
}
