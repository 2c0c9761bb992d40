//! The OAuth2 authorization server's HTTP surface: discovery, authorization, device
//! authorization, tokens, revocation and dynamic client registration. Everything here exists
//! only with the `oauth2` experiment.

mod authorize;
mod device;
mod discovery;
mod form;
mod register;
mod response;
mod token;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::domain::Experiment;
use crate::web::{ApiError, AppState};

/// OAuth requests are small forms; anything bigger is refused with 413.
const MAX_FORM_BODY: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    // Browser-based clients (the MCP Inspector) call these from other origins. They carry no
    // cookies, so reading them cross-origin is safe.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ]);
    let discovery = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::authorization_server),
        )
        .route(
            "/.well-known/oauth-authorization-server/{*suffix}",
            get(discovery::authorization_server),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get(discovery::protected_resource_root),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*suffix}",
            get(discovery::protected_resource_suffixed),
        )
        .route("/oauth2/jwks", get(discovery::jwks))
        // Set here, under the CORS layer: the top router's 405 fallback would otherwise replace
        // the CORS-wrapped one and answer preflights (OPTIONS) with a bare 405.
        .method_not_allowed_fallback(crate::web::stack::method_not_allowed)
        .layer(cors.clone());
    let machine = Router::new()
        .route(
            "/oauth2/tokens",
            post(token::token).delete(token::revoke_mine),
        )
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/revoke", post(token::revoke))
        .route("/oauth2/device", post(device::authorize_device))
        .route("/oauth2/register", post(register::register))
        .route(
            "/oauth2/clients/{client_id}",
            get(register::read)
                .put(register::update)
                .delete(register::delete),
        )
        .method_not_allowed_fallback(crate::web::stack::method_not_allowed)
        .layer(cors);
    let browser = Router::new().route(
        "/oauth2/authorize",
        get(authorize::show).post(authorize::decide),
    );
    machine
        .merge(browser)
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        // RFC 6749 §5.1 and §5.2: token responses, and everything else here, must not be cached.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ))
        .merge(discovery)
}

/// Rejects the request as an unknown route unless the `oauth2` experiment is on, so a disabled
/// authorization server looks exactly like a missing one (and discovery advertises nothing).
pub struct RequireOAuth2;

impl FromRequestParts<AppState> for RequireOAuth2 {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.experiment_enabled(Experiment::OAuth2) {
            Ok(RequireOAuth2)
        } else {
            Err(ApiError::route_not_found())
        }
    }
}
