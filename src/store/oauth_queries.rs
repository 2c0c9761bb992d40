//! The OAuth SQL both backends share, written once (see `queries.rs` for why this is a macro).

/// Implements `OAuthStore` for `$store`, whose `pool` field is a `sqlx::Pool` of that backend.
macro_rules! impl_oauth_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::OAuthStore for $store {
            async fn insert_oauth_app(&self, app: $crate::domain::OAuthApp) -> $crate::store::StoreResult<()> {
                use $crate::store::oauth_rows::to_json_list;
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO oauth2_provider_apps (id, name, icon, redirect_uris, client_type, \
                     token_endpoint_auth_method, grant_types, response_types, scope, \
                     dynamically_registered, client_uri, logo_uri, tos_uri, policy_uri, contacts, \
                     software_id, software_version, registration_access_token, client_id_issued_at, \
                     last_used_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                     $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
                )
                .bind(app.id.0)
                .bind(app.name)
                .bind(app.icon)
                .bind(to_json_list(&app.redirect_uris))
                .bind(app.client_type.as_str())
                .bind(app.token_endpoint_auth_method.as_str())
                .bind(to_json_list(&app.grant_types))
                .bind(to_json_list(&app.response_types))
                .bind(app.scope)
                .bind(app.dynamically_registered)
                .bind(app.client_uri)
                .bind(app.logo_uri)
                .bind(app.tos_uri)
                .bind(app.policy_uri)
                .bind(to_json_list(&app.contacts))
                .bind(app.software_id)
                .bind(app.software_version)
                .bind(app.registration_access_token_hash)
                .bind(DbTime(app.client_id_issued_at))
                .bind(app.last_used_at.map(DbTime))
                .bind(DbTime(app.created_at))
                .bind(DbTime(app.updated_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_oauth_app(
                &self,
                id: $crate::domain::ClientId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::OAuthApp>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_provider_apps WHERE id = $1",
                    $crate::store::oauth_rows::APP_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::oauth_rows::AppRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::OAuthApp::try_from)
                    .transpose()
            }

            async fn list_oauth_apps(&self) -> $crate::store::StoreResult<Vec<$crate::domain::OAuthApp>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_provider_apps ORDER BY created_at, id",
                    $crate::store::oauth_rows::APP_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::oauth_rows::AppRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn update_oauth_app(&self, app: $crate::domain::OAuthApp) -> $crate::store::StoreResult<bool> {
                use $crate::store::oauth_rows::to_json_list;
                use $crate::store::time::DbTime;
                let done = sqlx::query(
                    "UPDATE oauth2_provider_apps SET name = $2, icon = $3, redirect_uris = $4, \
                     token_endpoint_auth_method = $5, grant_types = $6, response_types = $7, \
                     scope = $8, client_uri = $9, logo_uri = $10, tos_uri = $11, policy_uri = $12, \
                     contacts = $13, software_id = $14, software_version = $15, updated_at = $16 \
                     WHERE id = $1",
                )
                .bind(app.id.0)
                .bind(app.name)
                .bind(app.icon)
                .bind(to_json_list(&app.redirect_uris))
                .bind(app.token_endpoint_auth_method.as_str())
                .bind(to_json_list(&app.grant_types))
                .bind(to_json_list(&app.response_types))
                .bind(app.scope)
                .bind(app.client_uri)
                .bind(app.logo_uri)
                .bind(app.tos_uri)
                .bind(app.policy_uri)
                .bind(to_json_list(&app.contacts))
                .bind(app.software_id)
                .bind(app.software_version)
                .bind(DbTime(app.updated_at))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_oauth_app(
                &self,
                id: $crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<Vec<$crate::domain::GrantId>>> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let revoked: Vec<(uuid::Uuid,)> = sqlx::query_as(
                    "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                     WHERE app_id = $2 AND revoked_at IS NULL RETURNING id",
                )
                .bind(DbTime(now))
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
                record_revocations(&mut tx, &revoked, now).await?;
                let deleted = sqlx::query("DELETE FROM oauth2_provider_apps WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                tx.commit().await?;
                Ok(Some(revoked.into_iter().map(|(g,)| $crate::domain::GrantId(g)).collect()))
            }

            async fn touch_oauth_app(
                &self,
                id: $crate::domain::ClientId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE oauth2_provider_apps SET last_used_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_abandoned_dynamic_apps(
                &self,
                cutoff: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM oauth2_provider_apps WHERE dynamically_registered \
                     AND last_used_at IS NULL AND created_at < $1",
                )
                .bind($crate::store::time::DbTime(cutoff))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn insert_app_secret(&self, secret: $crate::domain::AppSecret) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO oauth2_provider_app_secrets (id, app_id, secret_prefix, \
                     hashed_secret, display_secret, last_used_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(secret.id)
                .bind(secret.app_id.0)
                .bind(secret.secret_prefix)
                .bind(secret.hashed_secret)
                .bind(secret.display_secret)
                .bind(secret.last_used_at.map(DbTime))
                .bind(DbTime(secret.created_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_app_secret_by_prefix(
                &self,
                prefix: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::AppSecret>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_provider_app_secrets WHERE secret_prefix = $1",
                    $crate::store::oauth_rows::SECRET_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::oauth_rows::SecretRow>(&sql)
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::AppSecret::try_from)
                    .transpose()
            }

            async fn list_app_secrets(
                &self,
                app: $crate::domain::ClientId,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::AppSecret>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_provider_app_secrets WHERE app_id = $1 ORDER BY created_at, id",
                    $crate::store::oauth_rows::SECRET_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::oauth_rows::SecretRow>(&sql)
                    .bind(app.0)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn delete_app_secret(
                &self,
                app: $crate::domain::ClientId,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<Vec<$crate::domain::GrantId>>> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let revoked: Vec<(uuid::Uuid,)> = sqlx::query_as(
                    "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                     WHERE app_secret_id = $2 AND app_id = $3 AND revoked_at IS NULL RETURNING id",
                )
                .bind(DbTime(now))
                .bind(id)
                .bind(app.0)
                .fetch_all(&mut *tx)
                .await?;
                record_revocations(&mut tx, &revoked, now).await?;
                let deleted = sqlx::query("DELETE FROM oauth2_provider_app_secrets WHERE id = $1 AND app_id = $2")
                    .bind(id)
                    .bind(app.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(None);
                }
                tx.commit().await?;
                Ok(Some(revoked.into_iter().map(|(g,)| $crate::domain::GrantId(g)).collect()))
            }

            async fn touch_app_secret(
                &self,
                id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE oauth2_provider_app_secrets SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_auth_code(
                &self,
                code: $crate::domain::AuthorizationCode,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO oauth2_provider_app_codes (id, secret_prefix, hashed_secret, app_id, \
                     user_id, grant_id, redirect_uri, redirect_uri_sent, code_challenge, audience, \
                     scope, expires_at, used_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
                )
                .bind(code.id)
                .bind(code.secret_prefix)
                .bind(code.hashed_secret)
                .bind(code.app_id.0)
                .bind(code.user_id.0)
                .bind(code.grant_id.0)
                .bind(code.redirect_uri)
                .bind(code.redirect_uri_sent)
                .bind(code.code_challenge)
                .bind(code.audience)
                .bind(code.scope)
                .bind(DbTime(code.expires_at))
                .bind(code.used_at.map(DbTime))
                .bind(DbTime(code.created_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_auth_code_by_prefix(
                &self,
                prefix: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::AuthorizationCode>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_provider_app_codes WHERE secret_prefix = $1",
                    $crate::store::oauth_rows::CODE_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::oauth_rows::CodeRow>(&sql)
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::AuthorizationCode::try_from)
                    .transpose()
            }

            async fn redeem_auth_code(
                &self,
                code_id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                grant: $crate::domain::Grant,
                refresh: $crate::domain::RefreshToken,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                // The conditional update is the single point where a code is consumed: of two
                // concurrent exchanges, only one sees a row change (RFC 6749 §4.1.2 single use).
                let consumed = sqlx::query(
                    "UPDATE oauth2_provider_app_codes SET used_at = $2, updated_at = $2 \
                     WHERE id = $1 AND used_at IS NULL",
                )
                .bind(code_id)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if consumed != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO oauth2_grants (id, app_id, user_id, app_secret_id, scope, audience, \
                     last_used_at, revoked_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8)",
                )
                .bind(grant.id.0)
                .bind(grant.app_id.0)
                .bind(grant.user_id.0)
                .bind(grant.app_secret_id)
                .bind(grant.scope)
                .bind(grant.audience)
                .bind(DbTime(grant.last_used_at))
                .bind(DbTime(grant.created_at))
                .execute(&mut *tx)
                .await?;
                insert_refresh_token(&mut *tx, refresh).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn delete_expired_auth_codes(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM oauth2_provider_app_codes WHERE expires_at <= $1")
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn get_grant(
                &self,
                id: $crate::domain::GrantId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Grant>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_grants WHERE id = $1",
                    $crate::store::oauth_rows::GRANT_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::oauth_rows::GrantRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Grant::try_from)
                    .transpose()
            }

            async fn revoke_grant(
                &self,
                id: $crate::domain::GrantId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE oauth2_grants SET revoked_at = $2, updated_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id.0)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 1 {
                    record_revocations(&mut tx, &[(id.0,)], now).await?;
                }
                tx.commit().await?;
                Ok(changed == 1)
            }

            async fn revoke_user_grants(
                &self,
                user: $crate::domain::UserId,
                app: Option<$crate::domain::ClientId>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::GrantId>> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let revoked: Vec<(uuid::Uuid,)> = sqlx::query_as(
                    "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                     WHERE user_id = $2 AND ($3 IS NULL OR app_id = $3) AND revoked_at IS NULL \
                     RETURNING id",
                )
                .bind(DbTime(now))
                .bind(user.0)
                .bind(app.map(|a| a.0))
                .fetch_all(&mut *tx)
                .await?;
                record_revocations(&mut tx, &revoked, now).await?;
                tx.commit().await?;
                Ok(revoked.into_iter().map(|(g,)| $crate::domain::GrantId(g)).collect())
            }

            async fn list_user_grants(
                &self,
                user: $crate::domain::UserId,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Grant>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_grants WHERE user_id = $1 AND revoked_at IS NULL \
                     ORDER BY created_at DESC, id",
                    $crate::store::oauth_rows::GRANT_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::oauth_rows::GrantRow>(&sql)
                    .bind(user.0)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn touch_grant(
                &self,
                id: $crate::domain::GrantId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE oauth2_grants SET last_used_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_refresh_token_by_prefix(
                &self,
                prefix: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::RefreshToken>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_refresh_tokens WHERE secret_prefix = $1",
                    $crate::store::oauth_rows::REFRESH_COLUMNS
                );
                sqlx::query_as::<_, $crate::store::oauth_rows::RefreshRow>(&sql)
                    .bind(prefix)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::RefreshToken::try_from)
                    .transpose()
            }

            async fn rotate_refresh_token(
                &self,
                old: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                new: $crate::domain::RefreshToken,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                let rotated = sqlx::query(
                    "UPDATE oauth2_refresh_tokens SET rotated_at = $2, updated_at = $2 \
                     WHERE id = $1 AND rotated_at IS NULL",
                )
                .bind(old)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if rotated != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let grant = new.grant_id;
                insert_refresh_token(&mut *tx, new).await?;
                sqlx::query("UPDATE oauth2_grants SET last_used_at = $2 WHERE id = $1")
                    .bind(grant.0)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn delete_expired_refresh_tokens(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM oauth2_refresh_tokens WHERE expires_at <= $1")
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn list_revocations_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<($crate::domain::GrantId, chrono::DateTime<chrono::Utc>)>> {
                let rows: Vec<(uuid::Uuid, $crate::store::time::DbTime)> = sqlx::query_as(
                    "SELECT grant_id, revoked_at FROM oauth2_revocations WHERE revoked_at >= $1",
                )
                .bind($crate::store::time::DbTime(since))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(g, t)| ($crate::domain::GrantId(g), t.0)).collect())
            }

            async fn delete_revocations_before(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM oauth2_revocations WHERE revoked_at < $1")
                    .bind($crate::store::time::DbTime(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn list_signing_keys(&self) -> $crate::store::StoreResult<Vec<$crate::domain::StoredSigningKey>> {
                let sql = format!(
                    "SELECT {} FROM oauth2_signing_keys ORDER BY created_at, id",
                    $crate::store::oauth_rows::KEY_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::oauth_rows::KeyRow>(&sql)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn insert_signing_key(&self, key: $crate::domain::StoredSigningKey) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO oauth2_signing_keys (id, algorithm, private_key, public_key, \
                     retired_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(key.kid)
                .bind(key.algorithm)
                .bind(key.private_key)
                .bind(key.public_key)
                .bind(key.retired_at.map(DbTime))
                .bind(DbTime(key.created_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn retire_signing_keys_except(
                &self,
                kid: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE oauth2_signing_keys SET retired_at = $2, updated_at = $2 \
                     WHERE id <> $1 AND retired_at IS NULL",
                )
                .bind(kid)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_signing_keys_retired_before(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM oauth2_signing_keys WHERE retired_at < $1")
                    .bind($crate::store::time::DbTime(before))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn insert_audit_logs(
                &self,
                entries: &[$crate::domain::AuditEntry],
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                if entries.is_empty() {
                    return Ok(());
                }
                let mut insert = sqlx::QueryBuilder::<<$store as $crate::store::Backend>::Db>::new(
                    "INSERT INTO audit_logs (id, time, user_id, client_id, action, resource_type, \
                     resource_id, ip, details, created_at, updated_at) ",
                );
                insert.push_values(entries, |mut row, entry| {
                    row.push_bind(entry.id)
                        .push_bind(DbTime(entry.time))
                        .push_bind(entry.user_id.map(|u| u.0))
                        .push_bind(entry.client_id.map(|c| c.0))
                        .push_bind(entry.action.clone())
                        .push_bind(entry.resource_type.clone())
                        .push_bind(entry.resource_id.clone())
                        .push_bind(entry.ip.clone())
                        .push_bind(entry.details.to_string())
                        .push_bind(DbTime(entry.time))
                        .push_bind(DbTime(entry.time));
                });
                insert.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn list_audit_logs(&self, limit: i64) -> $crate::store::StoreResult<Vec<$crate::domain::AuditEntry>> {
                let sql = format!(
                    "SELECT {} FROM audit_logs ORDER BY time DESC, id LIMIT $1",
                    $crate::store::oauth_rows::AUDIT_COLUMNS
                );
                let rows = sqlx::query_as::<_, $crate::store::oauth_rows::AuditRow>(&sql)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }
        }

        /// Writes revoked grants to the feed every replica's token verifier follows.
        async fn record_revocations(
            tx: &mut sqlx::Transaction<'static, <$store as $crate::store::Backend>::Db>,
            grants: &[(uuid::Uuid,)],
            now: chrono::DateTime<chrono::Utc>,
        ) -> $crate::store::StoreResult<()> {
            for (grant,) in grants {
                sqlx::query(
                    "INSERT INTO oauth2_revocations (grant_id, revoked_at, created_at, updated_at) \
                     VALUES ($1, $2, $2, $2) ON CONFLICT (grant_id) DO NOTHING",
                )
                .bind(grant)
                .bind($crate::store::time::DbTime(now))
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }

        async fn insert_refresh_token<'e, E>(
            executor: E,
            token: $crate::domain::RefreshToken,
        ) -> $crate::store::StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::Backend>::Db>,
        {
            use $crate::store::time::DbTime;
            sqlx::query(
                "INSERT INTO oauth2_refresh_tokens (id, grant_id, secret_prefix, hashed_secret, \
                 expires_at, rotated_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(token.id)
            .bind(token.grant_id.0)
            .bind(token.secret_prefix)
            .bind(token.hashed_secret)
            .bind(DbTime(token.expires_at))
            .bind(token.rotated_at.map(DbTime))
            .bind(DbTime(token.created_at))
            .execute(executor)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_oauth_store;
