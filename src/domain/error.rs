//! The error every use case returns; each adapter (REST, OAuth, MCP) renders it in its own format.

use std::fmt;

/// One invalid field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed; `fields` says which parts.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    /// The caller is not signed in, or its credential is no longer valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (a duplicate name, a running build).
    #[error("{message}")]
    Conflict {
        message: String,
        fields: Vec<FieldError>,
    },
    /// Too many attempts; try again after the given number of seconds.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// Something the request needs is briefly out of reach (a workspace agent reconnecting);
    /// the same request is likely to work after the given number of seconds.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    /// Something broke that the caller cannot fix; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn invalid_fields(message: impl Into<String>, fields: Vec<FieldError>) -> Self {
        Self::Invalid {
            message: message.into(),
            fields,
        }
    }

    pub fn conflict(message: impl Into<String>, field: Option<&str>) -> Self {
        let message = message.into();
        Self::Conflict {
            fields: field
                .map(|f| vec![FieldError::new(f, message.clone())])
                .unwrap_or_default(),
            message,
        }
    }

    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// The database cannot be reached. Nothing about it is shown but that; the store logs
    /// when it goes down and when it is back.
    pub fn database_unavailable() -> Self {
        Self::Unavailable {
            message: "The database is unavailable. Try again in a few seconds.".into(),
            retry_after_secs: DATABASE_RETRY_AFTER_SECS,
        }
    }
}

/// `Retry-After` for answers given while the database is unreachable: about as long as a
/// database restart takes (the server itself notices the database is back within a second).
pub const DATABASE_RETRY_AFTER_SECS: u64 = 5;
