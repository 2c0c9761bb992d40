//! Provisioner keys: what external provisioner daemons sign in with (a SHA-256 of each
//! secret), and the tags each gives its daemons.

use sqlx::FromRow;
use uuid::Uuid;

use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreResult};
use crate::domain::OrganizationId;
use crate::domain::provisioner::{ProvisionerKey, ProvisionerKeyId, ProvisionerTags};

const KEY_COLUMNS: &str = "id, organization_id, name, tags, created_at";

impl Store {
    /// Stores a key; a name the organization already has is a `Conflict`.
    pub async fn insert_provisioner_key(
        &self,
        key: &ProvisionerKey,
        hashed_secret: &[u8],
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO provisioner_keys (id, organization_id, name, hashed_secret, tags, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(key.id.0)
            .bind(key.organization_id.0)
            .bind(&key.name)
            .bind(hashed_secret)
            .bind(key.tags.canonical())
            .bind(DbTime(key.created_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_provisioner_key_by_secret(
        &self,
        hashed_secret: &[u8],
    ) -> StoreResult<Option<ProvisionerKey>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM provisioner_keys WHERE hashed_secret = $1");
        let row: Option<KeyRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(hashed_secret)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(ProvisionerKey::from))
    }

    /// The organization's keys, by name.
    pub async fn list_provisioner_keys(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Vec<ProvisionerKey>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM provisioner_keys WHERE organization_id = $1 \
             ORDER BY lower(name), id"
        );
        let rows: Vec<KeyRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(org.0).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(ProvisionerKey::from).collect())
    }

    /// Deletes the key named `name` (case-insensitively); false when there is none.
    pub async fn delete_provisioner_key(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<bool> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query(
                "DELETE FROM provisioner_keys WHERE organization_id = $1 AND lower(name) = lower($2)",
            )
            .bind(org.0)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        }))
    }
}

#[derive(FromRow)]
struct KeyRow {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    tags: String,
    created_at: DbTime,
}

impl From<KeyRow> for ProvisionerKey {
    fn from(r: KeyRow) -> Self {
        ProvisionerKey {
            id: ProvisionerKeyId(r.id),
            organization_id: OrganizationId(r.organization_id),
            name: r.name,
            tags: ProvisionerTags::from_stored(&r.tags),
            created_at: r.created_at.0,
        }
    }
}
