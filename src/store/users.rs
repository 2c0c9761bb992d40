//! Users and their API keys.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::corrupt;
use super::pool::{Backend, Tx, on};
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all, unstorable};
use crate::domain::{ApiKey, ApiKeyId, LoginType, NewUser, Page, Role, User, UserId, UserStatus};

/// A user together with the password hash, for sign-in only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub hashed_password: String,
}

const COUNT_USERS: &str = "SELECT COUNT(*) FROM users WHERE NOT deleted";

impl Store {
    pub async fn count_users(&self) -> StoreResult<i64> {
        let (n,): (i64,) = on!(&self.pool, |pool| {
            sqlx::query_as(COUNT_USERS).fetch_one(pool).await?
        });
        Ok(n)
    }

    /// Inserts the first user, atomically refusing when any user already exists.
    pub async fn create_first_user(&self, user: NewUser) -> StoreResult<User> {
        let mut tx = self.pool.begin().await?;
        // The guard row's primary key makes a second, concurrent first-user request fail.
        let guard = on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO site_configs (key, value, created_at, updated_at) \
                 VALUES ('first_user_id', $1, $2, $2)",
            )
            .bind(user.id.0.to_string())
            .bind(DbTime(user.created_at))
            .execute(c)
            .await
            .map(drop)
        });
        match guard.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) => return Err(StoreError::FirstUserExists),
            other => other?,
        }
        // Users created some other way (an owner's `create_user`) never took the guard.
        let (existing,): (i64,) = on!(tx.conn(), |c| {
            sqlx::query_as(COUNT_USERS).fetch_one(c).await?
        });
        if existing > 0 {
            return Err(StoreError::FirstUserExists);
        }
        let created = insert_user(tx.conn(), user).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        insert_user(self.pool.by_ref(), user).await
    }

    pub async fn get_user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND NOT deleted");
        let row: Option<UserRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(User::try_from).transpose()
    }

    pub async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        if unstorable(username) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1) AND NOT deleted"
        );
        let row: Option<UserRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        row.map(User::try_from).transpose()
    }

    pub async fn get_user_credentials_by_email(
        &self,
        email: &str,
    ) -> StoreResult<Option<UserCredentials>> {
        if unstorable(email) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {USER_COLUMNS}, hashed_password FROM users \
             WHERE lower(email) = lower($1) AND NOT deleted"
        );
        let row: Option<UserCredentialsRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| {
            Ok(UserCredentials {
                user: r.user.try_into()?,
                hashed_password: r.hashed_password,
            })
        })
        .transpose()
    }

    pub async fn list_users(&self, page: Page) -> StoreResult<(Vec<User>, i64)> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE NOT deleted \
             ORDER BY lower(username) LIMIT $1 OFFSET $2"
        );
        let rows: Vec<UserRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?
        });
        let total = self.count_users().await?;
        Ok((convert_all(rows)?, total))
    }

    /// Marks the user deleted and removes every API key it holds, in one transaction.
    pub async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let marked = on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE users SET deleted = TRUE, updated_at = $2 WHERE id = $1 AND NOT deleted",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .execute(c)
            .await?
            .rows_affected()
        });
        on!(tx.conn(), |c| {
            sqlx::query("DELETE FROM api_keys WHERE user_id = $1")
                .bind(id.0)
                .execute(c)
                .await?;
        });
        tx.commit().await?;
        Ok(marked == 1)
    }

    /// Sets a (not deleted) user's status; false when there is no such user.
    pub async fn set_user_status(
        &self,
        id: UserId,
        status: UserStatus,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.update_user_column("status", status.as_str(), id, now)
            .await
    }

    /// Sets a (not deleted) user's site role; false when there is no such user.
    pub async fn set_user_role(
        &self,
        id: UserId,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.update_user_column("role", role.as_str(), id, now)
            .await
    }

    /// `column` is one of the two names above, never input.
    async fn update_user_column(
        &self,
        column: &'static str,
        value: &'static str,
        id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE users SET {column} = $1, updated_at = $2 WHERE id = $3 AND NOT deleted"
        );
        let updated = on!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(value)
                .bind(DbTime(now))
                .bind(id.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    pub async fn touch_user_last_seen(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE users SET last_seen_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_api_key(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKey>> {
        if unstorable(&id.0) {
            return Ok(None);
        }
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<ApiKeyRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(&id.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKey::try_from).transpose()
    }

    pub async fn list_api_keys(
        &self,
        user: UserId,
        login_type: LoginType,
    ) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND login_type = $2 \
             ORDER BY created_at, id"
        );
        let rows: Vec<ApiKeyRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(user.0)
                .bind(login_type.as_str())
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }

    pub async fn delete_api_key(&self, user: UserId, id: &ApiKeyId) -> StoreResult<bool> {
        if unstorable(&id.0) {
            return Ok(false);
        }
        let deleted = on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
                .bind(&id.0)
                .bind(user.0)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    pub async fn touch_api_key(&self, id: &ApiKeyId, now: DateTime<Utc>) -> StoreResult<()> {
        if unstorable(&id.0) {
            return Ok(());
        }
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE api_keys SET last_used = $2 WHERE id = $1")
                .bind(&id.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn delete_expired_api_keys(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM api_keys WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// Inserts a user, on the pool (`create_user`) or in a transaction (`create_first_user`).
async fn insert_user<'s, 'p>(
    on: Backend<impl sqlx::SqliteExecutor<'s>, impl sqlx::PgExecutor<'p>>,
    user: NewUser,
) -> StoreResult<User> {
    let sql = format!(
        "INSERT INTO users (id, username, email, name, hashed_password, role, status, \
         created_at, updated_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7, $7) RETURNING {USER_COLUMNS}"
    );
    let row: UserRow = on!(on, |c| {
        sqlx::query_as(&sql)
            .bind(user.id.0)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.hashed_password)
            .bind(user.role.as_str())
            .bind(DbTime(user.created_at))
            .fetch_one(c)
            .await?
    });
    row.try_into()
}

/// The column list every user query selects, in `UserRow` order.
pub(super) const USER_COLUMNS: &str =
    "id, username, email, name, role, status, created_at, updated_at, last_seen_at";

const API_KEY_COLUMNS: &str = "id, user_id, hashed_secret, login_type, token_name, \
     lifetime_seconds, expires_at, last_used, created_at, updated_at";

#[derive(FromRow)]
pub(super) struct UserRow {
    pub(super) id: Uuid,
    pub(super) username: String,
    pub(super) email: String,
    pub(super) name: String,
    pub(super) role: String,
    pub(super) status: String,
    pub(super) created_at: DbTime,
    pub(super) updated_at: DbTime,
    pub(super) last_seen_at: DbTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            id: UserId(row.id),
            role: Role::parse(&row.role).ok_or_else(|| corrupt("users.role", &row.role))?,
            status: UserStatus::parse(&row.status)
                .ok_or_else(|| corrupt("users.status", &row.status))?,
            username: row.username,
            email: row.email,
            name: row.name,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
            last_seen_at: row.last_seen_at.0,
        })
    }
}

#[derive(FromRow)]
struct UserCredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    hashed_password: String,
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    user_id: Uuid,
    hashed_secret: Vec<u8>,
    login_type: String,
    token_name: String,
    lifetime_seconds: i64,
    expires_at: DbTime,
    last_used: DbTime,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, Self::Error> {
        Ok(ApiKey {
            login_type: LoginType::parse(&row.login_type)
                .ok_or_else(|| corrupt("api_keys.login_type", &row.login_type))?,
            id: ApiKeyId(row.id),
            user_id: UserId(row.user_id),
            hashed_secret: row.hashed_secret,
            token_name: row.token_name,
            lifetime_seconds: row.lifetime_seconds,
            expires_at: row.expires_at.0,
            last_used: row.last_used.0,
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

/// Inserts a key inside a transaction: a session may open in the same transaction that consumes
/// what proved the user (an approved device code).
pub(super) async fn insert_api_key(tx: &mut Tx, key: &ApiKey) -> StoreResult<()> {
    on!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, hashed_secret, login_type, token_name, \
             lifetime_seconds, expires_at, last_used, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&key.id.0)
        .bind(key.user_id.0)
        .bind(&key.hashed_secret)
        .bind(key.login_type.as_str())
        .bind(&key.token_name)
        .bind(key.lifetime_seconds)
        .bind(DbTime(key.expires_at))
        .bind(DbTime(key.last_used))
        .bind(DbTime(key.created_at))
        .bind(DbTime(key.updated_at))
        .execute(c)
        .await?;
    });
    Ok(())
}
