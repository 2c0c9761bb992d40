//! The embedded default: one SQLite file in the data directory, WAL mode, migrations applied on open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::agent_queries::impl_agent_store;
use super::oauth_queries::impl_oauth_store;
use super::queries::impl_shared_store;
use super::workspace_queries::impl_workspace_store;

/// How long a writer waits for the lock before giving up, so concurrent requests queue instead
/// of failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl super::Backend for SqliteStore {
    type Db = Sqlite;
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // sqlx pings every connection it hands out by default: a round trip to the
            // connection's worker thread per query. A database file cannot hang up, so the
            // ping only costs (a third of a one-query request's CPU).
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate the SQLite database {}", path.display()))?;
        Ok(Self { pool })
    }
}

/// A page of workspace summaries (see `impl_workspace_store!`). UUIDs are 16-byte blobs in
/// SQLite; `||` and `group_concat` copy a blob's bytes as they are (as text, in this UTF-8
/// database), and the cast makes the result a blob again. `hex()` on each id instead was
/// about 40% of the query.
const SUMMARY_PAGE_SQL: &str = "json_group_array(json_array(name, owner_name, template_name, \
     template_display_name, template_icon, transition, job_status)), \
     CAST(COALESCE(group_concat(id || template_id || active_version_id || template_version_id, \
     ''), '') AS BLOB)";

/// Workspace list order (`impl_workspace_store!`): SQLite's `lower()` and its default BINARY
/// collation already compare ASCII names byte by byte.
const LIST_ORDER_SQL: &str = "lower(w.name), w.id";

impl_shared_store!(SqliteStore, "sqlite");
impl_oauth_store!(SqliteStore);
impl_agent_store!(SqliteStore);
impl_workspace_store!(SqliteStore, CLAIM_JOB_SQL, SUMMARY_PAGE_SQL, LIST_ORDER_SQL);

/// SQLite has no row locks; its single writer makes this one statement atomic.
const CLAIM_JOB_SQL: &str = "UPDATE provisioner_jobs SET status = 'running', worker_id = $1, \
     started_at = $2, updated_at = $2, heartbeat_at = $2 \
     WHERE status = 'pending' AND id = (SELECT id FROM provisioner_jobs WHERE status = 'pending' \
     ORDER BY created_at, id LIMIT 1)";
