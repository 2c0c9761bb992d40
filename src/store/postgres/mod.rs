//! PostgreSQL, for production and for several replicas sharing one database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};

use super::agent_queries::impl_agent_store;
use super::oauth_queries::impl_oauth_store;
use super::queries::impl_shared_store;
use super::redact_url;
use super::workspace_queries::impl_workspace_store;

/// A pooled connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl super::Backend for PostgresStore {
    type Db = Postgres;
}

impl PostgresStore {
    /// Connects and migrates. The URL may carry `options=-c search_path=...` to use a schema.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid PostgreSQL URL {shown}"))?;
        // One direct connection first: the pool would retry until its timeout and report only
        // "pool timed out", hiding the real cause (refused, bad password, unknown database).
        let probe = tokio::time::timeout(Duration::from_secs(10), options.connect())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: a network round trip per
            // query. Ping only connections that sat idle, where a restart or a dropped link can
            // have gone unnoticed; one in steady use proves itself with every query (HikariCP's
            // `aliveBypassWindowMs` makes the same trade).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_AFTER_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate the PostgreSQL database at {shown}"))?;
        Ok(Self { pool })
    }
}

/// A page of workspace summaries (see `impl_workspace_store!`); an empty page aggregates to
/// NULL, hence the `COALESCE`s.
const SUMMARY_PAGE_SQL: &str = "COALESCE(json_agg(json_build_array(name, owner_name, \
     template_name, template_display_name, template_icon, transition, job_status)), '[]')::text, \
     COALESCE(string_agg(uuid_send(id) || uuid_send(template_id) || uuid_send(active_version_id) \
     || uuid_send(template_version_id), ''::bytea), ''::bytea)";

/// Workspace list order (`impl_workspace_store!`): byte by byte whatever the database's locale,
/// so both backends list alike (a locale collation would, say, ignore hyphens).
const LIST_ORDER_SQL: &str = "lower(w.name) COLLATE \"C\", w.id";

impl_shared_store!(PostgresStore, "postgres");
impl_oauth_store!(PostgresStore);
impl_agent_store!(PostgresStore);
impl_workspace_store!(
    PostgresStore,
    CLAIM_JOB_SQL,
    SUMMARY_PAGE_SQL,
    LIST_ORDER_SQL
);

/// Row locks let several replicas poll one queue: each skips the jobs another is taking.
const CLAIM_JOB_SQL: &str = "UPDATE provisioner_jobs SET status = 'running', worker_id = $1, \
     started_at = $2, updated_at = $2, heartbeat_at = $2 \
     WHERE id = (SELECT id FROM provisioner_jobs WHERE status = 'pending' \
     ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)";
