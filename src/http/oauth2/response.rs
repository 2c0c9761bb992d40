//! Rendering OAuth errors as RFC 6749 §5.2 JSON, with the challenges RFC 6749 §5.2 (Basic) and
//! RFC 6750 §3 (Bearer) ask for.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::{ErrorCode, OAuthError};

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = json!({ "error": self.code.as_str(), "error_description": self.description });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self.code {
                ErrorCode::InvalidToken => "Bearer realm=\"coder\", error=\"invalid_token\"",
                _ => "Basic realm=\"coder\"",
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
