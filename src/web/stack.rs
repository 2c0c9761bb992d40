//! The layer stack around both front doors, and the answers to a request no route takes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::{ApiError, AppState};
use crate::metrics::Metrics;

/// The largest JSON body the API accepts.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The server's router: `routes` (the REST API, OAuth and pages beside the MCP endpoint, merged
/// by `app`) under the one layer stack.
pub fn server(routes: Router<AppState>, state: AppState, pages: ErrorPages) -> Router {
    // Layers run outside-in in the reverse order of this list: the trace span opens first,
    // then panics are caught inside it (so they are logged with the request), then headers
    // and the body cap apply to every response and extractor.
    let routes = answer_the_rest(routes)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(middleware::from_fn(close_after_unread_body))
        .layer(middleware::from_fn(require_one_host))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outside the panic catcher, so a browser sees a page for a panic's 500 too.
        .layer(middleware::from_fn_with_state(pages, browser_errors))
        // Outside the panic catcher, so a panic is counted as the 500 it became.
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            record_metrics,
        ));
    traced(routes).with_state(state)
}

/// What the agent socket serves: only the routes agents call, under the same body cap, panic
/// catcher and trace span.
pub fn agent_socket(routes: Router<AppState>, state: AppState) -> Router {
    let routes = answer_the_rest(routes)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(panic_response));
    traced(routes).with_state(state)
}

/// What the Prometheus listener serves: its page, and Coder's 404 for anything else.
pub fn metrics_listener(routes: Router<AppState>, state: AppState) -> Router {
    answer_the_rest(routes).with_state(state)
}

/// Coder's JSON answers for a path no route takes and a method a route does not.
fn answer_the_rest(routes: Router<AppState>) -> Router<AppState> {
    routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Renders the HTML page a browser gets for an error status.
pub type ErrorPages = fn(StatusCode) -> Response;

/// Paths whose callers are programs, answered in their own formats whatever they accept:
/// Coder's JSON on `/api`, RFC 6749 errors on `/oauth2`, discovery documents, probes.
const MACHINE_PREFIXES: [&str; 5] = ["/api/", "/oauth2/", "/.well-known/", "/healthz", "/metrics"];

/// A browser (one that asks for `text/html`) that reaches an error without a page of its own
/// (no route, a wrong method, a panic, a refused permission: 403, 404, 405, 5xx) gets an HTML page with the same
/// status instead of Coder's JSON; API clients keep the JSON.
async fn browser_errors(
    axum::extract::State(pages): axum::extract::State<ErrorPages>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let browser = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
        && path != "/api"
        && !MACHINE_PREFIXES.iter().any(|p| path.starts_with(p));
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let paged = matches!(
        status,
        StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) || status.is_server_error();
    if browser && json && paged {
        pages(status)
    } else {
        response
    }
}

/// The outermost layer: the request's trace span, so that whatever happens inside (a panic
/// included) is logged with the request.
fn traced(routes: Router<AppState>) -> Router<AppState> {
    routes.layer(
        TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_request(())
            .on_response(log_response)
            .on_failure(()),
    )
}

/// The request span names the route pattern, never the raw query, which may hold codes.
fn request_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    tracing::info_span!("request", method = %req.method(), route)
}

/// Counts every answered request by route pattern (never the raw path), method and status.
async fn record_metrics(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = crate::metrics::method_label(request.method());
    let response = next.run(request).await;
    metrics.http_request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::debug!(
        status = response.status().as_u16(),
        latency_ms = latency.as_millis() as u64,
        "served"
    );
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("request handler panicked").into_response()
}

async fn route_not_found() -> ApiError {
    ApiError::route_not_found()
}

/// 405 in Coder's body; routers with their own layers set it under them.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this route.",
    )
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains more
/// than one Host header field line or a Host header field with an invalid field value." HTTP/2
/// and HTTP/3 carry the authority in `:authority` instead (RFC 9113 §8.3.1), so only a repeated
/// Host is refused there. hyper checks none of this.
async fn require_one_host(request: Request, next: Next) -> Response {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let problem = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some("The request has more than one Host header; send exactly one."),
        (None, _) if request.version() == axum::http::Version::HTTP_11 => {
            Some("An HTTP/1.1 request needs a Host header naming this server.")
        }
        (Some(host), None) if !valid_host(host) => {
            Some("The Host header is not a valid host[:port].")
        }
        _ => None,
    };
    match problem {
        Some(message) => ApiError::bad_request(message).into_response(),
        None => next.run(request).await,
    }
}

/// RFC 9110 §7.2: `uri-host [ ":" port ]`, or empty when the target has no authority.
fn valid_host(value: &HeaderValue) -> bool {
    value.is_empty()
        || value
            .to_str()
            .ok()
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
            .is_some_and(|a| !a.as_str().contains('@'))
}

/// An error answered to a request that carries a body (a 401 before authentication, a 413, a
/// validation 400) may go out before the body was read. hyper then closes the connection
/// without saying so, and a client that reuses it sees its next request dropped unanswered: the
/// MCP Python SDK (httpx) failed its discovery after the first 401 exactly this way. Saying
/// `Connection: close` on those responses makes the client open a fresh connection instead.
async fn close_after_unread_body(request: Request, next: Next) -> Response {
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut response = next.run(request).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
