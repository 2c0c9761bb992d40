//! The audit log.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::corrupt_json;
use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all, unstorable};
use crate::domain::{AuditEntry, ClientId, Page, UserId};

/// Batches of at most this many rows keep their prepared statement in the connection's cache.
/// Each batch size is its own SQL text, and a prepared 256-row INSERT takes about 17 KB: cached
/// for every size the writer happened to send (sqlx keeps 100 per connection), they held 7 MiB
/// of the server's heap under load (heaptrack, docs/benchmarks.md, issue 19). Small batches,
/// the common case when the server is not busy, stay prepared; larger ones are prepared anew,
/// once per batch of entries.
const CACHED_BATCH_ROWS: usize = 4;

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
            insert
                .build()
                .persistent(entries.len() <= CACHED_BATCH_ROWS)
                .execute(pool)
                .await?;
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

/// Which entries to list: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub before: Option<DateTime<Utc>>,
}

impl Store {
    /// One page of the entries that match, newest first, and how many match in all.
    pub async fn search_audit_logs(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> StoreResult<(Vec<AuditEntry>, i64)> {
        if [&filter.action, &filter.resource_type, &filter.resource_id]
            .into_iter()
            .flatten()
            .any(|v| unstorable(v))
        {
            return Ok((Vec::new(), 0));
        }
        let (rows, count): (Vec<AuditRow>, i64) = on!(&self.pool, |pool| {
            let mut list =
                sqlx::QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_logs"));
            push_audit_filter(&mut list, filter);
            list.push(" ORDER BY time DESC, id DESC LIMIT ")
                .push_bind(page.limit)
                .push(" OFFSET ")
                .push_bind(page.offset);
            let rows = list.build_query_as().fetch_all(pool).await?;
            let mut count = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM audit_logs");
            push_audit_filter(&mut count, filter);
            let (count,): (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, count)
        });
        Ok((convert_all(rows)?, count))
    }

    /// Deletes the entries older than `cutoff` (the retention period); returns how many.
    pub async fn delete_audit_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM audit_logs WHERE time < $1")
                .bind(DbTime(cutoff))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// `WHERE` with one bound condition per set field of `filter`.
fn push_audit_filter<'a, DB>(query: &mut sqlx::QueryBuilder<'a, DB>, filter: &'a AuditFilter)
where
    DB: sqlx::Database,
    Uuid: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    DbTime: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    let mut clause = " WHERE ";
    let mut and = |query: &mut sqlx::QueryBuilder<'a, DB>, column: &str| {
        query.push(clause).push(column).push(" ");
        clause = " AND ";
    };
    if let Some(user) = filter.user_id {
        and(query, "user_id =");
        query.push_bind(user.0);
    }
    for (column, value) in [
        ("action =", &filter.action),
        ("resource_type =", &filter.resource_type),
        ("resource_id =", &filter.resource_id),
    ] {
        if let Some(value) = value {
            and(query, column);
            query.push_bind(value.as_str());
        }
    }
    if let Some(from) = filter.from {
        and(query, "time >=");
        query.push_bind(DbTime(from));
    }
    if let Some(before) = filter.before {
        and(query, "time <");
        query.push_bind(DbTime(before));
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
