//! Persistence: `Store`, over SQLite or PostgreSQL, is the only type that holds SQL.
//!
//! Its methods live in one file per aggregate (users, site config, OAuth, audit, templates, jobs,
//! workspaces and builds, agents). Each query is one SQL text that runs on either backend
//! (`pool.rs` says how); the few fragments that differ are named in `dialect.rs`.

mod agents;
mod audit;
mod device_codes;
mod dialect;
mod error;
mod health;
mod jobs;
mod oauth;
mod pool;
mod provisioner_daemons;
mod provisioner_keys;
mod replicas;
mod site_config;
mod templates;
mod time;
mod users;
mod workspace_list;
mod workspaces;

use std::sync::Arc;

pub use audit::AuditFilter;
pub use error::{Constraint, StoreError, StoreResult};
pub use jobs::OrphanScope;
pub use oauth::Redemption;
pub use provisioner_daemons::ListedDaemon;
pub use templates::DeleteTemplateOutcome;
pub use users::UserCredentials;
pub use workspace_list::{WorkspaceFilter, WorkspaceListGenerations};
pub use workspaces::InsertBuildOutcome;

use dialect::Dialect;
use pool::{Backend, Pool, on};

/// Everything the services persist, on one pool of either backend. Both backends pass the same
/// contract tests (`tests/api/store/`).
#[derive(Debug)]
pub struct Store {
    pool: Pool,
}

pub type SharedStore = Arc<Store>;

impl Store {
    /// Which backend this is, for logs: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.dialect().name
    }

    /// Closes every connection; in-flight queries finish first.
    pub async fn close(&self) {
        on!(&self.pool, |pool| pool.close().await);
    }

    /// Whether the database is known to be unreachable right now (it is probed until it is
    /// back); while it is, every call fails at once with `StoreError::Unavailable`.
    pub fn is_down(&self) -> bool {
        on!(&self.pool, |pool| pool.health().is_down())
    }

    /// The pool's connections and the store's failures so far, for the metrics.
    pub fn pool_stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering::Relaxed;
        let ((open, idle), health) = on!(&self.pool, |pool| (
            pool.size_and_idle(),
            pool.health().clone()
        ));
        PoolStats {
            open: u64::from(open),
            idle: idle as u64,
            waiting: health.waiting() as u64,
            unavailable_errors: health.errors.unavailable.load(Relaxed),
            conflict_errors: health.errors.conflict.load(Relaxed),
            other_errors: health.errors.other.load(Relaxed),
        }
    }

    /// Cheap liveness check.
    pub async fn ping(&self) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    fn dialect(&self) -> &'static Dialect {
        match self.pool {
            Backend::Sqlite(_) => &dialect::SQLITE,
            Backend::Postgres(_) => &dialect::POSTGRES,
        }
    }
}

/// A snapshot of the pool and of what failed, for the metrics. Failures are counted where
/// statements run outside a transaction and where transactions begin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (in use or idle).
    pub open: u64,
    pub idle: u64,
    /// Calls waiting for a connection.
    pub waiting: u64,
    pub unavailable_errors: u64,
    pub conflict_errors: u64,
    pub other_errors: u64,
}

/// Where the data lives.
#[derive(Clone)]
pub enum DatabaseTarget {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl DatabaseTarget {
    /// A description safe for logs: the SQLite path, or the Postgres URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseTarget::Sqlite(path) => format!("sqlite {}", path.display()),
            DatabaseTarget::Postgres(url) => format!("postgres {}", redact_url(url)),
        }
    }
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password in a connection URL (and any `password=` query value) with `xxxxx`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("xxxxx"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "xxxxx".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Opens the database, applies pending migrations and returns the store.
pub async fn open(target: &DatabaseTarget) -> anyhow::Result<SharedStore> {
    let pool = match target {
        DatabaseTarget::Sqlite(path) => pool::open_sqlite(path).await?,
        DatabaseTarget::Postgres(url) => pool::connect_postgres(url).await?,
    };
    Ok(Arc::new(Store { pool }))
}

/// PostgreSQL text cannot hold a NUL character, so no stored key contains one. Lookups by such a
/// key find nothing on both backends, instead of failing the query (which would surface as a 500).
fn unstorable(key: &str) -> bool {
    key.contains('\0')
}

/// `columns` (a `*_COLUMNS` list) qualified by the table alias `table`, for a join.
fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `columns` of the table alias `table`, each renamed `{table}_{column}`, for the second table
/// of a join (whose names would clash with the first's).
fn aliased(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c} AS {table}_{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts every row, failing on the first that does not map.
fn convert_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://coder:s3cret@db:5432/coder?sslmode=disable"),
            "postgres://coder:xxxxx@db:5432/coder?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db/coder?user=u&password=p"),
            "postgres://db/coder?user=u&password=xxxxx"
        );
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
    }
}
