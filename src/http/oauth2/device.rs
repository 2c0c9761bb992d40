//! `POST /oauth2/device`: the device authorization endpoint (RFC 8628 §3.1).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use super::RequireOAuth2;
use super::form::{OAuthForm, client_request};
use crate::http::extract::ClientIp;
use crate::oauth::OAuthError;
use crate::oauth::device::DeviceAuthorizationRequest;
use crate::web::AppState;

pub async fn authorize_device(
    _: RequireOAuth2,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Result<Response, OAuthError> {
    let read = client_request::<DeviceAuthorizationRequest>(form, &headers, &uri);
    let issued = state
        .oauth
        .device_authorization(read, &ip.to_string())
        .await?;
    Ok(Json(issued).into_response())
}
