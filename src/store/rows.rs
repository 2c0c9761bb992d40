//! Row shapes shared by both backends, and their conversion into domain entities.

use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use super::time::DbTime;
use crate::domain::{ApiKey, ApiKeyId, LoginType, Role, User, UserId, UserStatus};

/// The column list every user query selects, in `UserRow` order.
pub const USER_COLUMNS: &str =
    "id, username, email, name, role, status, created_at, updated_at, last_seen_at";

pub const API_KEY_COLUMNS: &str = "id, user_id, hashed_secret, login_type, token_name, \
     lifetime_seconds, expires_at, last_used, created_at, updated_at";

#[derive(FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub last_seen_at: DbTime,
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
pub struct UserCredentialsRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub hashed_password: String,
}

#[derive(FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: Uuid,
    pub hashed_secret: Vec<u8>,
    pub login_type: String,
    pub token_name: String,
    pub lifetime_seconds: i64,
    pub expires_at: DbTime,
    pub last_used: DbTime,
    pub created_at: DbTime,
    pub updated_at: DbTime,
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

/// A stored value the domain has no name for: the database holds something this build never
/// writes.
pub(super) fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Database(format!("unexpected value {value:?} in {column}"))
}

/// Converts every row, failing on the first that does not map.
pub fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
