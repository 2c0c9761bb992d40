//! The OAuth2 authorization server's data: client applications and their secrets,
//! authorization codes, grants with their refresh tokens, the revocation feed, and the
//! access-token signing keys.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::{corrupt, corrupt_json};
use super::pool::{Tx, atomically, on};
use super::time::DbTime;
use super::users::{UserRow, insert_api_key};
use super::{Store, StoreError, StoreResult, aliased, convert_all, qualified};
use crate::domain::{
    ApiKey, AppSecret, AuthorizationCode, ClientId, ClientType, Grant, GrantId, OAuthApp,
    RefreshToken, StoredSigningKey, TokenAuthMethod, User, UserId,
};

/// Client applications.
impl Store {
    pub async fn insert_oauth_app(&self, app: OAuthApp) -> StoreResult<()> {
        self.insert_app(app, "").await
    }

    /// Inserts `app` unless a client with its id exists: the built-in clients, written at every
    /// start (replicas starting together do not conflict).
    pub async fn ensure_oauth_app(&self, app: OAuthApp) -> StoreResult<()> {
        self.insert_app(app, " ON CONFLICT (id) DO NOTHING").await
    }

    async fn insert_app(&self, app: OAuthApp, on_conflict: &str) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO oauth2_provider_apps (id, name, icon, redirect_uris, client_type, \
                 token_endpoint_auth_method, grant_types, response_types, scope, \
                 dynamically_registered, client_uri, logo_uri, tos_uri, policy_uri, contacts, \
                 software_id, software_version, registration_access_token, client_id_issued_at, \
                 last_used_at, created_at, updated_at, metadata_document_url) VALUES ($1, $2, $3, \
                 $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                 $21, $22, $23){on_conflict}"
        );
        on!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(app.id.0)
                .bind(&app.name)
                .bind(&app.icon)
                .bind(to_json_list(&app.redirect_uris))
                .bind(app.client_type.as_str())
                .bind(app.token_endpoint_auth_method.as_str())
                .bind(to_json_list(&app.grant_types))
                .bind(to_json_list(&app.response_types))
                .bind(&app.scope)
                .bind(app.dynamically_registered)
                .bind(&app.client_uri)
                .bind(&app.logo_uri)
                .bind(&app.tos_uri)
                .bind(&app.policy_uri)
                .bind(to_json_list(&app.contacts))
                .bind(&app.software_id)
                .bind(&app.software_version)
                .bind(&app.registration_access_token_hash)
                .bind(DbTime(app.client_id_issued_at))
                .bind(app.last_used_at.map(DbTime))
                .bind(DbTime(app.created_at))
                .bind(DbTime(app.updated_at))
                .bind(&app.metadata_document_url)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The client identified by the metadata document at `url`, if it was seen before.
    pub async fn get_oauth_app_by_metadata_url(&self, url: &str) -> StoreResult<Option<OAuthApp>> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM oauth2_provider_apps WHERE metadata_document_url = $1"
        );
        let row: Option<AppRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(url).fetch_optional(pool).await?
        });
        row.map(OAuthApp::try_from).transpose()
    }

    /// Stores the client a metadata document describes: a new row the first time its URL is
    /// seen, else the existing row refreshed from the document (its id, creation time and use
    /// stay). Returns the stored row; two replicas racing agree on one row.
    pub async fn upsert_metadata_document_app(&self, app: OAuthApp) -> StoreResult<OAuthApp> {
        let sql = format!(
            "INSERT INTO oauth2_provider_apps (id, name, icon, redirect_uris, client_type, \
             token_endpoint_auth_method, grant_types, response_types, scope, \
             dynamically_registered, client_uri, logo_uri, tos_uri, policy_uri, contacts, \
             software_id, software_version, registration_access_token, client_id_issued_at, \
             last_used_at, created_at, updated_at, metadata_document_url) VALUES ($1, $2, $3, \
             $4, $5, $6, $7, $8, $9, FALSE, $10, $11, $12, $13, $14, $15, $16, NULL, $17, NULL, \
             $17, $17, $18) \
             ON CONFLICT (metadata_document_url) WHERE metadata_document_url IS NOT NULL \
             DO UPDATE SET name = excluded.name, icon = excluded.icon, \
             redirect_uris = excluded.redirect_uris, client_type = excluded.client_type, \
             token_endpoint_auth_method = excluded.token_endpoint_auth_method, \
             grant_types = excluded.grant_types, response_types = excluded.response_types, \
             scope = excluded.scope, client_uri = excluded.client_uri, \
             logo_uri = excluded.logo_uri, tos_uri = excluded.tos_uri, \
             policy_uri = excluded.policy_uri, contacts = excluded.contacts, \
             software_id = excluded.software_id, software_version = excluded.software_version, \
             updated_at = excluded.updated_at \
             RETURNING {APP_COLUMNS}"
        );
        let row: AppRow = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(app.id.0)
                .bind(&app.name)
                .bind(&app.icon)
                .bind(to_json_list(&app.redirect_uris))
                .bind(app.client_type.as_str())
                .bind(app.token_endpoint_auth_method.as_str())
                .bind(to_json_list(&app.grant_types))
                .bind(to_json_list(&app.response_types))
                .bind(&app.scope)
                .bind(&app.client_uri)
                .bind(&app.logo_uri)
                .bind(&app.tos_uri)
                .bind(&app.policy_uri)
                .bind(to_json_list(&app.contacts))
                .bind(&app.software_id)
                .bind(&app.software_version)
                .bind(DbTime(app.updated_at))
                .bind(&app.metadata_document_url)
                .fetch_one(pool)
                .await?
        });
        OAuthApp::try_from(row)
    }

    /// Records a client assertion's `jti` (hashed) until `expires_at`; false when it was
    /// already recorded, i.e. the assertion is being replayed (RFC 7523 §3, item 7).
    pub async fn record_assertion_jti(
        &self,
        jti_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let inserted = on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO oauth2_client_assertion_jtis (jti_hash, expires_at, created_at, \
                 updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (jti_hash) DO NOTHING",
            )
            .bind(jti_hash)
            .bind(DbTime(expires_at))
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    pub async fn delete_expired_assertion_jtis(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_client_assertion_jtis WHERE expires_at < $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    pub async fn get_oauth_app(&self, id: ClientId) -> StoreResult<Option<OAuthApp>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM oauth2_provider_apps WHERE id = $1");
        let row: Option<AppRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(OAuthApp::try_from).transpose()
    }

    /// A client with its secret whose prefix is `secret_prefix` (`None` when it has no such
    /// secret, or none was asked for), in one query: what authenticating a confidential client
    /// at the token endpoint reads.
    pub async fn get_oauth_app_with_secret(
        &self,
        id: ClientId,
        secret_prefix: Option<&str>,
    ) -> StoreResult<Option<(OAuthApp, Option<AppSecret>)>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, {} FROM oauth2_provider_apps a LEFT JOIN oauth2_provider_app_secrets s \
                 ON s.secret_prefix = $2 AND s.app_id = a.id WHERE a.id = $1",
                qualified("a", APP_COLUMNS),
                aliased("s", SECRET_COLUMNS),
            )
        });
        let row: Option<AppWithSecretRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&SQL)
                .bind(id.0)
                .bind(secret_prefix)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let secret = row.secret.into_row().map(AppSecret::try_from).transpose()?;
        Ok(Some((OAuthApp::try_from(row.app)?, secret)))
    }

    pub async fn list_oauth_apps(&self) -> StoreResult<Vec<OAuthApp>> {
        let sql = format!("SELECT {APP_COLUMNS} FROM oauth2_provider_apps ORDER BY created_at, id");
        let rows: Vec<AppRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        convert_all(rows)
    }

    /// Replaces every mutable field; false when the app does not exist.
    pub async fn update_oauth_app(&self, app: OAuthApp) -> StoreResult<bool> {
        let updated = on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE oauth2_provider_apps SET name = $2, icon = $3, redirect_uris = $4, \
                 token_endpoint_auth_method = $5, grant_types = $6, response_types = $7, \
                 scope = $8, client_uri = $9, logo_uri = $10, tos_uri = $11, policy_uri = $12, \
                 contacts = $13, software_id = $14, software_version = $15, updated_at = $16 \
                 WHERE id = $1",
            )
            .bind(app.id.0)
            .bind(&app.name)
            .bind(&app.icon)
            .bind(to_json_list(&app.redirect_uris))
            .bind(app.token_endpoint_auth_method.as_str())
            .bind(to_json_list(&app.grant_types))
            .bind(to_json_list(&app.response_types))
            .bind(&app.scope)
            .bind(&app.client_uri)
            .bind(&app.logo_uri)
            .bind(&app.tos_uri)
            .bind(&app.policy_uri)
            .bind(to_json_list(&app.contacts))
            .bind(&app.software_id)
            .bind(&app.software_version)
            .bind(DbTime(app.updated_at))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes the app with its secrets, codes and grants, first writing every live grant to
    /// the revocation feed. `None` when the app does not exist.
    pub async fn delete_oauth_app(
        &self,
        id: ClientId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Vec<GrantId>>> {
        let mut tx = self.pool.begin().await?;
        let revoked: Vec<(Uuid,)> = on!(tx.conn(), |c| {
            sqlx::query_as(
                "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                 WHERE app_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(DbTime(now))
            .bind(id.0)
            .fetch_all(c)
            .await?
        });
        record_revocations(&mut tx, &revoked, now).await?;
        let deleted = on!(tx.conn(), |c| {
            sqlx::query("DELETE FROM oauth2_provider_apps WHERE id = $1")
                .bind(id.0)
                .execute(c)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(grant_ids(revoked)))
    }

    pub async fn touch_oauth_app(&self, id: ClientId, now: DateTime<Utc>) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE oauth2_provider_apps SET last_used_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Dynamically registered clients never used for a token yet: what a flood of registrations
    /// leaves behind until the cleanup deletes it.
    pub async fn count_unused_dynamic_apps(&self) -> StoreResult<i64> {
        let (count,): (i64,) = on!(&self.pool, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM oauth2_provider_apps WHERE dynamically_registered \
                 AND last_used_at IS NULL",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(count)
    }

    /// Deletes dynamically registered clients never used for a token and created before `cutoff`.
    pub async fn delete_abandoned_dynamic_apps(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query(
                "DELETE FROM oauth2_provider_apps WHERE dynamically_registered \
                 AND last_used_at IS NULL AND created_at < $1",
            )
            .bind(DbTime(cutoff))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}

/// Client secrets.
impl Store {
    pub async fn insert_app_secret(&self, secret: AppSecret) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO oauth2_provider_app_secrets (id, app_id, secret_prefix, \
                 hashed_secret, display_secret, last_used_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(secret.id)
            .bind(secret.app_id.0)
            .bind(&secret.secret_prefix)
            .bind(&secret.hashed_secret)
            .bind(&secret.display_secret)
            .bind(secret.last_used_at.map(DbTime))
            .bind(DbTime(secret.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_app_secret_by_prefix(&self, prefix: &str) -> StoreResult<Option<AppSecret>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM oauth2_provider_app_secrets WHERE secret_prefix = $1"
        );
        let row: Option<SecretRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        row.map(AppSecret::try_from).transpose()
    }

    pub async fn list_app_secrets(&self, app: ClientId) -> StoreResult<Vec<AppSecret>> {
        let sql = format!(
            "SELECT {SECRET_COLUMNS} FROM oauth2_provider_app_secrets WHERE app_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<SecretRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(app.0).fetch_all(pool).await?
        });
        convert_all(rows)
    }

    /// Deletes the secret and revokes the grants issued through it. `None` when it does not
    /// exist for that app.
    pub async fn delete_app_secret(
        &self,
        app: ClientId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Vec<GrantId>>> {
        let mut tx = self.pool.begin().await?;
        let revoked: Vec<(Uuid,)> = on!(tx.conn(), |c| {
            sqlx::query_as(
                "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                 WHERE app_secret_id = $2 AND app_id = $3 AND revoked_at IS NULL RETURNING id",
            )
            .bind(DbTime(now))
            .bind(id)
            .bind(app.0)
            .fetch_all(c)
            .await?
        });
        record_revocations(&mut tx, &revoked, now).await?;
        let deleted = on!(tx.conn(), |c| {
            sqlx::query("DELETE FROM oauth2_provider_app_secrets WHERE id = $1 AND app_id = $2")
                .bind(id)
                .bind(app.0)
                .execute(c)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(grant_ids(revoked)))
    }

    pub async fn touch_app_secret(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE oauth2_provider_app_secrets SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// Authorization codes.
impl Store {
    pub async fn insert_auth_code(&self, code: AuthorizationCode) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO oauth2_provider_app_codes (id, secret_prefix, hashed_secret, app_id, \
                 user_id, grant_id, redirect_uri, redirect_uri_sent, code_challenge, audience, \
                 scope, expires_at, used_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
            )
            .bind(code.id)
            .bind(&code.secret_prefix)
            .bind(&code.hashed_secret)
            .bind(code.app_id.0)
            .bind(code.user_id.0)
            .bind(code.grant_id.0)
            .bind(&code.redirect_uri)
            .bind(code.redirect_uri_sent)
            .bind(&code.code_challenge)
            .bind(&code.audience)
            .bind(&code.scope)
            .bind(DbTime(code.expires_at))
            .bind(code.used_at.map(DbTime))
            .bind(DbTime(code.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_auth_code_by_prefix(
        &self,
        prefix: &str,
    ) -> StoreResult<Option<AuthorizationCode>> {
        let sql = format!(
            "SELECT {CODE_COLUMNS} FROM oauth2_provider_app_codes WHERE secret_prefix = $1"
        );
        let row: Option<CodeRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        row.map(AuthorizationCode::try_from).transpose()
    }

    /// The code whose prefix is `prefix` with the user who approved it (`None` if they were
    /// deleted), in one query: what the token endpoint reads to redeem it.
    pub async fn get_auth_code_with_user(
        &self,
        prefix: &str,
    ) -> StoreResult<Option<(AuthorizationCode, Option<User>)>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {}, {} FROM oauth2_provider_app_codes c \
                 LEFT JOIN users u ON u.id = c.user_id AND NOT u.deleted WHERE c.secret_prefix = $1",
                qualified("c", CODE_COLUMNS),
                aliased("u", super::users::USER_COLUMNS),
            )
        });
        let row: Option<CodeWithUserRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&SQL)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let user = row.user.into_row().map(User::try_from).transpose()?;
        Ok(Some((AuthorizationCode::try_from(row.code)?, user)))
    }

    /// Atomically marks the code used and creates its grant and first refresh token; false (and
    /// nothing written) when the code was already used.
    pub async fn redeem_auth_code(
        &self,
        code_id: Uuid,
        now: DateTime<Utc>,
        grant: Grant,
        refresh: RefreshToken,
    ) -> StoreResult<bool> {
        self.redeem_code(
            "UPDATE oauth2_provider_app_codes SET used_at = $2, updated_at = $2 \
             WHERE id = $1 AND used_at IS NULL",
            code_id,
            now,
            Redemption::Grant { grant, refresh },
        )
        .await
    }

    /// The one step that redeems a single-use code (an authorization code, a device code):
    /// `consume` is a conditional UPDATE of the code's row (`$1` its id, `$2` now), and what the
    /// code opens is written in the same transaction. Of two concurrent redemptions only one sees
    /// a row change (RFC 6749 §4.1.2 single use); false, with nothing written, for the other.
    pub(super) async fn redeem_code(
        &self,
        consume: &'static str,
        code_id: Uuid,
        now: DateTime<Utc>,
        opens: Redemption,
    ) -> StoreResult<bool> {
        let session = match opens {
            Redemption::Grant { grant, refresh } => {
                return self
                    .redeem_with_grant(consume, code_id, now, grant, refresh)
                    .await;
            }
            Redemption::Session(key) => Some(key),
            Redemption::Nothing => None,
        };
        let mut tx = self.pool.begin().await?;
        let consumed = on!(tx.conn(), |c| {
            sqlx::query(consume)
                .bind(code_id)
                .bind(DbTime(now))
                .execute(c)
                .await?
                .rows_affected()
        });
        if consumed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(key) = session {
            insert_api_key(&mut tx, &key).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// `redeem_code` for a code that opens a grant, in one write (`Dialect::redeem_with_grant`):
    /// the code grants' hot path, one round trip on PostgreSQL.
    async fn redeem_with_grant(
        &self,
        consume: &'static str,
        code_id: Uuid,
        now: DateTime<Utc>,
        grant: Grant,
        refresh: RefreshToken,
    ) -> StoreResult<bool> {
        let sql = self
            .dialect()
            .redeem_with_grant
            .replace("{consume}", consume);
        let stored = atomically!(&self.pool, |c| {
            sqlx::query(&sql)
                .bind(code_id)
                .bind(DbTime(now))
                .bind(grant.id.0)
                .bind(grant.app_id.0)
                .bind(grant.user_id.0)
                .bind(grant.app_secret_id)
                .bind(grant.scope)
                .bind(grant.audience)
                .bind(DbTime(grant.last_used_at))
                .bind(DbTime(grant.created_at))
                .bind(refresh.id)
                .bind(refresh.grant_id.0)
                .bind(refresh.secret_prefix)
                .bind(refresh.hashed_secret)
                .bind(DbTime(refresh.expires_at))
                .bind(refresh.rotated_at.map(DbTime))
                .bind(DbTime(refresh.created_at))
                .fetch_all(c)
                .await?
                .len()
        });
        Ok(stored != 0)
    }

    pub async fn delete_expired_auth_codes(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_provider_app_codes WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// Grants and their refresh tokens.
impl Store {
    pub async fn get_grant(&self, id: GrantId) -> StoreResult<Option<Grant>> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM oauth2_grants WHERE id = $1");
        let row: Option<GrantRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Grant::try_from).transpose()
    }

    /// Revokes one grant (and records it in the revocation feed); false if already revoked or absent.
    pub async fn revoke_grant(&self, id: GrantId, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE oauth2_grants SET revoked_at = $2, updated_at = $2 \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .execute(c)
            .await?
            .rows_affected()
        });
        if changed == 1 {
            record_revocations(&mut tx, &[(id.0,)], now).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Revokes a user's live grants, for one client or for all; returns the ids revoked.
    pub async fn revoke_user_grants(
        &self,
        user: UserId,
        app: Option<ClientId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<GrantId>> {
        let mut tx = self.pool.begin().await?;
        let revoked: Vec<(Uuid,)> = on!(tx.conn(), |c| {
            sqlx::query_as(
                "UPDATE oauth2_grants SET revoked_at = $1, updated_at = $1 \
                 WHERE user_id = $2 AND ($3 IS NULL OR app_id = $3) AND revoked_at IS NULL \
                 RETURNING id",
            )
            .bind(DbTime(now))
            .bind(user.0)
            .bind(app.map(|a| a.0))
            .fetch_all(c)
            .await?
        });
        record_revocations(&mut tx, &revoked, now).await?;
        tx.commit().await?;
        Ok(grant_ids(revoked))
    }

    /// A user's live (unrevoked) grants, newest first.
    pub async fn list_user_grants(&self, user: UserId) -> StoreResult<Vec<Grant>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM oauth2_grants WHERE user_id = $1 AND revoked_at IS NULL \
             ORDER BY created_at DESC, id"
        );
        let rows: Vec<GrantRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(user.0).fetch_all(pool).await?
        });
        convert_all(rows)
    }

    pub async fn get_refresh_token_by_prefix(
        &self,
        prefix: &str,
    ) -> StoreResult<Option<RefreshToken>> {
        let sql =
            format!("SELECT {REFRESH_COLUMNS} FROM oauth2_refresh_tokens WHERE secret_prefix = $1");
        let row: Option<RefreshRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        row.map(RefreshToken::try_from).transpose()
    }

    /// The refresh token whose prefix is `prefix` with its grant and the user who granted it
    /// (`None` if they were deleted), in one query: what a refresh reads.
    pub async fn get_refresh_token_with_grant(
        &self,
        prefix: &str,
    ) -> StoreResult<Option<(RefreshToken, Grant, Option<User>)>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            // The grant always exists: a token's grant_id is a foreign key that cascades.
            format!(
                "SELECT {}, {}, {} FROM oauth2_refresh_tokens t \
                 JOIN oauth2_grants g ON g.id = t.grant_id \
                 LEFT JOIN users u ON u.id = g.user_id AND NOT u.deleted WHERE t.secret_prefix = $1",
                qualified("t", REFRESH_COLUMNS),
                aliased("g", GRANT_COLUMNS),
                aliased("u", super::users::USER_COLUMNS),
            )
        });
        let row: Option<RefreshWithGrantRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&SQL)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let user = row.user.into_row().map(User::try_from).transpose()?;
        Ok(Some((
            RefreshToken::try_from(row.token)?,
            Grant::try_from(row.grant.into_row())?,
            user,
        )))
    }

    /// Atomically marks `old` rotated and stores `new`, touching the grant's `last_used_at`, in
    /// one write (`Dialect::rotate_refresh_token`); false (nothing written) when `old` was
    /// already rotated.
    pub async fn rotate_refresh_token(
        &self,
        old: Uuid,
        now: DateTime<Utc>,
        new: RefreshToken,
    ) -> StoreResult<bool> {
        let sql = self.dialect().rotate_refresh_token;
        let stored = atomically!(&self.pool, |c| {
            sqlx::query(sql)
                .bind(old)
                .bind(DbTime(now))
                .bind(new.id)
                .bind(new.grant_id.0)
                .bind(new.secret_prefix)
                .bind(new.hashed_secret)
                .bind(DbTime(new.expires_at))
                .bind(new.rotated_at.map(DbTime))
                .bind(DbTime(new.created_at))
                .fetch_all(c)
                .await?
                .len()
        });
        Ok(stored != 0)
    }

    pub async fn delete_expired_refresh_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_refresh_tokens WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// The revocation feed that every replica's token verifier follows.
impl Store {
    pub async fn list_revocations_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(GrantId, DateTime<Utc>)>> {
        let rows: Vec<(Uuid, DbTime)> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "SELECT grant_id, revoked_at FROM oauth2_revocations WHERE revoked_at >= $1",
            )
            .bind(DbTime(since))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(g, t)| (GrantId(g), t.0)).collect())
    }

    pub async fn delete_revocations_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_revocations WHERE revoked_at < $1")
                .bind(DbTime(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// Access-token signing keys.
impl Store {
    pub async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM oauth2_signing_keys ORDER BY created_at, id");
        let rows: Vec<KeyRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        convert_all(rows)
    }

    pub async fn insert_signing_key(&self, key: StoredSigningKey) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO oauth2_signing_keys (id, algorithm, private_key, public_key, \
                 retired_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&key.kid)
            .bind(&key.algorithm)
            .bind(&key.private_key)
            .bind(&key.public_key)
            .bind(key.retired_at.map(DbTime))
            .bind(DbTime(key.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Marks every key but `kid` retired (retired keys still verify until their tokens expire).
    pub async fn retire_signing_keys_except(
        &self,
        kid: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE oauth2_signing_keys SET retired_at = $2, updated_at = $2 \
                 WHERE id <> $1 AND retired_at IS NULL",
            )
            .bind(kid)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn delete_signing_keys_retired_before(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_signing_keys WHERE retired_at < $1")
                .bind(DbTime(before))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// What redeeming a code opens.
#[derive(Debug)]
pub enum Redemption {
    /// A grant with its first refresh token (third-party clients).
    Grant { grant: Grant, refresh: RefreshToken },
    /// An API session (the built-in CLI client's device login).
    Session(ApiKey),
    /// Nothing: the code is only used up (a denied device code after its one `access_denied`).
    Nothing,
}

/// Writes revoked grants to the feed every replica's token verifier follows.
async fn record_revocations(
    tx: &mut Tx,
    grants: &[(Uuid,)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for (grant,) in grants {
        on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO oauth2_revocations (grant_id, revoked_at, created_at, updated_at) \
                 VALUES ($1, $2, $2, $2) ON CONFLICT (grant_id) DO NOTHING",
            )
            .bind(grant)
            .bind(DbTime(now))
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

fn grant_ids(rows: Vec<(Uuid,)>) -> Vec<GrantId> {
    rows.into_iter().map(|(g,)| GrantId(g)).collect()
}

const APP_COLUMNS: &str = "id, name, icon, redirect_uris, client_type, \
     token_endpoint_auth_method, grant_types, response_types, scope, dynamically_registered, \
     client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id, software_version, \
     registration_access_token, client_id_issued_at, last_used_at, created_at, updated_at, \
     metadata_document_url";

const SECRET_COLUMNS: &str =
    "id, app_id, secret_prefix, hashed_secret, display_secret, last_used_at, created_at";

const CODE_COLUMNS: &str = "id, secret_prefix, hashed_secret, app_id, user_id, grant_id, \
     redirect_uri, redirect_uri_sent, code_challenge, audience, scope, expires_at, used_at, created_at";

const GRANT_COLUMNS: &str =
    "id, app_id, user_id, app_secret_id, scope, audience, last_used_at, revoked_at, created_at";

const REFRESH_COLUMNS: &str =
    "id, grant_id, secret_prefix, hashed_secret, expires_at, rotated_at, created_at";

const KEY_COLUMNS: &str = "id, algorithm, private_key, public_key, retired_at, created_at";

#[derive(FromRow)]
struct AppRow {
    id: Uuid,
    name: String,
    icon: String,
    redirect_uris: String,
    client_type: String,
    token_endpoint_auth_method: String,
    grant_types: String,
    response_types: String,
    scope: String,
    dynamically_registered: bool,
    client_uri: String,
    logo_uri: String,
    tos_uri: String,
    policy_uri: String,
    contacts: String,
    software_id: String,
    software_version: String,
    registration_access_token: Option<Vec<u8>>,
    client_id_issued_at: DbTime,
    last_used_at: Option<DbTime>,
    created_at: DbTime,
    updated_at: DbTime,
    metadata_document_url: Option<String>,
}

/// Lists of strings are stored as JSON arrays in text columns.
fn to_json_list(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

fn json_list(column: &'static str, raw: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| corrupt_json(column, e))
}

impl TryFrom<AppRow> for OAuthApp {
    type Error = StoreError;

    fn try_from(row: AppRow) -> Result<Self, Self::Error> {
        Ok(OAuthApp {
            id: ClientId(row.id),
            redirect_uris: json_list("oauth2_provider_apps.redirect_uris", &row.redirect_uris)?,
            client_type: ClientType::parse(&row.client_type)
                .ok_or_else(|| corrupt("oauth2_provider_apps.client_type", &row.client_type))?,
            token_endpoint_auth_method: TokenAuthMethod::parse(&row.token_endpoint_auth_method)
                .ok_or_else(|| {
                    corrupt(
                        "oauth2_provider_apps.token_endpoint_auth_method",
                        &row.token_endpoint_auth_method,
                    )
                })?,
            grant_types: json_list("oauth2_provider_apps.grant_types", &row.grant_types)?,
            response_types: json_list("oauth2_provider_apps.response_types", &row.response_types)?,
            contacts: json_list("oauth2_provider_apps.contacts", &row.contacts)?,
            name: row.name,
            icon: row.icon,
            scope: row.scope,
            dynamically_registered: row.dynamically_registered,
            client_uri: row.client_uri,
            logo_uri: row.logo_uri,
            tos_uri: row.tos_uri,
            policy_uri: row.policy_uri,
            software_id: row.software_id,
            software_version: row.software_version,
            registration_access_token_hash: row.registration_access_token,
            metadata_document_url: row.metadata_document_url,
            client_id_issued_at: row.client_id_issued_at.0,
            last_used_at: row.last_used_at.map(|t| t.0),
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

#[derive(FromRow)]
struct SecretRow {
    id: Uuid,
    app_id: Uuid,
    secret_prefix: String,
    hashed_secret: Vec<u8>,
    display_secret: String,
    last_used_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<SecretRow> for AppSecret {
    type Error = StoreError;

    fn try_from(row: SecretRow) -> Result<Self, Self::Error> {
        Ok(AppSecret {
            id: row.id,
            app_id: ClientId(row.app_id),
            secret_prefix: row.secret_prefix,
            hashed_secret: row.hashed_secret,
            display_secret: row.display_secret,
            last_used_at: row.last_used_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}

#[derive(FromRow)]
struct CodeRow {
    id: Uuid,
    secret_prefix: String,
    hashed_secret: Vec<u8>,
    app_id: Uuid,
    user_id: Uuid,
    grant_id: Uuid,
    redirect_uri: String,
    redirect_uri_sent: bool,
    code_challenge: String,
    audience: String,
    scope: String,
    expires_at: DbTime,
    used_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<CodeRow> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(row: CodeRow) -> Result<Self, Self::Error> {
        Ok(AuthorizationCode {
            id: row.id,
            secret_prefix: row.secret_prefix,
            hashed_secret: row.hashed_secret,
            app_id: ClientId(row.app_id),
            user_id: UserId(row.user_id),
            grant_id: GrantId(row.grant_id),
            redirect_uri: row.redirect_uri,
            redirect_uri_sent: row.redirect_uri_sent,
            code_challenge: row.code_challenge,
            audience: row.audience,
            scope: row.scope,
            expires_at: row.expires_at.0,
            used_at: row.used_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}

#[derive(FromRow)]
struct GrantRow {
    id: Uuid,
    app_id: Uuid,
    user_id: Uuid,
    app_secret_id: Option<Uuid>,
    scope: String,
    audience: String,
    last_used_at: DbTime,
    revoked_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, Self::Error> {
        Ok(Grant {
            id: GrantId(row.id),
            app_id: ClientId(row.app_id),
            user_id: UserId(row.user_id),
            app_secret_id: row.app_secret_id,
            scope: row.scope,
            audience: row.audience,
            last_used_at: row.last_used_at.0,
            revoked_at: row.revoked_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}

#[derive(FromRow)]
struct RefreshRow {
    id: Uuid,
    grant_id: Uuid,
    secret_prefix: String,
    hashed_secret: Vec<u8>,
    expires_at: DbTime,
    rotated_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<RefreshRow> for RefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshRow) -> Result<Self, Self::Error> {
        Ok(RefreshToken {
            id: row.id,
            grant_id: GrantId(row.grant_id),
            secret_prefix: row.secret_prefix,
            hashed_secret: row.hashed_secret,
            expires_at: row.expires_at.0,
            rotated_at: row.rotated_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}

#[derive(FromRow)]
struct AppWithSecretRow {
    #[sqlx(flatten)]
    app: AppRow,
    #[sqlx(flatten)]
    secret: JoinedSecretRow,
}

/// `SECRET_COLUMNS` as `aliased("s", ...)` names them, from a LEFT JOIN.
#[derive(FromRow)]
struct JoinedSecretRow {
    s_id: Option<Uuid>,
    s_app_id: Option<Uuid>,
    s_secret_prefix: Option<String>,
    s_hashed_secret: Option<Vec<u8>>,
    s_display_secret: Option<String>,
    s_last_used_at: Option<DbTime>,
    s_created_at: Option<DbTime>,
}

impl JoinedSecretRow {
    /// The secret, if the join found one (its non-null columns are all set then).
    fn into_row(self) -> Option<SecretRow> {
        Some(SecretRow {
            id: self.s_id?,
            app_id: self.s_app_id?,
            secret_prefix: self.s_secret_prefix?,
            hashed_secret: self.s_hashed_secret?,
            display_secret: self.s_display_secret?,
            last_used_at: self.s_last_used_at,
            created_at: self.s_created_at?,
        })
    }
}

#[derive(FromRow)]
struct CodeWithUserRow {
    #[sqlx(flatten)]
    code: CodeRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

#[derive(FromRow)]
struct RefreshWithGrantRow {
    #[sqlx(flatten)]
    token: RefreshRow,
    #[sqlx(flatten)]
    grant: JoinedGrantRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// `GRANT_COLUMNS` as `aliased("g", ...)` names them, from an inner join.
#[derive(FromRow)]
struct JoinedGrantRow {
    g_id: Uuid,
    g_app_id: Uuid,
    g_user_id: Uuid,
    g_app_secret_id: Option<Uuid>,
    g_scope: String,
    g_audience: String,
    g_last_used_at: DbTime,
    g_revoked_at: Option<DbTime>,
    g_created_at: DbTime,
}

impl JoinedGrantRow {
    fn into_row(self) -> GrantRow {
        GrantRow {
            id: self.g_id,
            app_id: self.g_app_id,
            user_id: self.g_user_id,
            app_secret_id: self.g_app_secret_id,
            scope: self.g_scope,
            audience: self.g_audience,
            last_used_at: self.g_last_used_at,
            revoked_at: self.g_revoked_at,
            created_at: self.g_created_at,
        }
    }
}

/// The users table's `USER_COLUMNS` as `aliased("u", ...)` names them, from a LEFT JOIN.
#[derive(FromRow)]
struct JoinedUserRow {
    u_id: Option<Uuid>,
    u_username: Option<String>,
    u_email: Option<String>,
    u_name: Option<String>,
    u_role: Option<String>,
    u_status: Option<String>,
    u_created_at: Option<DbTime>,
    u_updated_at: Option<DbTime>,
    u_last_seen_at: Option<DbTime>,
}

impl JoinedUserRow {
    /// The user, if the join found one (all their columns are non-null then).
    fn into_row(self) -> Option<UserRow> {
        Some(UserRow {
            id: self.u_id?,
            username: self.u_username?,
            email: self.u_email?,
            name: self.u_name?,
            role: self.u_role?,
            status: self.u_status?,
            created_at: self.u_created_at?,
            updated_at: self.u_updated_at?,
            last_seen_at: self.u_last_seen_at?,
        })
    }
}

#[derive(FromRow)]
struct KeyRow {
    id: String,
    algorithm: String,
    private_key: String,
    public_key: String,
    retired_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<KeyRow> for StoredSigningKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, Self::Error> {
        Ok(StoredSigningKey {
            kid: row.id,
            algorithm: row.algorithm,
            private_key: row.private_key,
            public_key: row.public_key,
            retired_at: row.retired_at.map(|t| t.0),
            created_at: row.created_at.0,
        })
    }
}
