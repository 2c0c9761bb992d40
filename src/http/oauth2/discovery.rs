//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/oauth-protected-resource`
//! (RFC 9728) and the JWKS. Cacheable and readable from any origin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::RequireOAuth2;
use crate::oauth::OAuthError;
use crate::oauth::resource::MCP_PATH;
use crate::web::{ApiError, AppState};

const CACHEABLE: &str = "public, max-age=300";

fn cacheable(body: serde_json::Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHEABLE));
    response
}

/// Served for any path suffix, as clients build the URL from an issuer that may have a path
/// (RFC 8414 §3.1).
pub async fn authorization_server(
    _: RequireOAuth2,
    State(state): State<AppState>,
) -> Result<Response, OAuthError> {
    let registration = state.oauth.dynamic_registration_enabled().await?;
    let documents = state.oauth.metadata_documents_enabled().await?;
    Ok(cacheable(
        state
            .oauth
            .authorization_server_metadata(registration, documents),
    ))
}

/// The bare document describes the deployment root.
pub async fn protected_resource_root(_: RequireOAuth2, State(state): State<AppState>) -> Response {
    let resource = state.oauth.resources().access_url.clone();
    cacheable(state.oauth.protected_resource_metadata(&resource))
}

/// The path-suffixed document describes the resource at that path (RFC 9728 §3.1); only the
/// MCP endpoint is a protected resource here.
pub async fn protected_resource_suffixed(
    _: RequireOAuth2,
    State(state): State<AppState>,
    Path(suffix): Path<String>,
) -> Result<Response, ApiError> {
    if format!("/{}", suffix.trim_end_matches('/')) != MCP_PATH {
        return Err(ApiError::route_not_found());
    }
    let resource = state.oauth.resources().mcp_url.clone();
    Ok(cacheable(
        state.oauth.protected_resource_metadata(&resource),
    ))
}

pub async fn jwks(_: RequireOAuth2, State(state): State<AppState>) -> Response {
    cacheable(state.oauth.keys().jwks())
}
