//! The OAuth2 part of the store contract.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{
    AppSecret, AuditEntry, AuthorizationCode, ClientId, Grant, GrantId, OAuthApp, RefreshToken,
    StoredSigningKey, UserId,
};

#[async_trait]
pub trait OAuthStore: Send + Sync {
    // Client applications.
    async fn insert_oauth_app(&self, app: OAuthApp) -> StoreResult<()>;
    async fn get_oauth_app(&self, id: ClientId) -> StoreResult<Option<OAuthApp>>;
    async fn list_oauth_apps(&self) -> StoreResult<Vec<OAuthApp>>;
    /// Replaces every mutable field; false when the app does not exist.
    async fn update_oauth_app(&self, app: OAuthApp) -> StoreResult<bool>;
    /// Deletes the app with its secrets, codes and grants, first writing every live grant to
    /// the revocation feed. `None` when the app does not exist.
    async fn delete_oauth_app(
        &self,
        id: ClientId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Vec<GrantId>>>;
    async fn touch_oauth_app(&self, id: ClientId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes dynamically registered clients never used for a token and created before `cutoff`.
    async fn delete_abandoned_dynamic_apps(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    // Client secrets.
    async fn insert_app_secret(&self, secret: AppSecret) -> StoreResult<()>;
    async fn get_app_secret_by_prefix(&self, prefix: &str) -> StoreResult<Option<AppSecret>>;
    async fn list_app_secrets(&self, app: ClientId) -> StoreResult<Vec<AppSecret>>;
    /// Deletes the secret and revokes the grants issued through it. `None` when it does not
    /// exist for that app.
    async fn delete_app_secret(
        &self,
        app: ClientId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Vec<GrantId>>>;
    async fn touch_app_secret(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    // Authorization codes.
    async fn insert_auth_code(&self, code: AuthorizationCode) -> StoreResult<()>;
    async fn get_auth_code_by_prefix(&self, prefix: &str)
    -> StoreResult<Option<AuthorizationCode>>;
    /// Atomically marks the code used and creates its grant and first refresh token; false (and
    /// nothing written) when the code was already used.
    async fn redeem_auth_code(
        &self,
        code_id: Uuid,
        now: DateTime<Utc>,
        grant: Grant,
        refresh: RefreshToken,
    ) -> StoreResult<bool>;
    async fn delete_expired_auth_codes(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // Grants.
    async fn get_grant(&self, id: GrantId) -> StoreResult<Option<Grant>>;
    /// Revokes one grant (and records it in the revocation feed); false if already revoked or absent.
    async fn revoke_grant(&self, id: GrantId, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Revokes a user's live grants, for one client or for all; returns the ids revoked.
    async fn revoke_user_grants(
        &self,
        user: UserId,
        app: Option<ClientId>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<GrantId>>;
    /// A user's live (unrevoked) grants, newest first.
    async fn list_user_grants(&self, user: UserId) -> StoreResult<Vec<Grant>>;
    async fn touch_grant(&self, id: GrantId, now: DateTime<Utc>) -> StoreResult<()>;

    // Refresh tokens.
    async fn get_refresh_token_by_prefix(&self, prefix: &str) -> StoreResult<Option<RefreshToken>>;
    /// Atomically marks `old` rotated and stores `new`; false (nothing written) when `old` was
    /// already rotated.
    async fn rotate_refresh_token(
        &self,
        old: Uuid,
        now: DateTime<Utc>,
        new: RefreshToken,
    ) -> StoreResult<bool>;
    async fn delete_expired_refresh_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // The revocation feed that every replica's token verifier follows.
    async fn list_revocations_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(GrantId, DateTime<Utc>)>>;
    async fn delete_revocations_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // Access-token signing keys.
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;
    async fn insert_signing_key(&self, key: StoredSigningKey) -> StoreResult<()>;
    /// Marks every key but `kid` retired (retired keys still verify until their tokens expire).
    async fn retire_signing_keys_except(&self, kid: &str, now: DateTime<Utc>) -> StoreResult<()>;
    async fn delete_signing_keys_retired_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // Audit log.
    /// Writes the entries in one statement: all of them or none.
    async fn insert_audit_logs(&self, entries: &[AuditEntry]) -> StoreResult<()>;
    /// The newest entries first.
    async fn list_audit_logs(&self, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}
