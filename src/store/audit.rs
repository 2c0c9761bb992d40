//! The audit log.

use sqlx::FromRow;
use uuid::Uuid;

use super::error::corrupt_json;
use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all};
use crate::domain::{AuditEntry, ClientId, UserId};

impl Store {
    /// Writes the entries in one statement: all of them or none.
    pub async fn insert_audit_logs(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        on!(&self.pool, |pool| {
            let mut insert = sqlx::QueryBuilder::new(
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
            insert.build().execute(pool).await?;
        });
        Ok(())
    }

    /// The newest entries first.
    pub async fn list_audit_logs(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_logs ORDER BY time DESC, id LIMIT $1");
        let rows: Vec<AuditRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?
        });
        convert_all(rows)
    }
}

const AUDIT_COLUMNS: &str =
    "id, time, user_id, client_id, action, resource_type, resource_id, ip, details";

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    time: DbTime,
    user_id: Option<Uuid>,
    client_id: Option<Uuid>,
    action: String,
    resource_type: String,
    resource_id: String,
    ip: String,
    details: String,
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
                .map_err(|e| corrupt_json("audit_logs.details", e))?,
        })
    }
}
