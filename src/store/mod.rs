//! Persistence: the `Store` contract and its SQLite and PostgreSQL implementations. Only this module holds SQL.

mod agent;
mod agent_queries;
mod oauth;
mod oauth_queries;
mod oauth_rows;
mod queries;
mod rows;
mod time;
mod workspace;
mod workspace_queries;
mod workspace_rows;

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{ApiKey, ApiKeyId, LoginType, NewUser, User, UserId};

pub use agent::AgentStore;
pub use oauth::OAuthStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use workspace::{
    DeleteTemplateOutcome, InsertBuildOutcome, OrphanScope, WorkspaceFilter, WorkspaceStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `constraint` names the rule (for example `users_email_unique`).
    #[error("conflicts with an existing row ({constraint})")]
    Conflict { constraint: String },
    /// The first user already exists.
    #[error("the first user already exists")]
    FirstUserExists,
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            // Postgres names the constraint; SQLite puts the index or columns in the message.
            let constraint = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            return StoreError::Conflict { constraint };
        }
        StoreError::Database(err.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Page through a list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// A user together with the password hash, for sign-in only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub hashed_password: String,
}

/// Everything the services persist. Both backends pass the same contract tests.
#[async_trait]
pub trait Store: OAuthStore + WorkspaceStore + AgentStore + Send + Sync + std::fmt::Debug {
    /// Which backend this is, for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Closes every connection; in-flight queries finish first.
    async fn close(&self);

    /// Cheap liveness check.
    async fn ping(&self) -> StoreResult<()>;

    // Users.
    async fn count_users(&self) -> StoreResult<i64>;
    /// Inserts the first user, atomically refusing when any user already exists.
    async fn create_first_user(&self, user: NewUser) -> StoreResult<User>;
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    async fn get_user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn get_user_credentials_by_email(
        &self,
        email: &str,
    ) -> StoreResult<Option<UserCredentials>>;
    async fn list_users(&self, page: Page) -> StoreResult<(Vec<User>, i64)>;
    /// Marks the user deleted and removes every API key it holds, in one transaction.
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<bool>;
    async fn touch_user_last_seen(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()>;

    // API keys.
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self, user: UserId, login_type: LoginType) -> StoreResult<Vec<ApiKey>>;
    async fn delete_api_key(&self, user: UserId, id: &ApiKeyId) -> StoreResult<bool>;
    async fn touch_api_key(&self, id: &ApiKeyId, now: DateTime<Utc>) -> StoreResult<()>;
    async fn delete_expired_api_keys(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // Deployment-wide settings.
    async fn get_site_config(&self, key: &str) -> StoreResult<Option<String>>;
    async fn upsert_site_config(
        &self,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

pub type SharedStore = Arc<dyn Store>;

/// Where the data lives.
#[derive(Clone)]
pub enum DatabaseTarget {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DatabaseTarget {
    /// A description safe for logs: the SQLite path, or the Postgres URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseTarget::Sqlite(path) => format!("sqlite {}", path.display()),
            DatabaseTarget::Postgres(url) => format!("postgres {}", redact_url(url)),
        }
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password in a connection URL (and any `password=` query value) with `xxxxx`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("xxxxx"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "xxxxx".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Opens the database, applies pending migrations and returns the store.
pub async fn open(target: &DatabaseTarget) -> anyhow::Result<SharedStore> {
    Ok(match target {
        DatabaseTarget::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        DatabaseTarget::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
    })
}

/// Ties a store implementation to its sqlx database type, for the shared query macro.
pub(crate) trait Backend {
    type Db: sqlx::Database;
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://coder:s3cret@db:5432/coder?sslmode=disable"),
            "postgres://coder:xxxxx@db:5432/coder?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db/coder?user=u&password=p"),
            "postgres://db/coder?user=u&password=xxxxx"
        );
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
    }
}
