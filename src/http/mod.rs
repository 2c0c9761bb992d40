//! The HTTP surface: the REST API, the OAuth endpoints and the pages, one router per area.

pub mod agent_api;
pub mod api_keys;
pub mod audit;
pub mod cookies;
pub mod extract;
pub mod files;
pub mod meta;
pub mod metrics;
pub mod oauth2;
pub mod oauth2_provider;
pub mod pages;
pub mod provisioner_daemons;
pub mod templates;
pub mod users;
pub mod workspace_agents;
pub mod workspaces;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::domain::Experiment;
use crate::web::AppState;

/// Every REST, OAuth and page route, merged; `app` mounts them beside the MCP endpoint.
pub fn routes(state: &AppState) -> Router<AppState> {
    // Without the `oauth2` experiment the authorization server is not mounted at all, so every
    // method on its paths (preflights included) gets the same 404 as a path that never existed.
    let oauth2 = if state.experiment_enabled(Experiment::OAuth2) {
        oauth2::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(meta::routes())
        .merge(users::routes())
        .merge(api_keys::routes())
        .merge(audit::routes())
        .merge(pages::routes())
        .merge(oauth2)
        .merge(oauth2_provider::routes())
        .merge(files::routes())
        .merge(templates::routes())
        .merge(workspaces::routes())
        .merge(workspace_agents::routes())
        .merge(agent_api::routes())
        .merge(provisioner_daemons::routes())
        .layer(middleware::from_fn_with_state(state.clone(), audit_origin))
}

/// Every audit entry a REST or page request leads to records the client's IP (MCP tool calls
/// set theirs in `mcp::handler`).
async fn audit_origin(
    extract::ClientIp(ip): extract::ClientIp,
    request: Request,
    next: Next,
) -> Response {
    crate::audit::with_request_ip(ip.to_string(), next.run(request)).await
}

/// What the agent socket serves: only the routes agents call.
pub fn agent_socket_routes() -> Router<AppState> {
    agent_api::agent_routes()
}
