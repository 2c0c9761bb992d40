//! Helpers for the tests that speak to the MCP endpoint: a request as a conforming client sends
//! it, one JSON-RPC call, and one tool call.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::oauth_client::MCP_PATH;

/// The `Accept` header of a streamable HTTP client: it takes JSON and event streams.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A POST to the MCP endpoint (plus `query`) as a conforming client sends it: a JSON body,
/// `Accept` naming both types, the negotiated version if any, and a bearer token.
pub fn mcp_post(
    app: &TestApp,
    query: &str,
    token: Option<&str>,
    version: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> RequestBuilder {
    let mut req = app
        .client
        .post(format!("{}{query}", app.url(MCP_PATH)))
        .header("Content-Type", "application/json")
        .header("Accept", ACCEPT_BOTH)
        .body(body);
    if let Some(version) = version {
        req = req.header("MCP-Protocol-Version", version);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req
}

/// One JSON-RPC request at protocol 2025-06-18: the status and the body (JSON, else its text).
pub async fn rpc(app: &TestApp, token: &str, method: &str, params: Value) -> (StatusCode, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let res = mcp_post(app, "", Some(token), Some("2025-06-18"), body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `tools/call`, returning the structured result; panics on protocol errors.
pub async fn call(app: &TestApp, token: &str, tool: &str, args: Value) -> Value {
    let (status, body) = rpc(
        app,
        token,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tool}: {body}");
    assert_eq!(body["result"]["isError"], false, "{tool}: {body}");
    body["result"]["structuredContent"].clone()
}
