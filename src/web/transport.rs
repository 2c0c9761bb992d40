//! What depends on the listener a request came in on: `--redirect-to-access-url` and
//! `Strict-Transport-Security` differ between plain HTTP and the server's own HTTPS.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::HttpSettings;

/// How a listener's requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    Https,
}

/// The server's router as served on one listener.
pub fn on_listener(router: Router, settings: Arc<HttpSettings>, transport: Transport) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let settings = settings.clone();
        async move { by_transport(&settings, transport, request, next).await }
    }))
}

async fn by_transport(
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
