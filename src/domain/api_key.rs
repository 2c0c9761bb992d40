//! API keys: the session tokens of signed-in browsers and the long-lived tokens users create.

use chrono::{DateTime, Duration, Utc};

use super::UserId;
use crate::secret::{self, Secret};

/// The lengths of a key's two halves (Coder's format): the id is the lookup, only the SHA-256 of
/// the secret is stored.
pub const KEY_ID_LEN: usize = 10;
pub const KEY_SECRET_LEN: usize = 22;

/// The public half of a `<id>-<secret>` token; it is how a key is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyId(pub String);

impl std::fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a key came to be: a password sign-in, a token the user created, or a sign-in through a
/// first-party OAuth client (the CLI's device login). Coder's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginType {
    Password,
    Token,
    OAuth2ProviderApp,
}

impl LoginType {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginType::Password => "password",
            LoginType::Token => "token",
            LoginType::OAuth2ProviderApp => "oauth2_provider_app",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(LoginType::Password),
            "token" => Some(LoginType::Token),
            "oauth2_provider_app" => Some(LoginType::OAuth2ProviderApp),
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

impl ApiKey {
    /// A new key for `user`, valid for `lifetime` from `now`: the record to keep (only a hash of
    /// the secret) and the `<id>-<secret>` token, which is shown once.
    pub fn generate(
        user: UserId,
        login_type: LoginType,
        token_name: String,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> (Self, Secret) {
        let id = secret::random_alphanumeric(KEY_ID_LEN);
        let secret_part = secret::random_alphanumeric(KEY_SECRET_LEN);
        let key = ApiKey {
            id: ApiKeyId(id.clone()),
            user_id: user,
            hashed_secret: secret::sha256(secret_part.as_bytes()),
            login_type,
            token_name,
            lifetime_seconds: lifetime.num_seconds(),
            expires_at: now + lifetime,
            last_used: now,
            created_at: now,
            updated_at: now,
        };
        (key, Secret::new(format!("{id}-{secret_part}")))
    }
}
