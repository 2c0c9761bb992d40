//! `ApiError`: Coder's error body `{"message","detail","validations"}` with the right status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::{DomainError, FieldError};

#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub field: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
struct Body {
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    validations: Vec<Validation>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: Body,
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Body {
                message: message.into(),
                detail: String::new(),
                validations: Vec::new(),
            },
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = detail.into();
        self
    }

    pub fn with_validations(mut self, fields: Vec<FieldError>) -> Self {
        self.body.validations = fields
            .into_iter()
            .map(|f| Validation {
                field: f.field,
                detail: f.detail,
            })
            .collect();
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn route_not_found() -> Self {
        Self::not_found("Route not found.")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "You must be signed in to do this.",
        )
        .with_detail(
            "Send a session or API token in the Coder-Session-Token header, an \
             Authorization: Bearer header, or the coder_session_token cookie.",
        )
    }

    /// A 500 whose cause is logged here, once, and never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred.",
        )
        .with_detail(
            "The error was logged. Try again, and report it to an owner if it keeps happening.",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid { message, fields } => {
                ApiError::bad_request(message).with_validations(fields)
            }
            DomainError::Unauthenticated(message) => {
                ApiError::new(StatusCode::UNAUTHORIZED, message)
            }
            DomainError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
            DomainError::NotFound(message) => ApiError::not_found(message),
            DomainError::Conflict { message, fields } => {
                ApiError::new(StatusCode::CONFLICT, message).with_validations(fields)
            }
            DomainError::RateLimited {
                message,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            DomainError::Unavailable {
                message,
                retry_after_secs,
            } => {
                let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            DomainError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
