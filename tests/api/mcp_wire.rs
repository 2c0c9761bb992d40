//! The MCP endpoint's wire contract, locked with raw JSON-RPC bodies and headers (no MCP client
//! library): every protocol version's handshake or discovery, each error class, the transport
//! headers, Origin, gating, the 401/403 challenges, scopes, toolsets and the audit log.
//! Rule ids (T3, V3, W1 …) are those of `reference/mcp-requirements.md`.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coderd::domain::{Experiment, Experiments};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_invalid_token, bearer_challenge, json_body};
use crate::mcp_support::{ACCEPT_BOTH, mcp_post};
use crate::oauth_client::{AuthRequest, MCP_PATH};

both_backends!(
    legacy_handshake_per_version,
    initialize_negotiates_an_unknown_version_to_our_latest,
    modern_discover_and_per_request_meta,
    modern_request_errors,
    legacy_and_modern_clients_both_connect,
    protocol_version_header_rules,
    json_rpc_error_classes,
    tool_call_errors,
    transport_errors,
    batches_only_in_2025_03_26,
    get_and_delete_are_405_and_preflight_precedes_auth,
    origin_is_validated,
    endpoint_is_gated_by_the_experiment,
    api_tokens_work_without_oauth2,
    unusable_tokens_get_the_401_challenge,
    tokens_for_another_resource_are_refused,
    scopes_filter_tools_and_ask_for_step_up,
    toolsets_select_the_tools,
    tools_are_well_described,
    tool_results_carry_structured_content,
    tool_calls_are_audited,
    concurrent_tool_calls_are_all_audited,
    audit_entries_are_written_before_the_server_stops,
    early_answers_close_the_connection,
    a_proxy_host_header_is_accepted,
);

const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
const MODERN: &str = "2026-07-28";
const ALL_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
const WHOAMI: &str = "coder_get_authenticated_user";
const INSPECTOR: &str = "http://localhost:6274";

// ---------------------------------------------------------------------------------------------
// Helpers

async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("request")
}

/// Posts one JSON-RPC message.
async fn post_message(app: &TestApp, token: &str, version: Option<&str>, body: &Value) -> Response {
    send(mcp_post(app, "", Some(token), version, body.to_string())).await
}

/// The status, headers and JSON body of a response.
async fn reply(res: Response) -> (StatusCode, HeaderMap, Value) {
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, json_body(res).await)
}

/// A 200 JSON response's `result`, after checking the envelope echoes `id`.
async fn result_of(res: Response, id: Value) -> Value {
    let (status, headers, body) = reply(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers["content-type"], "application/json",
        "P10: JSON, not SSE"
    );
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], id, "{body}");
    assert!(body.get("error").is_none(), "{body}");
    body["result"].clone()
}

/// Checks a JSON-RPC error response: HTTP status, code, id; returns the error object.
async fn error_of(res: Response, status: StatusCode, code: i64, id: Value) -> Value {
    let (got, headers, body) = reply(res).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(headers["content-type"], "application/json", "{body}");
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], id, "{body}");
    assert!(body.get("result").is_none(), "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"].clone()
}

fn request(id: impl Into<Value>, method: &str, params: Option<Value>) -> Value {
    let mut body = json!({ "jsonrpc": "2.0", "id": id.into(), "method": method });
    if let Some(params) = params {
        body["params"] = params;
    }
    body
}

fn initialize(id: impl Into<Value>, version: &str) -> Value {
    request(
        id,
        "initialize",
        Some(json!({
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "wire-test", "version": "1.0" },
        })),
    )
}

fn notification(method: &str) -> Value {
    json!({ "jsonrpc": "2.0", "method": method })
}

/// The `_meta` every 2026-07-28 request carries (2026-07-28 basic/versioning).
fn modern_meta(version: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "wire-test", "version": "1.0" },
    })
}

/// A 2026-07-28 request: `_meta` in params, `MCP-Protocol-Version` and `Mcp-Method` headers
/// (and `Mcp-Name` for `tools/call`).
fn modern(
    app: &TestApp,
    token: &str,
    id: impl Into<Value>,
    method: &str,
    params: Value,
) -> RequestBuilder {
    let mut params = params;
    params["_meta"] = modern_meta(MODERN);
    let name = params["name"].as_str().map(str::to_owned);
    let mut req = mcp_post(
        app,
        "",
        Some(token),
        Some(MODERN),
        request(id, method, Some(params)).to_string(),
    )
    .header("Mcp-Method", method);
    if let Some(name) = name {
        req = req.header("Mcp-Name", name);
    }
    req
}

/// The names `tools/list` returns (legacy, no header) for `token` with `?toolset=` `query`.
async fn tool_names(app: &TestApp, query: &str, token: &str) -> Vec<String> {
    let res = send(mcp_post(
        app,
        query,
        Some(token),
        None,
        request(1, "tools/list", None).to_string(),
    ))
    .await;
    result_of(res, json!(1)).await["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

fn call_tool(id: impl Into<Value>, name: &str, arguments: Value) -> Value {
    request(
        id,
        "tools/call",
        Some(json!({ "name": name, "arguments": arguments })),
    )
}

/// A new API token for the signed-in user.
async fn api_token(app: &TestApp, session: &str) -> String {
    let res = app
        .post_json(
            "/api/v2/users/me/keys/tokens",
            Some(session),
            &json!({ "token_name": format!("mcp-{}", uuid::Uuid::new_v4().simple()), "lifetime": 0 }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await["key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// An OAuth access token (and its client) granted exactly `scope` by the user behind `session`.
async fn scoped_token(app: &TestApp, session: &str, scope: &str) -> String {
    let client = app.register_claude().await;
    let mut req = AuthRequest::for_client(&client);
    req.scope = Some(scope.into());
    let code = app.authorize_code(session, &req).await;
    let res = app.exchange_code(&client, &code, &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    assert_eq!(tokens["scope"], scope, "{tokens}");
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// The auth-params of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3); values are
/// quoted strings without embedded quotes.
fn prm_url(app: &TestApp) -> String {
    format!("{}/.well-known/oauth-protected-resource{MCP_PATH}", app.url)
}

/// A 401 with the full RFC 6750 / RFC 9728 challenge (W1-W3) and a Coder error body.
/// The MCP endpoint's 401 (mcp-requirements W1-W2): the challenge in this order, pointing at the
/// protected resource metadata and naming the scope basic use needs.
async fn assert_mcp_invalid_token(app: &TestApp, res: Response, description_has: &str) {
    let (raw, params, body) = assert_invalid_token(res).await;
    assert!(
        raw.starts_with("Bearer realm=\"coder\", error=\"invalid_token\", error_description=\""),
        "{raw}"
    );
    assert!(
        params["error_description"]
            .to_lowercase()
            .contains(description_has),
        "{raw}"
    );
    assert_eq!(params["resource_metadata"], prm_url(app), "{raw}");
    let scope: BTreeSet<&str> = params["scope"].split(' ').collect();
    assert!(
        scope.contains("user:read"),
        "W2: the scope basic use needs: {raw}"
    );
    assert!(!scope.contains("offline_access"), "A5: {raw}");
    assert!(body["message"].is_string(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 1. Handshake (2025-11-25 basic/lifecycle)

async fn legacy_handshake_per_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    for (n, version) in LEGACY_VERSIONS.into_iter().enumerate() {
        // The first POST carries no MCP-Protocol-Version (nothing is negotiated yet) …
        let result = result_of(
            post_message(&app, &token, None, &initialize(n as i64, version)).await,
            json!(n),
        )
        .await;
        assert_eq!(
            result["protocolVersion"], version,
            "a supported version is echoed"
        );
        assert_eq!(result["serverInfo"]["name"], "coder");
        assert!(result["serverInfo"]["version"].is_string(), "{result}");
        assert!(result["capabilities"]["tools"].is_object(), "{result}");
        assert!(
            result.get("resultType").is_none(),
            "legacy results: {result}"
        );

        // … but may carry the version it proposes.
        let again = result_of(
            post_message(&app, &token, Some(version), &initialize("again", version)).await,
            json!("again"),
        )
        .await;
        assert_eq!(again["protocolVersion"], version);

        let res = post_message(
            &app,
            &token,
            Some(version),
            &notification("notifications/initialized"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "P3");
        assert_eq!(res.text().await.unwrap(), "", "202 has no body");

        let res = post_message(
            &app,
            &token,
            Some(version),
            &request("ping-1", "ping", None),
        )
        .await;
        let (status, _, body) = reply(res).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"jsonrpc": "2.0", "id": "ping-1", "result": {}})
        );

        let names = tool_names(&app, "", &token).await;
        assert!(names.iter().any(|n| n == WHOAMI), "{names:?}");
    }

    // Stateless: no session is minted, and a session id a client still sends is ignored (§1).
    let res = post_message(&app, &token, None, &initialize("s", "2025-06-18")).await;
    assert!(res.headers().get("mcp-session-id").is_none());
    result_of(res, json!("s")).await;
    let res = send(
        mcp_post(
            &app,
            "",
            Some(&token),
            Some("2025-06-18"),
            request("t", "tools/list", None).to_string(),
        )
        .header("Mcp-Session-Id", "no-such-session"),
    )
    .await;
    result_of(res, json!("t")).await;

    // An initialize whose header contradicts its params is refused.
    let error = error_of(
        post_message(
            &app,
            &token,
            Some("2025-06-18"),
            &initialize(9, "2025-03-26"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        -32600,
        json!(9),
    )
    .await;
    assert!(
        error["message"].as_str().unwrap().contains("2025-06-18"),
        "{error}"
    );
}

async fn initialize_negotiates_an_unknown_version_to_our_latest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    // Unknown: the server MUST answer another version it supports and SHOULD pick its latest
    // (2025-11-25 lifecycle §Version Negotiation).
    for unknown in ["2023-01-01", "2024-10-07", "2030-01-01"] {
        let result = result_of(
            post_message(&app, &token, None, &initialize(1, unknown)).await,
            json!(1),
        )
        .await;
        assert_eq!(result["protocolVersion"], "2025-11-25", "{unknown}");
    }
    // 2026-07-28 has no handshake: an initialize is legacy whatever it names (2026-07-28
    // versioning §Backward Compatibility), so it gets the latest handshake version.
    let result = result_of(
        post_message(&app, &token, None, &initialize(2, MODERN)).await,
        json!(2),
    )
    .await;
    assert_eq!(result["protocolVersion"], "2025-11-25");
}

// ---------------------------------------------------------------------------------------------
// 2. 2026-07-28: server/discover and per-request _meta

async fn modern_discover_and_per_request_meta(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;

    let result = result_of(
        send(modern(&app, &token, "d-1", "server/discover", json!({}))).await,
        json!("d-1"),
    )
    .await;
    assert_eq!(result["resultType"], "complete", "{result}");
    let supported: BTreeSet<&str> = result["supportedVersions"]
        .as_array()
        .expect("supportedVersions")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(supported, BTreeSet::from(ALL_VERSIONS), "both eras (§2.3)");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "coder",
        "{result}"
    );

    // tools/list: a list result carries resultType, ttlMs and cacheScope.
    let result = result_of(
        send(modern(&app, &token, 2, "tools/list", json!({}))).await,
        json!(2),
    )
    .await;
    assert_eq!(result["resultType"], "complete", "{result}");
    assert!(result["ttlMs"].is_u64(), "{result}");
    assert!(result["cacheScope"].is_string(), "{result}");
    let tools = result["tools"].as_array().expect("tools");
    assert!(tools.iter().any(|t| t["name"] == WHOAMI), "{result}");
    // Every result names the server (SHOULD, 2026-07-28 basic/index.mdx).
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "coder",
        "{result}"
    );

    // tools/call, with Mcp-Name.
    let result = result_of(
        send(modern(
            &app,
            &token,
            3,
            "tools/call",
            json!({ "name": WHOAMI, "arguments": {} }),
        ))
        .await,
        json!(3),
    )
    .await;
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["username"], "owner", "{result}");
    let text: Value =
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).expect("JSON text");
    assert_eq!(text, result["structuredContent"], "the same JSON twice");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{result}"
    );
}

async fn modern_request_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let post = |version: Option<&str>, method: &str, body: Value| {
        mcp_post(&app, "", Some(&token), version, body.to_string()).header("Mcp-Method", method)
    };

    // Unsupported version: 400 + -32022 whose data lists both eras' versions.
    let mut params = json!({});
    params["_meta"] = modern_meta("1900-01-01");
    let error = error_of(
        send(post(
            Some("1900-01-01"),
            "tools/list",
            request(1, "tools/list", Some(params)),
        ))
        .await,
        StatusCode::BAD_REQUEST,
        -32022,
        json!(1),
    )
    .await;
    let supported: BTreeSet<&str> = error["data"]["supported"]
        .as_array()
        .expect("data.supported")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(supported, BTreeSet::from(ALL_VERSIONS), "{error}");
    assert_eq!(error["data"]["requested"], "1900-01-01", "{error}");

    // The header must equal _meta: -32020.
    let mut params = json!({});
    params["_meta"] = modern_meta(MODERN);
    error_of(
        send(post(
            Some("2025-11-25"),
            "tools/list",
            request(2, "tools/list", Some(params.clone())),
        ))
        .await,
        StatusCode::BAD_REQUEST,
        -32020,
        json!(2),
    )
    .await;
    // … and is required with _meta: -32020.
    error_of(
        send(mcp_post(
            &app,
            "",
            Some(&token),
            None,
            request(3, "tools/list", Some(params.clone())).to_string(),
        ))
        .await,
        StatusCode::BAD_REQUEST,
        -32020,
        json!(3),
    )
    .await;
    // Mcp-Method is required too (§3.6): -32020.
    error_of(
        send(mcp_post(
            &app,
            "",
            Some(&token),
            Some(MODERN),
            request(4, "tools/list", Some(params.clone())).to_string(),
        ))
        .await,
        StatusCode::BAD_REQUEST,
        -32020,
        json!(4),
    )
    .await;
    // … and must name the body's method.
    error_of(
        send(post(
            Some(MODERN),
            "tools/call",
            request(5, "tools/list", Some(params.clone())),
        ))
        .await,
        StatusCode::BAD_REQUEST,
        -32020,
        json!(5),
    )
    .await;

    // tools/call also needs Mcp-Name, equal to params.name.
    let mut call = json!({ "name": WHOAMI, "arguments": {} });
    call["_meta"] = modern_meta(MODERN);
    for (id, name) in [(51, None), (52, Some("coder_list_workspaces"))] {
        let mut req = post(
            Some(MODERN),
            "tools/call",
            request(id, "tools/call", Some(call.clone())),
        );
        if let Some(name) = name {
            req = req.header("Mcp-Name", name);
        }
        error_of(send(req).await, StatusCode::BAD_REQUEST, -32020, json!(id)).await;
    }

    // Missing required _meta: 400 + -32602 (2026-07-28 basic/index).
    for (id, params) in [
        (6, Some(json!({}))),
        (
            7,
            Some(json!({"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}})),
        ),
    ] {
        error_of(
            send(post(
                Some(MODERN),
                "tools/list",
                request(id, "tools/list", params),
            ))
            .await,
            StatusCode::BAD_REQUEST,
            -32602,
            json!(id),
        )
        .await;
    }
    for (id, params) in [(8, Some(json!({}))), (9, None)] {
        error_of(
            send(post(
                Some(MODERN),
                "server/discover",
                request(id, "server/discover", params.clone()),
            ))
            .await,
            StatusCode::BAD_REQUEST,
            -32602,
            json!(id),
        )
        .await;
        // A discover probe without any of the modern signals is still a discover: it needs
        // its _meta, and a probe is never answered with a 200-bodied error (§2.4).
        error_of(
            send(mcp_post(
                &app,
                "",
                Some(&token),
                None,
                request(id, "server/discover", params).to_string(),
            ))
            .await,
            StatusCode::BAD_REQUEST,
            -32602,
            json!(id),
        )
        .await;
    }

    // Unknown method: 404 + -32601 (§3.6), with the request id.
    error_of(
        send(modern(&app, &token, "u", "no/such/method", json!({}))).await,
        StatusCode::NOT_FOUND,
        -32601,
        json!("u"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. Dual era (§2.3, §2.4)

async fn legacy_and_modern_clients_both_connect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;

    // A legacy client that never heard of server/discover (TS SDK v1, claude.ai web).
    let result = result_of(
        post_message(&app, &token, None, &initialize(0, "2025-06-18")).await,
        json!(0),
    )
    .await;
    assert_eq!(result["protocolVersion"], "2025-06-18");
    let res = post_message(
        &app,
        &token,
        Some("2025-06-18"),
        &notification("notifications/initialized"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let result = result_of(
        post_message(
            &app,
            &token,
            Some("2025-06-18"),
            &request(1, "tools/list", None),
        )
        .await,
        json!(1),
    )
    .await;
    assert!(
        result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == WHOAMI),
        "{result}"
    );
    let result = result_of(
        post_message(
            &app,
            &token,
            Some("2025-06-18"),
            &call_tool(2, WHOAMI, json!({})),
        )
        .await,
        json!(2),
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");

    // A modern client (TS SDK v2, Claude Code, Python SDK 2.x) probes first. Unauthenticated,
    // the probe gets a 401, which is an auth verdict, never an era verdict (§2.4).
    let res = send(
        mcp_post(
            &app,
            "",
            None,
            Some(MODERN),
            request(
                "probe",
                "server/discover",
                Some(json!({ "_meta": modern_meta(MODERN) })),
            )
            .to_string(),
        )
        .header("Mcp-Method", "server/discover"),
    )
    .await;
    assert_mcp_invalid_token(&app, res, "no access token").await;
    let result = result_of(
        send(modern(&app, &token, "probe", "server/discover", json!({}))).await,
        json!("probe"),
    )
    .await;
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN)),
        "{result}"
    );
    let result = result_of(
        send(modern(&app, &token, 3, "tools/list", json!({}))).await,
        json!(3),
    )
    .await;
    assert!(
        result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == WHOAMI),
        "{result}"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. MCP-Protocol-Version (V2, V3)

async fn protocol_version_header_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;

    for (id, bad) in [(1, "banana"), (2, "2099-01-01"), (3, "2025-06-18x")] {
        let error = error_of(
            post_message(&app, &token, Some(bad), &request(id, "tools/list", None)).await,
            StatusCode::BAD_REQUEST,
            -32000,
            json!(id),
        )
        .await;
        // The TS reference lists the supported versions (§7.2).
        let supported: BTreeSet<&str> = error["data"]["supported"]
            .as_array()
            .expect("data.supported")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(supported, BTreeSet::from(ALL_VERSIONS), "{error}");
        assert_eq!(error["data"]["requested"], bad, "{error}");
    }
    // Notifications are checked too.
    let res = post_message(
        &app,
        &token,
        Some("banana"),
        &notification("notifications/initialized"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Absent: assume 2025-03-26 (V2), which works; so does naming any legacy version.
    result_of(
        post_message(&app, &token, None, &request(4, "ping", None)).await,
        json!(4),
    )
    .await;
    for version in LEGACY_VERSIONS {
        let result = result_of(
            post_message(&app, &token, Some(version), &request(5, "tools/list", None)).await,
            json!(5),
        )
        .await;
        assert!(result["tools"].is_array(), "{version}: {result}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Errors (§7.1, §7.2)

async fn json_rpc_error_classes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let raw = |body: &str| {
        send(mcp_post(
            &app,
            "",
            Some(&token),
            Some("2025-06-18"),
            body.to_owned(),
        ))
    };

    // Not JSON: 400, -32700, id null.
    for body in [
        "{not json",
        "",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"",
    ] {
        error_of(
            raw(body).await,
            StatusCode::BAD_REQUEST,
            -32700,
            Value::Null,
        )
        .await;
    }
    // JSON, not JSON-RPC: 400, -32600.
    for body in [
        json!({"hello": "world"}),
        json!("ping"),
        json!(42),
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 1}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": "not structured"}),
    ] {
        error_of(
            raw(&body.to_string()).await,
            StatusCode::BAD_REQUEST,
            -32600,
            Value::Null,
        )
        .await;
    }
    // Unknown method (legacy): 200, -32601, the request's id.
    for id in [json!(10), json!("ten")] {
        error_of(
            raw(&request(id.clone(), "no/such/method", None).to_string()).await,
            StatusCode::OK,
            -32601,
            id,
        )
        .await;
    }
    // A method we serve whose params do not follow the schema: -32602, not -32601.
    error_of(
        raw(&request(11, "initialize", None).to_string()).await,
        StatusCode::OK,
        -32602,
        json!(11),
    )
    .await;
}

async fn tool_call_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let v = Some("2025-11-25");

    // Unknown tool: 200, -32602 naming it (2025-11-25 server/tools §Error Handling).
    let error = error_of(
        post_message(
            &app,
            &token,
            v,
            &call_tool(1, "coder_no_such_tool", json!({})),
        )
        .await,
        StatusCode::OK,
        -32602,
        json!(1),
    )
    .await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("coder_no_such_tool"),
        "{error}"
    );

    // Malformed tools/call params: 200, -32602.
    for (id, params) in [
        (2, None),
        (3, Some(json!({ "name": 5 }))),
        (4, Some(json!({ "arguments": {} }))),
        (
            5,
            Some(json!({ "name": WHOAMI, "arguments": "not an object" })),
        ),
    ] {
        error_of(
            post_message(&app, &token, v, &request(id, "tools/call", params)).await,
            StatusCode::OK,
            -32602,
            json!(id),
        )
        .await;
    }

    // Arguments the tool's schema refuses: an isError result (SEP-1303) carrying the schema.
    for (id, arguments) in [
        (6, json!({ "unexpected": 1 })),
        (7, json!({ "workspace": ["a"] })),
    ] {
        let result = result_of(
            post_message(&app, &token, v, &call_tool(id, WHOAMI, arguments)).await,
            json!(id),
        )
        .await;
        assert_eq!(result["isError"], true, "{result}");
        let text = result["content"][0]["text"].as_str().expect("text content");
        assert!(text.contains("expectedSchema"), "{text}");
        let parsed: Value = serde_json::from_str(text).expect("the error text is JSON");
        assert!(
            parsed["error"].as_str().unwrap().contains(WHOAMI),
            "{parsed}"
        );
        assert_eq!(parsed["expectedSchema"]["type"], "object", "{parsed}");
        assert_eq!(
            parsed["expectedSchema"]["additionalProperties"], false,
            "{parsed}"
        );
    }
}

async fn transport_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let ping = request(1, "ping", None).to_string();
    let post = |content_type: Option<&str>, accept: Option<&str>, body: String| {
        let mut req = app
            .client
            .post(app.url(MCP_PATH))
            .bearer_auth(&token)
            .header("MCP-Protocol-Version", "2025-06-18")
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(accept) = accept {
            req = req.header("Accept", accept);
        }
        req.send()
    };

    // Content-Type not JSON: 415 (P2), -32000.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let res = post(content_type, Some(ACCEPT_BOTH), ping.clone())
            .await
            .unwrap();
        error_of(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, -32000, Value::Null).await;
    }
    // … a parameter is fine.
    let res = post(
        Some("application/json; charset=utf-8"),
        Some(ACCEPT_BOTH),
        ping.clone(),
    )
    .await
    .unwrap();
    result_of(res, json!(1)).await;
    // The media type is judged before the body.
    let res = post(Some("text/plain"), Some(ACCEPT_BOTH), "{nope".into())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Accept lacking one of the two: 406 (P2), -32000.
    for accept in [
        Some("application/json"),
        Some("text/event-stream"),
        Some("application/json, text/event-stream;q=0"),
        None,
    ] {
        let res = post(Some("application/json"), accept, ping.clone())
            .await
            .unwrap();
        error_of(res, StatusCode::NOT_ACCEPTABLE, -32000, Value::Null).await;
    }
    let res = post(
        Some("application/json"),
        Some("text/event-stream; q=0.5, application/json"),
        ping.clone(),
    )
    .await
    .unwrap();
    result_of(res, json!(1)).await;

    // Over 8 MiB: 413.
    let big = json!({
        "jsonrpc": "2.0", "id": 1, "method": "ping",
        "params": { "padding": "x".repeat(8 * 1024 * 1024 + 1) },
    })
    .to_string();
    let res = post(Some("application/json"), Some(ACCEPT_BOTH), big)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is served.
    let fits = json!({
        "jsonrpc": "2.0", "id": 1, "method": "ping",
        "params": { "padding": "x".repeat(8 * 1024 * 1024 - 100) },
    })
    .to_string();
    let res = post(Some("application/json"), Some(ACCEPT_BOTH), fits)
        .await
        .unwrap();
    result_of(res, json!(1)).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Batches (2025-03-26 only)

async fn batches_only_in_2025_03_26(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let batch = json!([request(1, "ping", None), request("two", "tools/list", None)]);

    for version in [None, Some("2025-03-26")] {
        let (status, headers, body) =
            reply(post_message(&app, &token, version, &batch).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        let replies = body.as_array().expect("an array of responses");
        assert_eq!(replies.len(), 2, "{body}");
        let by_id = |id: Value| {
            replies
                .iter()
                .find(|r| r["id"] == id)
                .unwrap_or_else(|| panic!("no reply for {id}: {body}"))
        };
        assert_eq!(by_id(json!(1))["result"], json!({}));
        assert_eq!(by_id(json!(1))["jsonrpc"], "2.0");
        assert!(
            by_id(json!("two"))["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == WHOAMI),
            "{body}"
        );
    }

    // Only notifications: 202, no body.
    let res = post_message(
        &app,
        &token,
        None,
        &json!([notification("notifications/initialized")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.text().await.unwrap(), "");

    // Requests and notifications: only the requests are answered.
    let (status, _, body) = reply(
        post_message(
            &app,
            &token,
            None,
            &json!([
                notification("notifications/initialized"),
                request(3, "ping", None)
            ]),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([{"jsonrpc": "2.0", "id": 3, "result": {}}]));

    // An invalid element gets its own -32600 with id null (JSON-RPC 2.0 §6).
    let (status, _, body) =
        reply(post_message(&app, &token, None, &json!([request(4, "ping", None), 5])).await).await;
    assert_eq!(status, StatusCode::OK);
    let replies = body.as_array().expect("array");
    assert_eq!(replies.len(), 2, "{body}");
    assert!(
        replies.contains(&json!({"jsonrpc": "2.0", "id": 4, "result": {}})),
        "{body}"
    );
    assert!(
        replies
            .iter()
            .any(|r| r["id"].is_null() && r["error"]["code"] == -32600),
        "{body}"
    );

    // Removed in 2025-06-18: 400, -32600.
    for version in ["2025-06-18", "2025-11-25"] {
        error_of(
            post_message(&app, &token, Some(version), &batch).await,
            StatusCode::BAD_REQUEST,
            -32600,
            Value::Null,
        )
        .await;
    }
    // An empty array is an invalid request (JSON-RPC 2.0 §6).
    error_of(
        post_message(&app, &token, None, &json!([])).await,
        StatusCode::BAD_REQUEST,
        -32600,
        Value::Null,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. Methods and CORS (G2, S5, §3.7)

async fn get_and_delete_are_405_and_preflight_precedes_auth(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.mcp_allowed_origins = vec![INSPECTOR.into()];
    })
    .await;
    let token = app.create_owner().await;

    for method in [Method::GET, Method::DELETE, Method::PUT, Method::PATCH] {
        let res = app
            .client
            .request(method.clone(), app.url(MCP_PATH))
            .bearer_auth(&token)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let allow: BTreeSet<String> = res.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert!(allow.contains("POST"), "{method}: {allow:?}");
        assert!(
            !allow.contains("GET") && !allow.contains("DELETE"),
            "{allow:?}"
        );
    }

    // The preflight is answered before authentication: no token, 204.
    let res = app
        .client
        .request(Method::OPTIONS, app.url(MCP_PATH))
        .header("Origin", INSPECTOR)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let headers = res.headers();
    assert_eq!(headers["access-control-allow-origin"], INSPECTOR);
    assert!(headers.get("www-authenticate").is_none());
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "accept",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
    ] {
        assert!(allowed.contains(needed), "{needed} in {allowed}");
    }
    assert_eq!(res.text().await.unwrap(), "");
}

// ---------------------------------------------------------------------------------------------
// 8. Origin (T2, T3, T6)

async fn origin_is_validated(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.mcp_allowed_origins = vec![INSPECTOR.into()];
    })
    .await;
    let token = app.create_owner().await;
    let ping = |origin: Option<&str>, token: Option<&str>| {
        let mut req = mcp_post(&app, "", token, None, request(1, "ping", None).to_string());
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        req.send()
    };

    // No Origin: servers and SDKs.
    let res = ping(None, Some(&token)).await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    result_of(res, json!(1)).await;

    // The access URL's own origin.
    let res = ping(Some(&app.url), Some(&token)).await.unwrap();
    result_of(res, json!(1)).await;

    // An allowlisted browser origin, with CORS headers for the page.
    let res = ping(Some(INSPECTOR), Some(&token)).await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], INSPECTOR);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    result_of(res, json!(1)).await;

    // Anything else: 403, whatever the token, and before authentication.
    for origin in [
        "https://evil.example",
        "http://localhost:6275",
        "null",
        "http://127.0.0.1.evil.example",
    ] {
        for token in [Some(token.as_str()), None] {
            let res = ping(Some(origin), token).await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{origin}");
            assert!(res.headers().get("access-control-allow-origin").is_none());
            assert!(res.headers().get("www-authenticate").is_none());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Gating

async fn endpoint_is_gated_by_the_experiment(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&[Experiment::OAuth2]);
    })
    .await;
    let token = app.create_owner().await;
    for token in [Some(token.as_str()), None] {
        let res = send(mcp_post(
            &app,
            "",
            token,
            None,
            initialize(1, "2025-06-18").to_string(),
        ))
        .await;
        let (status, _, body) = reply(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("'mcp-server-http'"),
            "{body}"
        );
    }
}

async fn api_tokens_work_without_oauth2(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&[Experiment::McpServerHttp]);
    })
    .await;
    let session = app.create_owner().await;
    let key = api_token(&app, &session).await;

    // API and session tokens, as Bearer or in Coder-Session-Token.
    for token in [&key, &session] {
        let names = tool_names(&app, "", token).await;
        assert!(names.iter().any(|n| n == WHOAMI), "{names:?}");
        let res = app
            .client
            .post(app.url(MCP_PATH))
            .header("Content-Type", "application/json")
            .header("Accept", ACCEPT_BOTH)
            .header("Coder-Session-Token", token.as_str())
            .body(call_tool(1, WHOAMI, json!({})).to_string())
            .send()
            .await
            .unwrap();
        let result = result_of(res, json!(1)).await;
        assert_eq!(result["structuredContent"]["username"], "owner");
    }

    // No authorization server, so no resource_metadata to point at (RFC 9728 §5.1).
    let res = send(mcp_post(
        &app,
        "",
        None,
        None,
        initialize(1, "2025-06-18").to_string(),
    ))
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let raw = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        raw.starts_with("Bearer realm=\"coder\", error=\"invalid_token\", error_description=\""),
        "{raw}"
    );
    let params = bearer_challenge(res.headers());
    assert!(!params["error_description"].is_empty(), "{raw}");
    assert!(!params.contains_key("resource_metadata"), "{raw}");
    assert!(!raw.contains("resource_metadata"), "{raw}");
}

// ---------------------------------------------------------------------------------------------
// 10. 401 challenges (W1-W3, B1)

async fn unusable_tokens_get_the_401_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let list = request(1, "tools/list", None).to_string();
    let post =
        |token: Option<&str>| send(mcp_post(&app, "", token, Some("2025-06-18"), list.clone()));

    assert_mcp_invalid_token(&app, post(None).await, "no access token").await;
    assert_mcp_invalid_token(&app, post(Some("garbage")).await, "").await;
    assert_mcp_invalid_token(
        &app,
        post(Some(
            "coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        ))
        .await,
        "",
    )
    .await;
    assert_mcp_invalid_token(
        &app,
        post(Some("eyJhbGciOiJub25lIn0.e30.")).await,
        "invalid",
    )
    .await;
    // Authenticated before the body is read (W7): even a non-JSON body gets the 401.
    assert_mcp_invalid_token(
        &app,
        send(mcp_post(&app, "", None, None, "{not json")).await,
        "no access token",
    )
    .await;

    // Expired.
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    result_of(post(Some(&access)).await, json!(1)).await;
    app.clock.advance(chrono::Duration::minutes(61));
    assert_mcp_invalid_token(&app, post(Some(&access)).await, "expired").await;

    // Revoked.
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    result_of(post(Some(&access)).await, json!(1)).await;
    let res = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("token", access.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_mcp_invalid_token(&app, post(Some(&access)).await, "revoked").await;

    // Never from the query string (B1), whatever the name.
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    result_of(post(Some(&access)).await, json!(1)).await;
    for query in [
        format!("?access_token={access}"),
        format!("?coder_session_token={session}"),
        format!("?toolset=standard&access_token={access}"),
    ] {
        let res = send(mcp_post(&app, &query, None, None, list.clone())).await;
        assert_mcp_invalid_token(&app, res, "no access token").await;
    }
}

async fn tokens_for_another_resource_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let session = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let list = request(1, "tools/list", None).to_string();

    // A token signed with our key, for our issuer, but for another resource (RFC 8707).
    let payload = access.split('.').nth(1).unwrap();
    let mut claims: coderd::oauth::jwt::AccessTokenClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims.aud = "https://other.example.com/api/experimental/mcp/http".into();
    let foreign = coderd::oauth::jwt::sign(&app.state.oauth.keys().current(), &claims).unwrap();
    let res = send(mcp_post(&app, "", Some(&foreign), None, list.clone())).await;
    assert_mcp_invalid_token(&app, res, "audience").await;

    // A token another Coder deployment issued: its signature is unknown here.
    let other = TestApp::spawn(backend).await;
    let other_session = other.create_owner().await;
    let other_client = other.register_claude().await;
    let other_tokens = other.obtain_tokens(&other_session, &other_client).await;
    let res = send(mcp_post(
        &app,
        "",
        other_tokens["access_token"].as_str(),
        None,
        list.clone(),
    ))
    .await;
    assert_mcp_invalid_token(&app, res, "").await;

    // Ours still works.
    result_of(
        send(mcp_post(&app, "", Some(access), None, list)).await,
        json!(1),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 11. Scopes (W4)

async fn scopes_filter_tools_and_ask_for_step_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;

    // user:read sees the tools that need only user:read: today, and with every later tool.
    let user_read = scoped_token(&app, &owner, "user:read").await;
    assert_eq!(
        tool_names(&app, "", &user_read).await,
        vec![WHOAMI.to_owned()]
    );

    // Without user:read the tool is hidden, and calling it asks for a step-up: 403 naming
    // the scope (2025-11-25 authorization §Runtime Insufficient Scope Errors).
    let narrow = scoped_token(&app, &owner, "workspaces:read").await;
    let names = tool_names(&app, "", &narrow).await;
    assert!(!names.iter().any(|n| n == WHOAMI), "{names:?}");
    let res = post_message(
        &app,
        &narrow,
        Some("2025-11-25"),
        &call_tool(1, WHOAMI, json!({})),
    )
    .await;
    let (status, headers, body) = reply(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let raw = headers["www-authenticate"].to_str().unwrap();
    assert!(
        raw.starts_with("Bearer realm=\"coder\", error=\"insufficient_scope\""),
        "{raw}"
    );
    let params = bearer_challenge(&headers);
    assert_eq!(params["error"], "insufficient_scope");
    assert_eq!(params["scope"], "user:read", "{raw}");
    assert_eq!(params["resource_metadata"], prm_url(&app), "{raw}");
    assert!(params["error_description"].contains(WHOAMI), "{raw}");
    assert!(body["message"].is_string(), "{body}");

    // The same in a 2026-07-28 request.
    let res = send(modern(
        &app,
        &narrow,
        2,
        "tools/call",
        json!({ "name": WHOAMI, "arguments": {} }),
    ))
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(bearer_challenge(res.headers())["scope"], "user:read");

    // A tool the toolset does not offer is unknown, not a step-up.
    error_of(
        send(mcp_post(
            &app,
            "?toolset=chatgpt",
            Some(&narrow),
            None,
            call_tool(3, WHOAMI, json!({})).to_string(),
        ))
        .await,
        StatusCode::OK,
        -32602,
        json!(3),
    )
    .await;

    // API and session tokens act with the user's full rights: every tool a full grant shows.
    let everything = scoped_token(
        &app,
        &owner,
        "user:read workspaces:read workspaces:write workspaces:exec templates:read templates:write",
    )
    .await;
    let full = tool_names(&app, "", &everything).await;
    let key = api_token(&app, &owner).await;
    assert_eq!(tool_names(&app, "", &key).await, full);
    assert_eq!(tool_names(&app, "", &owner).await, full);
    // A member's API token never sees more than the owner's.
    let member = app.create_member(&owner, "bob").await;
    let member_names = tool_names(&app, "", &member).await;
    assert!(member_names.iter().any(|n| n == WHOAMI));
    assert!(
        member_names.iter().all(|n| full.contains(n)),
        "{member_names:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 12. Toolsets

async fn toolsets_select_the_tools(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;

    let default = tool_names(&app, "", &token).await;
    assert!(default.iter().any(|n| n == WHOAMI), "{default:?}");
    assert_eq!(tool_names(&app, "?toolset=standard", &token).await, default);

    // Workspace operations and discovery only: no template administration.
    let workspace = tool_names(&app, "?toolset=workspace", &token).await;
    assert!(!workspace.is_empty());
    assert!(
        workspace.iter().all(|n| default.contains(n)),
        "{workspace:?}"
    );
    for admin in [
        "coder_upload_tar_file",
        "coder_create_template_version",
        "coder_create_template",
        "coder_update_template_active_version",
        "coder_delete_template",
    ] {
        assert!(
            !workspace.iter().any(|n| n == admin),
            "{admin} in {workspace:?}"
        );
    }

    // ChatGPT's connector contract: exactly `search` and `fetch`, nothing else (§6.3).
    let chatgpt: BTreeSet<String> = tool_names(&app, "?toolset=chatgpt", &token)
        .await
        .into_iter()
        .collect();
    assert_eq!(
        chatgpt,
        BTreeSet::from(["fetch".to_owned(), "search".to_owned()])
    );
    assert!(
        !default.iter().any(|n| n == "search" || n == "fetch"),
        "search and fetch belong to the chatgpt toolset only: {default:?}"
    );
    // A standard tool is unknown there.
    error_of(
        send(mcp_post(
            &app,
            "?toolset=chatgpt",
            Some(&token),
            None,
            call_tool(2, WHOAMI, json!({})).to_string(),
        ))
        .await,
        StatusCode::OK,
        -32602,
        json!(2),
    )
    .await;

    // Unknown toolset: 400 with Coder's error body, before authentication.
    for token in [Some(token.as_str()), None] {
        let res = send(mcp_post(
            &app,
            "?toolset=bogus",
            token,
            None,
            request(1, "tools/list", None).to_string(),
        ))
        .await;
        let (status, _, body) = reply(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["message"], "Invalid toolset: bogus", "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// 13. Tool quality (§1, §6.1)

async fn tools_are_well_described(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    for query in ["", "?toolset=workspace", "?toolset=chatgpt"] {
        let res = send(mcp_post(
            &app,
            query,
            Some(&token),
            Some("2025-11-25"),
            request(1, "tools/list", None).to_string(),
        ))
        .await;
        let result = result_of(res, json!(1)).await;
        let tools = result["tools"].as_array().expect("tools");
        let mut seen = BTreeSet::new();
        for tool in tools {
            let name = tool["name"].as_str().expect("name");
            assert!(seen.insert(name.to_owned()), "duplicate {name}");
            assert!(
                (1..=128).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "tool-name rules: {name}"
            );
            for field in ["title", "description"] {
                assert!(
                    tool[field].as_str().is_some_and(|s| !s.trim().is_empty()),
                    "{name}.{field}"
                );
            }
            let schema = &tool["inputSchema"];
            assert_eq!(schema["type"], "object", "{name}");
            assert_eq!(schema["additionalProperties"], false, "{name}");
            if let Some(properties) = schema["properties"].as_object() {
                for (property, spec) in properties {
                    assert!(
                        spec["description"].is_string(),
                        "{name}.{property} is described"
                    );
                }
            }
            let annotations = &tool["annotations"];
            for hint in [
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                assert!(
                    annotations[hint].is_boolean(),
                    "{name}.annotations.{hint}: {tool}"
                );
            }
        }
    }
}

async fn tool_results_carry_structured_content(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let me = json_body(app.get("/api/v2/users/me", Some(&session)).await).await;

    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let result = result_of(
            post_message(
                &app,
                &session,
                Some(version),
                &call_tool(1, WHOAMI, json!({})),
            )
            .await,
            json!(1),
        )
        .await;
        assert_eq!(result["isError"], false, "{result}");
        let content = result["content"].as_array().expect("content");
        assert_eq!(content.len(), 1, "{result}");
        assert_eq!(content[0]["type"], "text");
        let text: Value =
            serde_json::from_str(content[0]["text"].as_str().unwrap()).expect("JSON text");
        assert_eq!(text, result["structuredContent"], "the same JSON twice");
        let user = &result["structuredContent"];
        assert_eq!(user["id"], me["id"]);
        assert_eq!(user["username"], "owner");
        assert_eq!(user["email"], "owner@example.com");
        assert!(
            result.get("_meta").is_none(),
            "handshake-era results: {result}"
        );
    }
    // A missing `arguments` is an empty object.
    let result = result_of(
        post_message(
            &app,
            &session,
            None,
            &request(2, "tools/call", Some(json!({ "name": WHOAMI }))),
        )
        .await,
        json!(2),
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");
}

// ---------------------------------------------------------------------------------------------
// 14. Audit

async fn tool_calls_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let me = json_body(app.get("/api/v2/users/me", Some(&session)).await).await;
    let user_id = me["id"].as_str().unwrap().to_owned();
    let calls = || async {
        app.audit_logs()
            .await
            .into_iter()
            .filter(|e| e.action == "mcp.tool.call")
            .collect::<Vec<_>>()
    };

    // An OAuth client's call names the client.
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    result_of(
        post_message(&app, access, None, &call_tool(1, WHOAMI, json!({}))).await,
        json!(1),
    )
    .await;
    let entries = calls().await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.resource_type, "mcp_tool");
    assert_eq!(entry.resource_id, WHOAMI);
    assert_eq!(
        entry.user_id.map(|u| u.0.to_string()),
        Some(user_id.clone())
    );
    assert_eq!(
        entry.client_id.map(|c| c.to_string()),
        Some(client.id.clone())
    );
    assert_eq!(entry.details["outcome"], "success", "{:?}", entry.details);
    assert!(entry.details["duration_ms"].is_u64(), "{:?}", entry.details);
    assert!(!entry.ip.is_empty());

    // An API token's call has no client; a failed call is recorded as an error.
    let key = api_token(&app, &session).await;
    let result = result_of(
        post_message(
            &app,
            &key,
            None,
            &call_tool(2, WHOAMI, json!({ "secret": "hunter2" })),
        )
        .await,
        json!(2),
    )
    .await;
    assert_eq!(result["isError"], true);
    let entries = calls().await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let failed = entries
        .iter()
        .find(|e| e.client_id.is_none())
        .expect("the API token's call");
    assert_eq!(failed.user_id.map(|u| u.0.to_string()), Some(user_id));
    assert_eq!(failed.details["outcome"], "error");
    assert!(failed.details["duration_ms"].is_u64());
    assert!(
        !failed.details.to_string().contains("hunter2"),
        "arguments are never logged: {:?}",
        failed.details
    );

    // Protocol faults run no tool and are not tool calls.
    error_of(
        post_message(
            &app,
            &key,
            None,
            &call_tool(3, "coder_no_such_tool", json!({})),
        )
        .await,
        StatusCode::OK,
        -32602,
        json!(3),
    )
    .await;
    assert_eq!(calls().await.len(), 2);
}

/// Entries are written in batches by a background task: a burst of calls must come out as
/// exactly one entry per call.
async fn concurrent_tool_calls_are_all_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let key = api_token(&app, &session).await;
    let calls = (0..60).map(|id| {
        let (app, key) = (&app, &key);
        async move {
            let reply = post_message(app, key, None, &call_tool(id, WHOAMI, json!({}))).await;
            result_of(reply, json!(id)).await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|r| r["isError"] == false));
    let entries: Vec<_> = app
        .audit_logs()
        .await
        .into_iter()
        .filter(|e| e.action == "mcp.tool.call")
        .collect();
    assert_eq!(entries.len(), 60, "one entry per call");
}

/// A graceful stop writes what is still queued before it closes the database.
async fn audit_entries_are_written_before_the_server_stops(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let key = api_token(&app, &session).await;
    let calls = (0..100).map(|id| {
        let (app, key) = (&app, &key);
        async move { post_message(app, key, None, &call_tool(id, WHOAMI, json!({}))).await }
    });
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status(), StatusCode::OK);
    }
    // Queued faster than the writer stores them, right before the stop.
    for i in 0..3000 {
        let event = coderd::audit::AuditEvent::new("test.burst", "test", i);
        app.state.audit.record(event).await;
    }
    let app = app.restart().await;
    let logs = app.audit_logs().await;
    let count = |action: &str| logs.iter().filter(|e| e.action == action).count();
    assert_eq!(count("mcp.tool.call"), 100);
    assert_eq!(count("test.burst"), 3000);
}

/// A 401 sent before the body arrives must say `Connection: close`: hyper drops the connection
/// afterwards, and a client reusing it (httpx in the Python SDK) would lose its next request.
async fn early_answers_close_the_connection(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(backend).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/experimental/mcp/http HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut reply = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]).to_ascii_lowercase();
    assert!(reply.starts_with("http/1.1 401"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
}

/// Behind a reverse proxy the Host header is the public name, not the listen address; the MCP
/// endpoint must not refuse it (only Origin is checked).
async fn a_proxy_host_header_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let res = app
        .client
        .post(app.url(MCP_PATH))
        .header("Host", "coder.example.com")
        .header("Accept", "application/json, text/event-stream")
        .bearer_auth(&owner)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
