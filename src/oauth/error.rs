//! OAuth errors (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1, RFC 8707 §2).

use std::fmt;

/// The registered error codes this server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    InvalidRedirectUri,
    InvalidClientMetadata,
    InvalidToken,
    TemporarilyUnavailable,
    ServerError,
    /// RFC 8628 §3.5: the device flow's token endpoint answers while the user decides.
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
        }
    }
}

/// An OAuth error with its HTTP status. Descriptions tell the client what to fix; they never
/// include secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub status: u16,
    /// Seconds to wait, for 429s.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        };
        Self {
            code,
            description: description.into(),
            status,
            retry_after: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }

    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidTarget, d)
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            code: ErrorCode::InvalidRequest,
            description: "Too many requests. Wait and try again.".into(),
            status: 429,
            retry_after: Some(retry_after),
        }
    }

    /// A failure the client cannot fix; the cause is logged here and not shown.
    pub fn server_error(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "OAuth request failed");
        Self::new(
            ErrorCode::ServerError,
            "The server could not complete the request. Try again later.",
        )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl From<OAuthError> for crate::domain::DomainError {
    fn from(err: OAuthError) -> Self {
        match err.status {
            429 => crate::domain::DomainError::RateLimited {
                message: err.description,
                retry_after_secs: err.retry_after.unwrap_or(60),
            },
            400 => crate::domain::DomainError::invalid(err.description),
            401 => crate::domain::DomainError::Unauthenticated(err.description),
            403 => crate::domain::DomainError::Forbidden(err.description),
            503 => crate::domain::DomainError::Unavailable {
                message: err.description,
                retry_after_secs: err
                    .retry_after
                    .unwrap_or(crate::domain::error::DATABASE_RETRY_AFTER_SECS),
            },
            _ => crate::domain::DomainError::Internal(err.description),
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(err: crate::store::StoreError) -> Self {
        if err.is_unavailable() {
            return OAuthError::database_unavailable();
        }
        OAuthError::server_error(err)
    }
}

impl OAuthError {
    /// 503 `temporarily_unavailable` with `Retry-After` while the database is unreachable
    /// (the code RFC 6749 §4.1.2.1 names for a server that cannot answer for now).
    pub fn database_unavailable() -> Self {
        let mut err = Self::new(
            ErrorCode::TemporarilyUnavailable,
            "The database is unavailable. Try again in a few seconds.",
        );
        err.retry_after = Some(crate::domain::error::DATABASE_RETRY_AFTER_SECS);
        err
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;
