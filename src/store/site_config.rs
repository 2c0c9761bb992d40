//! Deployment-wide settings: one text value per key.

use chrono::{DateTime, Utc};

use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreResult, unstorable};

impl Store {
    pub async fn get_site_config(&self, key: &str) -> StoreResult<Option<String>> {
        if unstorable(key) {
            return Ok(None);
        }
        let row: Option<(String,)> = on!(&self.pool, |pool| {
            sqlx::query_as("SELECT value FROM site_configs WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(v,)| v))
    }

    pub async fn upsert_site_config(
        &self,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO site_configs (key, value, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
