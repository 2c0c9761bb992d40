//! `POST /oauth2/tokens` (RFC 6749 §3.2) and `POST /oauth2/revoke` (RFC 7009).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::RequireOAuth2;
use super::form::{OAuthForm, basic_credentials, client_request, secret_in_query};
use crate::domain::{ClientId, DomainError};
use crate::http::extract::{ApiQuery, ClientIp, CurrentUser};
use crate::oauth::OAuthError;
use crate::oauth::client_auth::ClientCredentials;
use crate::oauth::revoke::RevokeRequest;
use crate::oauth::token::TokenRequest;
use crate::web::{ApiError, AppState};

pub async fn token(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Result<Response, OAuthError> {
    let read = client_request::<TokenRequest>(form, &headers, &uri);
    let issued = state.oauth.token(read, &ip.to_string()).await?;
    Ok(Json(issued).into_response())
}

pub async fn revoke(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Result<StatusCode, OAuthError> {
    let read = form.and_then(|form| {
        Ok(RevokeRequest {
            token: form.get("token").map(str::to_owned),
            client: ClientCredentials {
                basic: basic_credentials(&headers)?,
                body_client_id: form.get("client_id").map(str::to_owned),
                body_client_secret: form
                    .get("client_secret")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                secret_in_query: secret_in_query(uri.query()),
                assertion_type: form.get("client_assertion_type").map(str::to_owned),
                assertion: form.get("client_assertion").map(str::to_owned),
            },
        })
    });
    state.oauth.revoke(read, &ip.to_string()).await?;
    Ok(StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct RevokeMineQuery {
    #[serde(default)]
    client_id: String,
}

/// `DELETE /oauth2/tokens?client_id=` (Coder): the signed-in user withdraws an application's
/// access; every grant they gave it is revoked.
pub async fn revoke_mine(
    _: RequireOAuth2,
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    ApiQuery(query): ApiQuery<RevokeMineQuery>,
) -> Result<StatusCode, ApiError> {
    let app = match uuid::Uuid::parse_str(&query.client_id) {
        Ok(id) => ClientId(id),
        // A client identified by a metadata document is named by its URL, as it is everywhere.
        Err(_) if crate::oauth::cimd::is_document_url(&query.client_id) => state
            .oauth
            .metadata_document_app_id(&query.client_id)
            .await
            .map_err(DomainError::from)?
            .ok_or_else(|| ApiError::bad_request("No application has this client_id."))?,
        Err(_) => {
            return Err(ApiError::bad_request(
                "client_id must be the UUID of an OAuth2 application or a metadata document URL.",
            ));
        }
    };
    state
        .oauth
        .revoke_user_app(me.user.id, app, &ip.to_string())
        .await
        .map_err(DomainError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
