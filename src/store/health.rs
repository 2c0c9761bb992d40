//! Whether the database can be reached, and connections taken with that in mind: while
//! PostgreSQL is down, every store call fails at once as unavailable (the HTTP layer answers 503
//! with `Retry-After`) instead of waiting out the pool's timeout, and the store notices by
//! itself when the database is back.
//!
//! A pool cannot tell a database that refuses connections from one that is merely busy: sqlx
//! keeps retrying a refused connection until the acquire timeout, which is how a 5 s PostgreSQL
//! restart became 5 s hangs and then 500s. So a wait for a connection that lasts longer than
//! `SLOW_ACQUIRE` starts one direct connection attempt (the probe; at most one per
//! `PROBE_SPACING` while the database answers them, so a busy pool is not made busier). If the probe fails, the
//! database is marked down: every waiter and every later call fails with `Unreachable` until a
//! probe, repeated every `RECOVERY_INTERVAL`, connects again. A statement that fails with a
//! connection error marks it down the same way (the first probe then runs at once, so a single
//! broken connection costs only that statement). SQLite is a file: it is never marked down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

/// A wait for a connection longer than this asks whether the database is reachable at all.
const SLOW_ACQUIRE: Duration = Duration::from_millis(200);
/// The longest a probe waits for a connection (a dropped link answers nothing at all).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a down database is probed.
const RECOVERY_INTERVAL: Duration = Duration::from_millis(500);
/// The least time between two probes of a database that answered the last one.
const PROBE_SPACING: Duration = Duration::from_secs(1);

/// The error a call fails with while the database is known to be down.
#[derive(Debug, thiserror::Error)]
#[error("the database is unreachable (marked down after a failed connection attempt)")]
pub struct Unreachable;

/// Store errors, counted by kind for the metrics.
#[derive(Debug, Default)]
pub struct ErrorCounts {
    /// The database could not be reached, or a connection broke.
    pub unavailable: AtomicU64,
    /// A uniqueness rule was broken (usually a request conflicting with existing data).
    pub conflict: AtomicU64,
    /// Any other failed statement.
    pub other: AtomicU64,
}

/// The database's reachability, shared by the store's pool and its transactions.
#[derive(Debug)]
pub struct Health {
    /// How to reach PostgreSQL directly; `None` for SQLite.
    probe: Option<PgConnectOptions>,
    down: AtomicBool,
    changes: watch::Sender<bool>,
    /// A probe (or the recovery loop) is running.
    probing: AtomicBool,
    /// When the last probe of a reachable database started, in ms since `epoch`: a pool that
    /// is only busy is probed at most once per `PROBE_SPACING`, not on every slow wait.
    last_probe_ms: AtomicU64,
    epoch: std::time::Instant,
    /// Calls waiting for a connection right now.
    waiting: AtomicUsize,
    pub errors: ErrorCounts,
}

impl Health {
    pub fn new(probe: Option<PgConnectOptions>) -> Arc<Health> {
        Arc::new(Health {
            probe,
            down: AtomicBool::new(false),
            changes: watch::Sender::new(false),
            probing: AtomicBool::new(false),
            last_probe_ms: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            waiting: AtomicUsize::new(0),
            errors: ErrorCounts::default(),
        })
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `acquire` (taking a connection or beginning a transaction), failing at once while
    /// the database is down, and as soon as it is found down while waiting.
    pub async fn guard<T>(
        self: &Arc<Self>,
        acquire: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        if self.is_down() {
            return Err(unreachable());
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(self);
        let result = if self.probe.is_none() {
            acquire.await
        } else {
            let mut changes = self.changes.subscribe();
            tokio::pin!(acquire);
            let slow = tokio::time::sleep(SLOW_ACQUIRE);
            tokio::pin!(slow);
            loop {
                tokio::select! {
                    result = &mut acquire => break result,
                    _ = changes.wait_for(|down| *down) => return Err(unreachable()),
                    _ = &mut slow => {
                        // Asked again while the wait lasts; `probe_once` keeps the pace.
                        slow.as_mut().reset(tokio::time::Instant::now() + SLOW_ACQUIRE);
                        self.clone().probe_once();
                    }
                }
            }
        };
        if let Err(err) = &result {
            self.observe(err);
        }
        result
    }

    /// Counts a failed statement and marks the database down when the failure says it cannot
    /// be reached.
    pub fn observe(self: &Arc<Self>, err: &sqlx::Error) {
        match classify(err) {
            Kind::Unavailable => {
                self.errors.unavailable.fetch_add(1, Ordering::Relaxed);
                // A pool that timed out may only be busy (the probe tells those apart while
                // calls wait), and a closed one is the server stopping: neither marks the
                // database down.
                if self.probe.is_some()
                    && !matches!(err, sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut)
                {
                    self.mark_down();
                }
            }
            Kind::Conflict => {
                self.errors.conflict.fetch_add(1, Ordering::Relaxed);
            }
            Kind::Other => {
                self.errors.other.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One probe, unless one is already running; marks the database down if it fails.
    fn probe_once(self: Arc<Self>) {
        let Some(options) = self.probe.clone() else {
            return;
        };
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_probe_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < PROBE_SPACING.as_millis() as u64 {
            return;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_probe_ms.store(now_ms.max(1), Ordering::Relaxed);
        tokio::spawn(async move {
            let reachable = probe(&options).await;
            self.probing.store(false, Ordering::Release);
            if let Err(err) = reachable {
                tracing::debug!(error = %err, "database probe failed");
                self.mark_down();
            }
        });
    }

    fn mark_down(self: &Arc<Self>) {
        if self.down.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(
            "the database is unreachable: requests that need it answer 503 until it is back"
        );
        self.changes.send_replace(true);
        let Some(options) = self.probe.clone() else {
            return;
        };
        let health = self.clone();
        tokio::spawn(async move {
            // The recovery loop is the only prober while the database is down.
            while health.probing.swap(true, Ordering::AcqRel) {
                tokio::time::sleep(RECOVERY_INTERVAL).await;
            }
            let mut attempt = 0u64;
            loop {
                match probe(&options).await {
                    Ok(()) => break,
                    Err(err) => {
                        if attempt.is_multiple_of(20) {
                            tracing::warn!(error = %err, "the database is still unreachable");
                        }
                        attempt += 1;
                        tokio::time::sleep(RECOVERY_INTERVAL).await;
                    }
                }
            }
            health.down.store(false, Ordering::Release);
            health.probing.store(false, Ordering::Release);
            health.changes.send_replace(false);
            tracing::info!("the database is reachable again");
        });
    }
}

/// Keeps `waiting` right when a waiting call is dropped (its request went away).
struct Waiting<'a>(&'a Health);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

fn unreachable() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        Unreachable,
    ))
}

/// One direct connection (not from the pool, whose own retries are what the probe avoids).
async fn probe(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let conn = tokio::time::timeout(PROBE_TIMEOUT, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unavailable,
    Conflict,
    Other,
}

/// What a failure says about the database: unreachable (retry later), a broken uniqueness rule,
/// or anything else.
pub fn classify(err: &sqlx::Error) -> Kind {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Kind::Unavailable,
        sqlx::Error::Database(db) if db.is_unique_violation() => Kind::Conflict,
        // PostgreSQL: class 08 is "connection exception"; 57P01-57P03 are a server shutting
        // down or still starting (PostgreSQL manual, Appendix A, "Error Codes").
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")
            }) =>
        {
            Kind::Unavailable
        }
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_row_errors_are_not() {
        assert_eq!(classify(&unreachable()), Kind::Unavailable);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Kind::Unavailable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), Kind::Other);
    }
}
