//! API keys: the session tokens of signed-in browsers and the long-lived tokens users create.

use chrono::{DateTime, Utc};

use super::UserId;

/// The public half of a `<id>-<secret>` token; it is how a key is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(pub String);

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a key came to be: a password sign-in, or a token the user created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginType {
    Password,
    Token,
}

impl LoginType {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginType::Password => "password",
            LoginType::Token => "token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(LoginType::Password),
            "token" => Some(LoginType::Token),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    /// SHA-256 of the secret half; the secret itself is never stored.
    pub hashed_secret: Vec<u8>,
    pub login_type: LoginType,
    /// Set for user-created tokens, unique per user; empty for browser sessions.
    pub token_name: String,
    pub lifetime_seconds: i64,
    pub expires_at: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
