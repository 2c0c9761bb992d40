//! The two backends behind `Store`: their pools, how each is opened, and `on!`, which runs a
//! statement on whichever one the store holds.
//!
//! sqlx's query API is generic over the database only through deep trait bounds, so a query is
//! not a generic function. Instead `on!` writes a statement's execution once and expands it into
//! both arms of a `match`: one SQL text and one list of binds, compiled for each backend, with
//! compile errors pointing at the line at fault. A `match` costs nothing next to a query.
//!
//! Each pool is wrapped in a `Guarded` pool, which is what statements run on: it takes its
//! connections through the database's `Health` (fail fast while the database is down) and
//! counts what fails.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{
    ConnectOptions, Connection, Database, Either, Execute, Executor, PgConnection, Postgres,
    Sqlite, SqliteConnection, Transaction,
};

use super::health::Health;
use super::{StoreError, StoreResult, redact_url};

/// One value for each backend, of which a store holds one: a pool, a transaction, a connection.
#[derive(Debug)]
pub(super) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

pub(super) type Pool = Backend<Guarded<Sqlite>, Guarded<Postgres>>;

/// A pool whose connections are taken through the database's `Health`, and whose failures are
/// counted there.
#[derive(Debug)]
pub(super) struct Guarded<DB: Database> {
    pool: sqlx::Pool<DB>,
    health: Arc<Health>,
}

impl<DB: Database> Guarded<DB> {
    fn new(pool: sqlx::Pool<DB>, health: Arc<Health>) -> Self {
        Self { pool, health }
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Connections open, and of those idle.
    pub(super) fn size_and_idle(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
}

/// Runs statements as `&Pool` does, but takes the connection through `Health` and reports
/// failures to it. A result set is read whole before it is handed on (every query here is
/// bounded by a `LIMIT`), which keeps the connection's borrow inside one future.
macro_rules! guarded_executor {
    ($db:ty) => {
        impl<'p> Executor<'p> for &'p Guarded<$db> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<
                'e,
                Result<Either<<$db as Database>::QueryResult, <$db as Database>::Row>, sqlx::Error>,
            >
            where
                'p: 'e,
                E: 'q + Execute<'q, Self::Database>,
            {
                let (pool, health) = (&self.pool, &self.health);
                stream::once(async move {
                    let mut conn = health.guard(pool.acquire()).await?;
                    let items: Vec<_> = conn.fetch_many(query).collect().await;
                    if let Some(Err(err)) = items.last() {
                        health.observe(err);
                    }
                    Ok::<_, sqlx::Error>(items)
                })
                .flat_map(|read| match read {
                    Ok(items) => stream::iter(items).left_stream(),
                    Err(err) => stream::iter([Err(err)]).right_stream(),
                })
                .boxed()
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, sqlx::Error>>
            where
                'p: 'e,
                E: 'q + Execute<'q, Self::Database>,
            {
                let (pool, health) = (&self.pool, &self.health);
                Box::pin(async move {
                    let mut conn = health.guard(pool.acquire()).await?;
                    let row = conn.fetch_optional(query).await;
                    if let Err(err) = &row {
                        health.observe(err);
                    }
                    row
                })
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [<$db as Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as Database>::Statement<'q>, sqlx::Error>>
            where
                'p: 'e,
            {
                let (pool, health) = (&self.pool, &self.health);
                Box::pin(async move {
                    let mut conn = health.guard(pool.acquire()).await?;
                    conn.prepare_with(sql, parameters).await
                })
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> BoxFuture<'e, Result<sqlx::Describe<$db>, sqlx::Error>>
            where
                'p: 'e,
            {
                let (pool, health) = (&self.pool, &self.health);
                Box::pin(async move {
                    let mut conn = health.guard(pool.acquire()).await?;
                    conn.describe(sql).await
                })
            }
        }
    };
}
guarded_executor!(Sqlite);
guarded_executor!(Postgres);

pub(super) type Tx = Backend<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>;

/// `on!(backend, |c| body)` runs `body` with `c` bound to the value `backend` holds (a pool, a
/// connection): `body` is compiled once per backend, so one text serves both. Both expansions
/// must give the same type, so a body ends in what the caller keeps (a row, `rows_affected()`),
/// not in a backend's own result type.
macro_rules! on {
    ($backend:expr, |$c:ident| $body:expr) => {
        match $backend {
            $crate::store::pool::Backend::Sqlite($c) => $body,
            $crate::store::pool::Backend::Postgres($c) => $body,
        }
    };
}
pub(super) use on;

/// `atomically!(pool, |c| body)` runs `body`, one write that must happen whole or not at all,
/// on `pool` (a `Pool`) in one hand-off to the database. On PostgreSQL `body` is a single
/// statement (data-modifying CTEs), atomic on its own, run on a pooled connection. On SQLite,
/// which has no writable CTEs, `body` runs a whole transaction written as one text,
/// `BEGIN IMMEDIATE; ...; COMMIT`, which sqlx hands to the connection's worker thread at once
/// (`Guarded::<Sqlite>::write_batch`): SQLite's single write lock is then held only while that
/// thread runs the batch. Taken with `Pool::begin` it was held across three round trips to a
/// busy runtime, which serialized every writer behind them (an in-process queue for writers
/// removed the busy handler's sleeps but not that, and gained nothing): one batch made
/// refreshes about 1.5x faster on SQLite (docs/benchmarks.md).
///
/// The caller picks each backend's text from its `Dialect`; the binds are shared. `body` reads
/// the outcome from rows the write returns (`RETURNING`), never from `rows_affected()`: sqlx
/// sums `sqlite3_changes()` over a batch's statements, and after `BEGIN` or `COMMIT` that is
/// still the count of the connection's previous write (https://sqlite.org/c3ref/changes.html).
/// Evaluates to `body`'s value; `?` returns store errors.
macro_rules! atomically {
    ($pool:expr, |$c:ident| $body:expr) => {{
        let pool: &$crate::store::pool::Pool = $pool;
        match pool {
            $crate::store::pool::Backend::Sqlite(g) => {
                g.write_batch(move |$c| Box::pin(async move { Ok::<_, sqlx::Error>($body) }))
                    .await?
            }
            $crate::store::pool::Backend::Postgres($c) => $body,
        }
    }};
}
pub(super) use atomically;

impl Guarded<Sqlite> {
    /// Runs `batch`, a whole transaction sent as one text (`atomically!`), on one connection,
    /// in a task of its own: sqlx's worker stops a batch whose results nobody reads any more,
    /// so a caller that stopped waiting (a client gone mid-request) could otherwise leave the
    /// transaction open, and its write lock taken, on a connection going back to the pool. A
    /// batch stops at the statement that fails; the transaction it opened is then rolled back,
    /// and a connection that cannot roll back (no transaction was open because `BEGIN` itself
    /// failed, or the connection is broken) is closed rather than reused.
    pub(super) async fn write_batch<T, F>(&self, batch: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let (pool, health) = (self.pool.clone(), Arc::clone(&self.health));
        let run = async move {
            let mut conn = health.guard(pool.acquire()).await?;
            let out = batch(&mut conn).await;
            if let Err(err) = &out {
                health.observe(err);
                if conn.execute("ROLLBACK").await.is_err() {
                    conn.close_on_drop();
                }
            }
            out
        };
        match tokio::spawn(run).await {
            Ok(out) => Ok(out?),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutting down cancels the task.
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
        }
    }
}

impl<S, P> Backend<S, P> {
    /// The held value, borrowed: a pool to run a statement on without taking it.
    pub(super) fn by_ref(&self) -> Backend<&S, &P> {
        match self {
            Backend::Sqlite(s) => Backend::Sqlite(s),
            Backend::Postgres(p) => Backend::Postgres(p),
        }
    }
}

impl Pool {
    /// Begins a transaction that may write. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later cannot wait for
    /// the lock when another writer committed in between (its snapshot is stale), and fails at
    /// once with "database is locked" instead of waiting out the busy timeout
    /// (https://www.sqlite.org/lang_transaction.html, "BEGIN IMMEDIATE"; SQLITE_BUSY_SNAPSHOT
    /// in https://www.sqlite.org/rescode.html). Every transaction here writes, so nothing is
    /// serialized that could have run alongside.
    pub(super) async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Backend::Sqlite(g) => {
                Backend::Sqlite(g.health.guard(g.pool.begin_with("BEGIN IMMEDIATE")).await?)
            }
            Backend::Postgres(g) => Backend::Postgres(g.health.guard(g.pool.begin()).await?),
        })
    }
}

impl Tx {
    /// The transaction's connection, to run the next statement on.
    pub(super) fn conn(&mut self) -> Backend<&mut SqliteConnection, &mut PgConnection> {
        match self {
            Backend::Sqlite(tx) => Backend::Sqlite(&mut **tx),
            Backend::Postgres(tx) => Backend::Postgres(&mut **tx),
        }
    }

    pub(super) async fn commit(self) -> StoreResult<()> {
        on!(self, |tx| tx.commit().await?);
        Ok(())
    }

    pub(super) async fn rollback(self) -> StoreResult<()> {
        on!(self, |tx| tx.rollback().await?);
        Ok(())
    }
}

/// How long a SQLite writer waits for the lock before giving up, so concurrent requests queue
/// instead of failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite connections, each a thread of sqlx's with its own statement and page caches and its
/// own allocator heap. Four keep two cores busy while one holds the write lock, and peaked
/// 4-6 MiB lower than eight under 64 MCP connections (docs/benchmarks.md, issue 19).
const SQLITE_CONNECTIONS: u32 = 4;
/// Each SQLite connection's page cache, in KiB (`PRAGMA cache_size`, negative for KiB).
const SQLITE_CACHE_KIB: u32 = 512;

/// The embedded default: opens (creating if needed) one SQLite file in WAL mode and migrates it.
pub(super) async fn open_sqlite(path: &Path) -> anyhow::Result<Pool> {
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
        .foreign_keys(true)
        // SQLite's default page cache is 2,000 KiB a connection, which fills as the audit log
        // grows; what lists and token checks read stays far below this (docs/benchmarks.md,
        // issue 19).
        .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
    let pool = SqlitePoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
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
    Ok(Backend::Sqlite(Guarded::new(pool, Health::new(None))))
}

/// A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// The longest a statement waits for a pooled PostgreSQL connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// For production and for several replicas sharing one database: connects and migrates. The URL
/// may carry `options=-c search_path=...` to use a schema.
pub(super) async fn connect_postgres(url: &str) -> anyhow::Result<Pool> {
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
        // While the database is reachable this bounds only a wait for a busy pool; an
        // unreachable one is found within `health::SLOW_ACQUIRE` and fails every wait at once.
        .acquire_timeout(ACQUIRE_TIMEOUT)
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
        .connect_with(options.clone())
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {shown}"))?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate the PostgreSQL database at {shown}"))?;
    Ok(Backend::Postgres(Guarded::new(
        pool,
        Health::new(Some(options)),
    )))
}
