//! Device authorization requests (RFC 8628): issued by `POST /oauth2/device`, decided on the
//! verification page, redeemed once at the token endpoint.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::oauth::Redemption;
use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreResult};
use crate::domain::{ClientId, DeviceCode, GrantId, UserId};

const COLUMNS: &str = "id, secret_prefix, hashed_secret, user_code, app_id, scope, audience, \
     grant_id, interval_secs, last_polled_at, user_id, approved_at, denied_at, used_at, \
     expires_at, created_at";

impl Store {
    pub async fn insert_device_code(&self, code: &DeviceCode) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO oauth2_device_codes (id, secret_prefix, hashed_secret, user_code, \
                 app_id, scope, audience, grant_id, interval_secs, last_polled_at, user_id, \
                 approved_at, denied_at, used_at, expires_at, created_at, updated_at) VALUES ($1, \
                 $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)",
            )
            .bind(code.id)
            .bind(&code.secret_prefix)
            .bind(&code.hashed_secret)
            .bind(&code.user_code)
            .bind(code.app_id.0)
            .bind(&code.scope)
            .bind(&code.audience)
            .bind(code.grant_id.0)
            .bind(code.interval_secs)
            .bind(code.last_polled_at.map(DbTime))
            .bind(code.user_id.map(|u| u.0))
            .bind(code.approved_at.map(DbTime))
            .bind(code.denied_at.map(DbTime))
            .bind(code.used_at.map(DbTime))
            .bind(DbTime(code.expires_at))
            .bind(DbTime(code.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The request whose device code has this lookup prefix.
    pub async fn get_device_code_by_prefix(&self, prefix: &str) -> StoreResult<Option<DeviceCode>> {
        let sql = format!("SELECT {COLUMNS} FROM oauth2_device_codes WHERE secret_prefix = $1");
        let row: Option<DeviceCodeRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(prefix)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(DeviceCode::from))
    }

    /// The request a user typed the (normalized) code of.
    pub async fn get_device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> StoreResult<Option<DeviceCode>> {
        let sql = format!("SELECT {COLUMNS} FROM oauth2_device_codes WHERE user_code = $1");
        let row: Option<DeviceCodeRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(user_code)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(DeviceCode::from))
    }

    pub async fn delete_expired_device_codes(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM oauth2_device_codes WHERE expires_at <= $1")
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[derive(FromRow)]
struct DeviceCodeRow {
    id: Uuid,
    secret_prefix: String,
    hashed_secret: Vec<u8>,
    user_code: String,
    app_id: Uuid,
    scope: String,
    audience: String,
    grant_id: Uuid,
    interval_secs: i64,
    last_polled_at: Option<DbTime>,
    user_id: Option<Uuid>,
    approved_at: Option<DbTime>,
    denied_at: Option<DbTime>,
    used_at: Option<DbTime>,
    expires_at: DbTime,
    created_at: DbTime,
}

impl From<DeviceCodeRow> for DeviceCode {
    fn from(row: DeviceCodeRow) -> Self {
        DeviceCode {
            id: row.id,
            secret_prefix: row.secret_prefix,
            hashed_secret: row.hashed_secret,
            user_code: row.user_code,
            app_id: ClientId(row.app_id),
            scope: row.scope,
            audience: row.audience,
            grant_id: GrantId(row.grant_id),
            interval_secs: row.interval_secs,
            last_polled_at: row.last_polled_at.map(|t| t.0),
            user_id: row.user_id.map(UserId),
            approved_at: row.approved_at.map(|t| t.0),
            denied_at: row.denied_at.map(|t| t.0),
            used_at: row.used_at.map(|t| t.0),
            expires_at: row.expires_at.0,
            created_at: row.created_at.0,
        }
    }
}

impl Store {
    /// Records the user's decision on a pending, unexpired request; false (nothing written) when
    /// it was already decided or expired. `scope` is what the approver's role allows.
    pub async fn decide_device_code(
        &self,
        id: Uuid,
        user: UserId,
        scope: &str,
        approved: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let column = if approved { "approved_at" } else { "denied_at" };
        let sql = format!(
            "UPDATE oauth2_device_codes SET user_id = $2, scope = $3, {column} = $4, \
             updated_at = $4 WHERE id = $1 AND approved_at IS NULL AND denied_at IS NULL \
             AND expires_at > $4"
        );
        Ok(on!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .bind(user.0)
                .bind(scope)
                .bind(DbTime(now))
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }
}

impl Store {
    /// Records a poll at `now` if the previous one was at least `interval_secs` before; else
    /// adds `slow_down_secs` to the interval (RFC 8628 §3.5) and answers false. Conditional on
    /// the stored poll time, so concurrent polls cannot both pass.
    pub async fn poll_device_code(
        &self,
        code: &DeviceCode,
        now: DateTime<Utc>,
        slow_down_secs: i64,
    ) -> StoreResult<bool> {
        let too_soon = code
            .last_polled_at
            .is_some_and(|last| now < last + chrono::Duration::seconds(code.interval_secs));
        let interval = if too_soon {
            code.interval_secs + slow_down_secs
        } else {
            code.interval_secs
        };
        let changed = on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE oauth2_device_codes SET last_polled_at = $2, interval_secs = $3, \
                 updated_at = $2 WHERE id = $1 AND interval_secs = $4 AND \
                 (last_polled_at = $5 OR (last_polled_at IS NULL AND $5 IS NULL))",
            )
            .bind(code.id)
            .bind(DbTime(now))
            .bind(interval)
            .bind(code.interval_secs)
            .bind(code.last_polled_at.map(DbTime))
            .execute(pool)
            .await?
            .rows_affected()
        });
        // A concurrent poll changed the row first: this one was too soon as well.
        Ok(changed == 1 && !too_soon)
    }

    /// Marks an approved device code used and opens what it grants (a grant and its first
    /// refresh token, or the CLI's API session) in one transaction; false (nothing written) when
    /// it was already used.
    pub async fn redeem_device_code(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        opens: Redemption,
    ) -> StoreResult<bool> {
        self.redeem_code(
            "UPDATE oauth2_device_codes SET used_at = $2, updated_at = $2 \
             WHERE id = $1 AND used_at IS NULL AND approved_at IS NOT NULL",
            id,
            now,
            opens,
        )
        .await
    }

    /// Uses up a denied device code, so the device hears `access_denied` once (RFC 8628 §3.5);
    /// false when it was already used up.
    pub async fn consume_denied_device_code(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.redeem_code(
            "UPDATE oauth2_device_codes SET used_at = $2, updated_at = $2 \
             WHERE id = $1 AND used_at IS NULL AND denied_at IS NOT NULL",
            id,
            now,
            Redemption::Nothing,
        )
        .await
    }
}
