//! The SQL both backends share, written once.
//!
//! sqlx's query API is generic over the database only through deep trait bounds, so the shared
//! implementation is a macro expanded once per backend with that backend's pool. The SQL text is
//! portable: numbered `$N` placeholders (SQLite accepts them too), `RETURNING`, partial indexes,
//! and no server-side clock (times are always bound parameters from the `Clock`). Statements that
//! must differ live in the backend's own module.

/// Implements `Store` for `$store`, whose `pool` field is a `sqlx::Pool` of that backend.
macro_rules! impl_shared_store {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn close(&self) {
                self.pool.close().await;
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn count_users(&self) -> $crate::store::StoreResult<i64> {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM users WHERE NOT deleted")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(n)
            }

            async fn create_first_user(
                &self,
                user: $crate::domain::NewUser,
            ) -> $crate::store::StoreResult<$crate::domain::User> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                // The guard row's primary key makes a second, concurrent first-user request fail.
                let guard = sqlx::query(
                    "INSERT INTO site_configs (key, value, created_at, updated_at) \
                     VALUES ('first_user_id', $1, $2, $2)",
                )
                .bind(user.id.0.to_string())
                .bind(DbTime(user.created_at))
                .execute(&mut *tx)
                .await;
                match guard.map_err($crate::store::StoreError::from) {
                    Err($crate::store::StoreError::Conflict { .. }) => {
                        return Err($crate::store::StoreError::FirstUserExists);
                    }
                    other => {
                        other?;
                    }
                }
                // Users created some other way (an owner's `create_user`) never took the guard.
                let (existing,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM users WHERE NOT deleted")
                        .fetch_one(&mut *tx)
                        .await?;
                if existing > 0 {
                    return Err($crate::store::StoreError::FirstUserExists);
                }
                let created = insert_user(&mut *tx, user).await?;
                tx.commit().await?;
                Ok(created)
            }

            async fn create_user(
                &self,
                user: $crate::domain::NewUser,
            ) -> $crate::store::StoreResult<$crate::domain::User> {
                insert_user(&self.pool, user).await
            }

            async fn get_user_by_id(
                &self,
                id: $crate::domain::UserId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::User>> {
                let sql = format!(
                    "SELECT {} FROM users WHERE id = $1 AND NOT deleted",
                    $crate::store::rows::USER_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::UserRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::User::try_from)
                    .transpose()
            }

            async fn get_user_by_username(
                &self,
                username: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::User>> {
                if $crate::store::queries::unstorable(username) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {} FROM users WHERE lower(username) = lower($1) AND NOT deleted",
                    $crate::store::rows::USER_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::UserRow>(&sql)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::User::try_from)
                    .transpose()
            }

            async fn get_user_credentials_by_email(
                &self,
                email: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserCredentials>> {
                if $crate::store::queries::unstorable(email) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {}, hashed_password FROM users \
                     WHERE lower(email) = lower($1) AND NOT deleted",
                    $crate::store::rows::USER_COLUMNS
                );
                let row = sqlx::query_as::<_, $crate::store::rows::UserCredentialsRow>(&sql)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok($crate::store::UserCredentials {
                        user: r.user.try_into()?,
                        hashed_password: r.hashed_password,
                    })
                })
                .transpose()
            }

            async fn list_users(
                &self,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<(Vec<$crate::domain::User>, i64)> {
                let sql = format!(
                    "SELECT {} FROM users WHERE NOT deleted \
                     ORDER BY lower(username) LIMIT $1 OFFSET $2",
                    $crate::store::rows::USER_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::UserRow>(&sql)
                    .bind(page.limit)
                    .bind(page.offset)
                    .fetch_all(&self.pool)
                    .await?;
                let total = self.count_users().await?;
                Ok(($crate::store::rows::convert_all(rows)?, total))
            }

            async fn delete_user(
                &self,
                id: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let marked = sqlx::query(
                    "UPDATE users SET deleted = TRUE, updated_at = $2 WHERE id = $1 AND NOT deleted",
                )
                .bind(id.0)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("DELETE FROM api_keys WHERE user_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(marked == 1)
            }

            async fn touch_user_last_seen(
                &self,
                id: $crate::domain::UserId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE users SET last_seen_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_api_key(
                &self,
                key: $crate::domain::ApiKey,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO api_keys (id, user_id, hashed_secret, login_type, token_name, \
                     lifetime_seconds, expires_at, last_used, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(key.id.0)
                .bind(key.user_id.0)
                .bind(key.hashed_secret)
                .bind(key.login_type.as_str())
                .bind(key.token_name)
                .bind(key.lifetime_seconds)
                .bind(DbTime(key.expires_at))
                .bind(DbTime(key.last_used))
                .bind(DbTime(key.created_at))
                .bind(DbTime(key.updated_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_api_key(
                &self,
                id: &$crate::domain::ApiKeyId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::ApiKey>> {
                if $crate::store::queries::unstorable(&id.0) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE id = $1",
                    $crate::store::rows::API_KEY_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::rows::ApiKeyRow>(&sql)
                    .bind(&id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::ApiKey::try_from)
                    .transpose()
            }

            async fn list_api_keys(
                &self,
                user: $crate::domain::UserId,
                login_type: $crate::domain::LoginType,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::ApiKey>> {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE user_id = $1 AND login_type = $2 \
                     ORDER BY created_at, id",
                    $crate::store::rows::API_KEY_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::rows::ApiKeyRow>(&sql)
                    .bind(user.0)
                    .bind(login_type.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn delete_api_key(
                &self,
                user: $crate::domain::UserId,
                id: &$crate::domain::ApiKeyId,
            ) -> $crate::store::StoreResult<bool> {
                if $crate::store::queries::unstorable(&id.0) {
                    return Ok(false);
                }
                let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
                    .bind(&id.0)
                    .bind(user.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn touch_api_key(
                &self,
                id: &$crate::domain::ApiKeyId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                if $crate::store::queries::unstorable(&id.0) {
                    return Ok(());
                }
                sqlx::query("UPDATE api_keys SET last_used = $2 WHERE id = $1")
                    .bind(&id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_expired_api_keys(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM api_keys WHERE expires_at <= $1")
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn get_site_config(
                &self,
                key: &str,
            ) -> $crate::store::StoreResult<Option<String>> {
                if $crate::store::queries::unstorable(key) {
                    return Ok(None);
                }
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT value FROM site_configs WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(v,)| v))
            }

            async fn upsert_site_config(
                &self,
                key: &str,
                value: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO site_configs (key, value, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        async fn insert_user<'e, E>(
            executor: E,
            user: $crate::domain::NewUser,
        ) -> $crate::store::StoreResult<$crate::domain::User>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::Backend>::Db>,
        {
            use $crate::store::time::DbTime;
            let sql = format!(
                "INSERT INTO users (id, username, email, name, hashed_password, role, status, \
                 created_at, updated_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7, $7) RETURNING {}",
                $crate::store::rows::USER_COLUMNS
            );
            let row = sqlx::query_as::<_, $crate::store::rows::UserRow>(&sql)
                .bind(user.id.0)
                .bind(user.username)
                .bind(user.email)
                .bind(user.name)
                .bind(user.hashed_password)
                .bind(user.role.as_str())
                .bind(DbTime(user.created_at))
                .fetch_one(executor)
                .await?;
            row.try_into()
        }
    };
}

pub(crate) use impl_shared_store;

/// PostgreSQL text cannot hold a NUL character, so no stored key contains one. Lookups by such a
/// key find nothing on both backends, instead of failing the query (which would surface as a 500).
pub(crate) fn unstorable(key: &str) -> bool {
    key.contains('\0')
}
