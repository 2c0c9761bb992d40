//! OAuth row shapes shared by both backends, and their conversion into domain entities.

use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use super::time::DbTime;
use crate::domain::{
    AppSecret, AuditEntry, AuthorizationCode, ClientId, ClientType, Grant, GrantId, OAuthApp,
    RefreshToken, StoredSigningKey, TokenAuthMethod, UserId,
};

pub const APP_COLUMNS: &str = "id, name, icon, redirect_uris, client_type, \
     token_endpoint_auth_method, grant_types, response_types, scope, dynamically_registered, \
     client_uri, logo_uri, tos_uri, policy_uri, contacts, software_id, software_version, \
     registration_access_token, client_id_issued_at, last_used_at, created_at, updated_at";

pub const SECRET_COLUMNS: &str =
    "id, app_id, secret_prefix, hashed_secret, display_secret, last_used_at, created_at";

pub const CODE_COLUMNS: &str = "id, secret_prefix, hashed_secret, app_id, user_id, grant_id, \
     redirect_uri, redirect_uri_sent, code_challenge, audience, scope, expires_at, used_at, created_at";

pub const GRANT_COLUMNS: &str =
    "id, app_id, user_id, app_secret_id, scope, audience, last_used_at, revoked_at, created_at";

pub const REFRESH_COLUMNS: &str =
    "id, grant_id, secret_prefix, hashed_secret, expires_at, rotated_at, created_at";

pub const KEY_COLUMNS: &str = "id, algorithm, private_key, public_key, retired_at, created_at";

pub const AUDIT_COLUMNS: &str =
    "id, time, user_id, client_id, action, resource_type, resource_id, ip, details";

#[derive(FromRow)]
pub struct AppRow {
    pub id: Uuid,
    pub name: String,
    pub icon: String,
    pub redirect_uris: String,
    pub client_type: String,
    pub token_endpoint_auth_method: String,
    pub grant_types: String,
    pub response_types: String,
    pub scope: String,
    pub dynamically_registered: bool,
    pub client_uri: String,
    pub logo_uri: String,
    pub tos_uri: String,
    pub policy_uri: String,
    pub contacts: String,
    pub software_id: String,
    pub software_version: String,
    pub registration_access_token: Option<Vec<u8>>,
    pub client_id_issued_at: DbTime,
    pub last_used_at: Option<DbTime>,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

fn json_list(column: &str, raw: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw)
        .map_err(|e| StoreError::Database(format!("invalid JSON list in {column}: {e}")))
}

pub fn to_json_list(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

impl TryFrom<AppRow> for OAuthApp {
    type Error = StoreError;

    fn try_from(row: AppRow) -> Result<Self, Self::Error> {
        Ok(OAuthApp {
            id: ClientId(row.id),
            redirect_uris: json_list("redirect_uris", &row.redirect_uris)?,
            client_type: ClientType::parse(&row.client_type)
                .ok_or_else(|| corrupt("client_type", &row.client_type))?,
            token_endpoint_auth_method: TokenAuthMethod::parse(&row.token_endpoint_auth_method)
                .ok_or_else(|| {
                    corrupt(
                        "token_endpoint_auth_method",
                        &row.token_endpoint_auth_method,
                    )
                })?,
            grant_types: json_list("grant_types", &row.grant_types)?,
            response_types: json_list("response_types", &row.response_types)?,
            contacts: json_list("contacts", &row.contacts)?,
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
            client_id_issued_at: row.client_id_issued_at.0,
            last_used_at: row.last_used_at.map(|t| t.0),
            created_at: row.created_at.0,
            updated_at: row.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct SecretRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    pub display_secret: String,
    pub last_used_at: Option<DbTime>,
    pub created_at: DbTime,
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
pub struct CodeRow {
    pub id: Uuid,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    pub app_id: Uuid,
    pub user_id: Uuid,
    pub grant_id: Uuid,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    pub audience: String,
    pub scope: String,
    pub expires_at: DbTime,
    pub used_at: Option<DbTime>,
    pub created_at: DbTime,
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
pub struct GrantRow {
    pub id: Uuid,
    pub app_id: Uuid,
    pub user_id: Uuid,
    pub app_secret_id: Option<Uuid>,
    pub scope: String,
    pub audience: String,
    pub last_used_at: DbTime,
    pub revoked_at: Option<DbTime>,
    pub created_at: DbTime,
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
pub struct RefreshRow {
    pub id: Uuid,
    pub grant_id: Uuid,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    pub expires_at: DbTime,
    pub rotated_at: Option<DbTime>,
    pub created_at: DbTime,
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
pub struct KeyRow {
    pub id: String,
    pub algorithm: String,
    pub private_key: String,
    pub public_key: String,
    pub retired_at: Option<DbTime>,
    pub created_at: DbTime,
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

#[derive(FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub time: DbTime,
    pub user_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub ip: String,
    pub details: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, Self::Error> {
        Ok(AuditEntry {
            id: row.id,
            time: row.time.0,
            user_id: row.user_id.map(UserId),
            client_id: row.client_id.map(ClientId),
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            ip: row.ip,
            details: serde_json::from_str(&row.details)
                .map_err(|e| StoreError::Database(format!("invalid audit details: {e}")))?,
        })
    }
}

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Database(format!(
        "unexpected value {value:?} in oauth2_provider_apps.{column}"
    ))
}
