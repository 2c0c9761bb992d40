//! Extractors: JSON and query bodies with Coder-format rejections, the authenticated caller, the
//! client IP.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::cookies::{SESSION_COOKIE, read_cookie};
use crate::domain::Principal;
use crate::web::credentials::{bearer_token, session_token_header};
use crate::web::stack::MAX_JSON_BODY;
use crate::web::{ApiError, AppState, HttpSettings};

/// A JSON body; wrong content type, oversized or malformed bodies become Coder-format errors.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "Request body is too large; the limit is {} KiB.",
                        MAX_JSON_BODY / 1024
                    ),
                )
            } else {
                ApiError::bad_request("Could not read the request body.")
                    .with_detail(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|err| {
            ApiError::bad_request("Request body must be valid JSON of the documented shape.")
                .with_detail(err.to_string())
        })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// Query parameters; a malformed query becomes a Coder-format 400.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from_str(query)
            .map(ApiQuery)
            .map_err(|detail| {
                ApiError::bad_request("Invalid query parameters.").with_detail(detail)
            })
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}

/// The session or API token of an API or page request: the `Coder-Session-Token` header, then
/// `Authorization: Bearer`, then the session cookie. Never the query string.
pub fn api_token(headers: &HeaderMap) -> Option<String> {
    session_token_header(headers)
        .or_else(|| bearer_token(headers))
        .or_else(|| read_cookie(headers, SESSION_COOKIE))
}

/// The authenticated caller; 401 when no valid token was presented.
pub struct CurrentUser(pub Principal);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(CurrentUser(principal.clone()));
        }
        let token = api_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let principal = state.services.authenticate_api_key(&token).await?;
        parts.extensions.insert(principal.clone());
        Ok(CurrentUser(principal))
    }
}

/// The signed-in browser user, if any: pages read only the session cookie.
pub struct MaybeBrowserUser(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeBrowserUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = read_cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(MaybeBrowserUser(None));
        };
        Ok(MaybeBrowserUser(
            state.services.authenticate_api_key(&token).await.ok(),
        ))
    }
}

/// The client's IP: the socket peer, or, when the peer is a trusted proxy, the address it
/// forwarded in a trusted header.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ci| ci.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(client_ip(peer, &parts.headers, &state.settings)))
    }
}

fn client_ip(peer: IpAddr, headers: &HeaderMap, settings: &HttpSettings) -> IpAddr {
    let trusted = |ip: IpAddr| {
        settings
            .proxy_trusted_origins
            .iter()
            .any(|n| n.contains(ip))
    };
    if !trusted(peer) {
        return peer;
    }
    for name in &settings.proxy_trusted_headers {
        let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        // X-Forwarded-For lists hops left to right; the right-most address that is not one of
        // our own proxies is the first one we did not add ourselves.
        let hops: Vec<IpAddr> = value
            .split(',')
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        if let Some(ip) = hops.iter().rev().find(|ip| !trusted(**ip)).or(hops.first()) {
            return *ip;
        }
    }
    peer
}
