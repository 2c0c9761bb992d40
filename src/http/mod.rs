//! The HTTP surface: one router per area, merged, under one layer stack.

pub mod agent_api;
pub mod api_keys;
pub mod audit;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod files;
pub mod meta;
pub mod oauth2;
pub mod oauth2_provider;
pub mod pages;
pub mod templates;
pub mod users;
pub mod workspace_agents;
pub mod workspaces;

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

use self::error::ApiError;
use crate::domain::Experiment;
use crate::metrics::Metrics;
use crate::state::{AppState, HttpSettings};

pub fn router(state: AppState) -> Router {
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
        .merge(crate::mcp::routes(&state))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Layers run outside-in in the reverse order of this list: the trace span opens first,
        // then panics are caught inside it (so they are logged with the request), then headers
        // and the body cap apply to every response and extractor.
        .layer(DefaultBodyLimit::max(extract::MAX_JSON_BODY))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(middleware::from_fn(close_after_unread_body))
        .layer(middleware::from_fn(require_one_host))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            record_metrics,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .with_state(state)
}

/// How a listener's requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Https,
}

/// The router for one listener: `--redirect-to-access-url` and `Strict-Transport-Security`
/// depend on whether its requests came over TLS.
pub fn router_for(router: Router, settings: Arc<HttpSettings>, transport: Transport) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let settings = settings.clone();
        async move { on_transport(&settings, transport, request, next).await }
    }))
}

async fn on_transport(
    settings: &HttpSettings,
    transport: Transport,
    request: Request,
    next: Next,
) -> Response {
    if settings.redirect_to_access_url
        && request.uri().path() != "/healthz"
        && !at_access_url(settings, transport, &request)
    {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let target = format!("{}{path}", settings.access_url_str());
        if let Ok(location) = HeaderValue::from_str(&target) {
            // 307 keeps the method and body (RFC 9110 §15.4.8): an MCP POST arrives intact.
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            response.headers_mut().insert(header::LOCATION, location);
            return response;
        }
    }
    let mut response = next.run(request).await;
    // RFC 6797 §7.2: only over secure transport. Without TLS of our own, an https access URL
    // means a proxy terminates TLS in front of us, so the user's side is secure.
    let secure = match transport {
        Transport::Https => true,
        Transport::Http => !settings.tls && settings.access_url.scheme() == "https",
    };
    if let Some(hsts) = &settings.strict_transport_security
        && secure
    {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

/// Whether the request came in at the access URL: its host (the `Host` header, or the authority
/// of an HTTP/2 request) and, when this server terminates TLS itself, its scheme. Without TLS of
/// our own an https access URL means a proxy terminates TLS and forwards plain HTTP, which must
/// not be redirected (it would loop).
fn at_access_url(settings: &HttpSettings, transport: Transport, request: &Request) -> bool {
    let url = &settings.access_url;
    let scheme_matches = !settings.tls
        || match transport {
            Transport::Http => url.scheme() == "http",
            Transport::Https => url.scheme() == "https",
        };
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .and_then(|a| a.parse::<axum::http::uri::Authority>().ok());
    // A Host without a port means the default port of the scheme the client used, which behind
    // a proxy is not ours to see: only an explicit port is compared.
    let host_matches = authority.is_some_and(|a| {
        url.host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(a.host()))
            && a.port_u16()
                .is_none_or(|port| Some(port) == url.port_or_known_default())
    });
    scheme_matches && host_matches
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

/// The Prometheus listener's only page: `GET /metrics` (OpenMetrics text format).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics_page))
        .fallback(route_not_found)
        .with_state(state)
}

async fn metrics_page(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let store = state.services.store();
    let sample = crate::metrics::Sample {
        pool: store.pool_stats(),
        database_up: !store.is_down(),
        jobs_pending: store.count_pending_jobs().await.ok(),
        agents_connected: state.services.agents_connected(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(sample),
    )
        .into_response()
}

/// What the agent socket serves: only the routes agents call, under the same layers.
pub fn agent_socket_router(state: AppState) -> Router {
    Router::new()
        .merge(agent_api::agent_routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .with_state(state)
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

async fn method_not_allowed() -> ApiError {
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
