//! The HTTP side of the MCP endpoint. In order: the experiment gate, the `Origin` check (DNS
//! rebinding, mcp-requirements T2-T3), the toolset, authentication (before the body is read,
//! W7), the media type and JSON-RPC checks of `wire` (§7.2), the scope check for `tools/call`
//! (W4), 2025-03-26 batches, then rmcp's stateless streamable HTTP service with JSON responses.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokio::sync::SemaphorePermit;
use tower::ServiceExt;

use super::admission::Admission;
use super::auth::{self, UserCache};
use super::handler::{Caller, CoderMcp};
use super::rendered::{RenderSlot, Rendered};
use super::tools::{self, ToolDef};
use super::toolset::Toolset;
use super::wire;
use crate::domain::{Experiment, ScopeSet};
use crate::oauth::resource::MCP_PATH;
use crate::web::{ApiError, AppState};

/// The largest request body: room for `coder_workspace_write_file` content.
const MAX_BODY: usize = 8 * 1024 * 1024;
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Coder-Session-Token, \
     MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Session-Id, Last-Event-ID";

type Service = StreamableHttpService<CoderMcp, LocalSessionManager>;

struct Endpoint {
    service: Service,
    users: UserCache,
    admission: Admission,
}

pub fn routes(state: &AppState) -> Router<AppState> {
    let handler_state = state.clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY)
        // Host checks would break deployments behind a reverse proxy; Origin is checked above.
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let endpoint = Arc::new(Endpoint {
        service: StreamableHttpService::new(
            move || Ok(CoderMcp::new(handler_state.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        ),
        users: UserCache::default(),
        admission: match state.settings.mcp_max_concurrent_requests {
            Some(slots) => Admission::new(slots),
            None => Admission::for_this_machine(),
        },
    });
    Router::new().route(
        MCP_PATH,
        any(move |State(state): State<AppState>, request: Request| {
            let endpoint = endpoint.clone();
            async move { endpoint.handle(state, request).await }
        }),
    )
}

impl Endpoint {
    async fn handle(&self, state: AppState, request: Request) -> Response {
        if !state.experiment_enabled(Experiment::McpServerHttp) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "MCP HTTP Server functionality requires enabling the 'mcp-server-http' experiment.",
            )
            .with_detail(
                "Start the server with --experiments=mcp-server-http (or CODER_EXPERIMENTS).",
            )
            .into_response();
        }
        let origin = match check_origin(&state, request.headers()) {
            Ok(origin) => origin,
            Err(response) => return *response,
        };
        let response = match *request.method() {
            Method::OPTIONS => preflight(),
            Method::POST => self.post(&state, request).await,
            // Stateless: no GET stream and no session to delete (MCP 2026-07-28; 405 is what
            // legacy clients expect when a server offers neither, mcp-requirements G2, S5).
            _ => {
                let mut response = jsonrpc_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Value::Null,
                    -32600,
                    "The MCP endpoint accepts POST only.",
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
                response
            }
        };
        with_cors(response, origin)
    }

    async fn post(&self, state: &AppState, request: Request) -> Response {
        let started = std::time::Instant::now();
        let toolset = match Toolset::from_query(request.uri().query()) {
            Ok(t) => t,
            Err(name) => {
                return ApiError::bad_request(format!("Invalid toolset: {name}"))
                    .with_detail("Use toolset=standard, workspace or chatgpt.")
                    .into_response();
            }
        };
        let principal = match auth::authenticate(
            state,
            &self.users,
            request.headers(),
            &tools::scopes_for(toolset),
        )
        .await
        {
            Ok(p) => p,
            Err(response) => {
                let outcome = match response.status() {
                    StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                    StatusCode::UNAUTHORIZED => "unauthorized",
                    _ => "error",
                };
                state
                    .metrics
                    .mcp_request("unknown", "", outcome, started.elapsed());
                return response;
            }
        };
        // Our own media type checks, so they keep their place before the body checks below and
        // answer in JSON-RPC (mcp-requirements P2, §7.2).
        if let Some(rejection) = wire::check_media_types(request.headers()) {
            return rejection.into_response();
        }
        let ip = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return jsonrpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Value::Null,
                    -32600,
                    &format!("The request body exceeds {} MiB.", MAX_BODY / (1024 * 1024)),
                );
            }
        };
        let caller = Caller {
            principal,
            toolset,
            ip,
            report: Arc::default(),
        };
        match wire::parse(&bytes) {
            Ok(Value::Array(messages)) => {
                let called: Vec<_> = messages.iter().map(called_tool).collect();
                let _slot = self
                    .slot(called.iter().any(|tool| waits_on_workspace(*tool)))
                    .await;
                // Boxed: a request waiting for its slot holds only what came before.
                let response = Box::pin(self.batch(
                    state,
                    &parts.headers,
                    &parts.uri,
                    messages,
                    &called,
                    caller,
                ))
                .await;
                let outcome = if response.status().is_success() {
                    "success"
                } else {
                    "error"
                };
                state
                    .metrics
                    .mcp_request("batch", "", outcome, started.elapsed());
                response
            }
            Ok(message) => {
                let called = called_tool(&message);
                let (method, tool) = labels(&message, called);
                if let Some(rejection) = wire::check_message(&message, &parts.headers) {
                    state
                        .metrics
                        .mcp_request(method, tool, "invalid", started.elapsed());
                    return rejection.into_response();
                }
                if let Some(denied) = scope_denial(state, &caller, called) {
                    state
                        .metrics
                        .mcp_request(method, tool, "forbidden", started.elapsed());
                    return denied;
                }
                let report = caller.report.clone();
                let _slot = self.slot(waits_on_workspace(called)).await;
                // Boxed: a request waiting for its slot holds only what came before, not room
                // for rmcp's service of it.
                let mut response =
                    Box::pin(self.forward(&parts.headers, &parts.uri, bytes, caller)).await;
                // The handler answered a JSON-RPC error because the database is unreachable:
                // say so at the HTTP level too, where clients and proxies look for it.
                let secs = report.retry_after_secs.load(Ordering::Relaxed);
                if secs > 0 {
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                let outcome = if secs > 0 {
                    "unavailable"
                } else if report.refused.load(Ordering::Relaxed) || !response.status().is_success()
                {
                    "error"
                } else if report.tool_error.load(Ordering::Relaxed) {
                    "tool_error"
                } else {
                    "success"
                };
                state
                    .metrics
                    .mcp_request(method, tool, outcome, started.elapsed());
                response
            }
            Err(rejection) => {
                state
                    .metrics
                    .mcp_request("unknown", "", "invalid", started.elapsed());
                rejection.into_response()
            }
        }
    }

    /// A slot to work on the request in, unless it waits on a workspace (`admission`).
    async fn slot(&self, waits_on_workspace: bool) -> Option<SemaphorePermit<'_>> {
        if waits_on_workspace {
            None
        } else {
            self.admission.enter().await
        }
    }

    /// JSON-RPC batches exist only in protocol 2025-03-26 (removed in 2025-06-18): each message
    /// is served on its own and the responses are returned together. `called` is the tool each
    /// message calls (`called_tool`), in the same order.
    async fn batch(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        messages: Vec<Value>,
        called: &[Option<&'static ToolDef>],
        caller: Caller,
    ) -> Response {
        let version = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok());
        if version.is_some_and(|v| v != "2025-03-26") {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "JSON-RPC batches are only allowed in protocol version 2025-03-26.",
            );
        }
        if messages.is_empty() {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "An empty batch is not a valid JSON-RPC request.",
            );
        }
        for tool in called {
            if let Some(denied) = scope_denial(state, &caller, *tool) {
                return denied;
            }
        }
        let mut replies = Vec::new();
        for message in messages {
            // An invalid element gets its own error reply (JSON-RPC 2.0 §6).
            if let Some(rejection) = wire::check_message(&message, headers) {
                replies.push(rejection.body());
                continue;
            }
            let caller = Caller {
                report: Arc::default(),
                ..caller.clone()
            };
            let response = self
                .forward(headers, uri, Bytes::from(message.to_string()), caller)
                .await;
            if response.status() == StatusCode::ACCEPTED {
                continue;
            }
            let Ok(body) = axum::body::to_bytes(response.into_body(), MAX_BODY).await else {
                continue;
            };
            if let Some(reply) = reply_from_body(&body) {
                replies.push(reply);
            }
        }
        if replies.is_empty() {
            return StatusCode::ACCEPTED.into_response();
        }
        (StatusCode::OK, axum::Json(Value::Array(replies))).into_response()
    }

    async fn forward(
        &self,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        body: Bytes,
        caller: Caller,
    ) -> Response {
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        request.extensions_mut().insert(caller);
        // Where the handler leaves a `tools/call` result: one per message, also in a batch.
        let results = RenderSlot::default();
        request.extensions_mut().insert(results.clone());
        let response = match self.service.clone().oneshot(request).await {
            Ok(response) => response.map(Body::new),
            Err(never) => match never {},
        };
        match results.take() {
            Some(rendered) => with_rendered_result(response, rendered).await,
            None => response,
        }
    }
}

/// The JSON-RPC methods counted by name in the metrics; any other is `other`, so a client
/// cannot add label values.
const KNOWN_METHODS: [&str; 12] = [
    "initialize",
    "notifications/initialized",
    "notifications/cancelled",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "logging/setLevel",
    "completion/complete",
];

/// The tool a `tools/call` message names, if this server has one by that name.
fn called_tool(message: &Value) -> Option<&'static ToolDef> {
    if message.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    message
        .pointer("/params/name")
        .and_then(Value::as_str)
        .and_then(tools::find)
}

/// A message's method and, for `tools/call`, its tool (`called`), as metric labels: names from
/// fixed lists only.
fn labels(message: &Value, called: Option<&'static ToolDef>) -> (&'static str, &'static str) {
    let method = message.get("method").and_then(Value::as_str);
    let Some(method) = method.and_then(|m| KNOWN_METHODS.into_iter().find(|k| *k == m)) else {
        return (
            if method.is_some() {
                "other"
            } else {
                "response"
            },
            "",
        );
    };
    let tool = if method == "tools/call" {
        called.map_or("unknown", |t| t.name)
    } else {
        ""
    };
    (method, tool)
}

/// Whether the called tool waits on a workspace, which takes no slot (`admission`).
fn waits_on_workspace(called: Option<&ToolDef>) -> bool {
    called.is_some_and(|tool| tool.waits_on_workspace)
}

/// rmcp's JSON response with the handler's rendered result written in (see `rendered`).
async fn with_rendered_result(response: Response, rendered: Rendered) -> Response {
    let (mut parts, body) = response.into_parts();
    let spliced = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => rendered.splice(&bytes).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match spliced {
        Ok(body) => {
            // The body grew; hyper sets the length of the new one.
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(body))
        }
        Err(error) => {
            tracing::error!(%error, "cannot write the tool result into the MCP response");
            jsonrpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Value::Null,
                -32603,
                "The server failed to write the tool result. Try again; if it keeps failing, tell an owner.",
            )
        }
    }
}

/// A `tools/call` for a tool the toolset offers but the token's scopes do not allow: 403 with
/// the scope to ask for.
fn scope_denial(
    state: &AppState,
    caller: &Caller,
    called: Option<&'static ToolDef>,
) -> Option<Response> {
    let tool = called.filter(|t| t.toolsets.contains(&caller.toolset))?;
    if caller.principal.has_scope(tool.scope) || !tool.scope.allowed_for(caller.principal.user.role)
    {
        // A scope the role can never hold is not a step-up case: the tool is simply unknown.
        return None;
    }
    Some(auth::insufficient_scope(
        state,
        tool.name,
        &[tool.scope].into_iter().collect::<ScopeSet>(),
    ))
}

/// The JSON-RPC message in a JSON or SSE response body.
fn reply_from_body(body: &[u8]) -> Option<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Some(value);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .rfind(|v| v.get("result").is_some() || v.get("error").is_some())
}

/// Requests without `Origin` come from servers and SDKs and pass; a browser's `Origin` must be
/// the access URL's or an allowlisted one (MCP 2025-11-25 transports §Security Warning).
fn check_origin(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, Box<Response>> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let value = origin
        .to_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let own = state.settings.access_url.origin().ascii_serialization();
    if value == own || state.settings.mcp_allowed_origins.contains(&value) {
        return Ok(Some(origin.clone()));
    }
    Err(Box::new(jsonrpc_error(
        StatusCode::FORBIDDEN,
        Value::Null,
        -32600,
        &format!(
            "Origin {value} is not allowed to use this MCP server; an owner can add it with --mcp-allowed-origins."
        ),
    )))
}

/// CORS preflight, answered before authentication (mcp-requirements §3.7).
fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, Mcp-Session-Id"),
        );
    }
    response
}

fn jsonrpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    wire::Rejection::new(status, id, code, message).into_response()
}
