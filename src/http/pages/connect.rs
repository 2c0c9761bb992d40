//! `/connect`: how to point an AI agent at this deployment's MCP server, with the URL and each
//! agent's configuration to copy; it says plainly what is missing (experiments, https).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::chrome::{COPY_SCRIPT, Chrome, allow_copy_script, render};
use super::signed_in;
use crate::domain::Experiment;
use crate::http::extract::MaybeBrowserUser;
use crate::oauth::resource::MCP_PATH;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/connect", get(show))
}

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage {
    chrome: Chrome,
    title: &'static str,
    warnings: Vec<String>,
    access_url: String,
    mcp_url: String,
    cursor_json: String,
    vscode_json: String,
    copy_script: &'static str,
}

/// What keeps remote agents from connecting, in words an owner can act on.
fn warnings(state: &AppState, owner: bool) -> Vec<String> {
    let mut out = Vec::new();
    let who = if owner {
        "Restart the server with"
    } else {
        "Ask an owner to restart the server with"
    };
    let missing: Vec<&str> = [Experiment::McpServerHttp, Experiment::OAuth2]
        .into_iter()
        .filter(|e| !state.experiment_enabled(*e))
        .map(|e| e.name())
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "The MCP server is not reachable by agents yet: the experiments {} are off. {who} \
             --experiments={}.",
            missing.join(" and "),
            missing.join(",")
        ));
    }
    if state.settings.access_url.scheme() != "https" {
        out.push(format!(
            "The access URL {} is not https. claude.ai, ChatGPT and most agents only connect to \
             https servers. {who} an https --access-url (for example behind a TLS proxy, or \
             --tls-enable).",
            state.settings.access_url_str()
        ));
    }
    out
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
) -> Response {
    let me = match signed_in(user, "/connect") {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "connect");
    let access_url = state.settings.access_url_str().to_owned();
    let mcp_url = format!("{access_url}{MCP_PATH}");
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    let page = ConnectPage {
        chrome,
        title: "Connect an AI agent",
        warnings: warnings(&state, me.is_owner()),
        cursor_json: pretty(json!({"mcpServers": {"coder": {"url": mcp_url}}})),
        vscode_json: pretty(json!({"servers": {"coder": {"type": "http", "url": mcp_url}}})),
        access_url,
        mcp_url,
        copy_script: COPY_SCRIPT,
    };
    allow_copy_script(render(&page, StatusCode::OK, cookie.as_slice()))
}
