//! Core entities, ids and errors; free of HTTP, SQL and MCP types.

pub mod api_key;
pub mod error;
pub mod experiment;
pub mod oauth;
pub mod user;

pub use api_key::{ApiKey, ApiKeyId, LoginType};
pub use error::{DomainError, FieldError};
pub use experiment::{Experiment, Experiments};
pub use oauth::{
    AppSecret, AuditEntry, AuthorizationCode, ClientId, ClientType, Grant, GrantId, OAuthApp,
    RefreshToken, StoredSigningKey, TokenAuthMethod,
};
pub use user::{NewUser, Role, User, UserId, UserStatus};
