//! `POST /oauth2/register` (RFC 7591) and `/oauth2/clients/{client_id}` (RFC 7592).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::RequireOAuth2;
use crate::http::extract::ClientIp;
use crate::oauth::{ErrorCode, OAuthError};
use crate::web::AppState;
use crate::web::credentials::bearer_token;

fn require_json(headers: &HeaderMap) -> Result<(), OAuthError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the body must be application/json",
        ))
    }
}

fn body_or_error(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, OAuthError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "the request body is too large",
            )
            .with_status(413)
        } else {
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "the request body could not be read",
            )
        }
    })
}

pub async fn register(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthError> {
    require_json(&headers)?;
    let body = body_or_error(body)?;
    let info = state.oauth.register_client(&body, &ip.to_string()).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

pub async fn read(
    _: RequireOAuth2,
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let app = state
        .oauth
        .authenticate_registration(&client_id, bearer_token(&headers).as_deref())
        .await?;
    Ok(Json(state.oauth.client_information(&app)).into_response())
}

pub async fn update(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OAuthError> {
    let app = state
        .oauth
        .authenticate_registration(&client_id, bearer_token(&headers).as_deref())
        .await?;
    require_json(&headers)?;
    let body = body_or_error(body)?;
    let info = state
        .oauth
        .update_registration(app, &body, &ip.to_string())
        .await?;
    Ok(Json(info).into_response())
}

pub async fn delete(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, OAuthError> {
    let app = state
        .oauth
        .authenticate_registration(&client_id, bearer_token(&headers).as_deref())
        .await?;
    state
        .oauth
        .delete_registration(app, &ip.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
