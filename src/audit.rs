//! The audit log: who did what to which resource, through which client, from where.
//!
//! Requests stamp an entry and queue it; one writer task per server stores the queue in
//! batches. An MCP tool call used to wait for its own `INSERT`, which was most of what a cheap
//! call cost (docs/benchmarks.md); a batch of a hundred rows costs the database little more
//! than one. The queue is bounded, so a database that falls behind slows requests down instead
//! of dropping entries, and the server flushes it before it stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{AuditEntry, ClientId, UserId};
use crate::store::SharedStore;

/// Entries waiting for the writer before `record` waits for room.
const QUEUE: usize = 4096;
/// The most entries written in one statement (11 bind parameters each, well under the
/// database limits).
const MAX_BATCH: usize = 256;
/// How long the writer waits for more entries after the first of a batch. Under light load
/// each request's entry was a write transaction of its own, and on SQLite every commit makes
/// the other connections drop their page caches and read their pages again (WAL mode): a
/// command's two reads took 19 `pread`s. Entries now go out at most this late, grouped; a
/// flush (a read of the audit log, the server stopping) never waits for it.
const LINGER: Duration = Duration::from_millis(10);
/// How often the writer tries a batch the database refused before it gives up on it.
const ATTEMPTS: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long a batch waits for an unreachable database before it is written entry by entry
/// (and, if the database is still away, logged as lost). Also how long a server stopping
/// during an outage may wait for its last entries.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(30);
const OUTAGE_RETRY_DELAY: Duration = Duration::from_millis(500);

tokio::task_local! {
    /// The client IP of the request being served, set once around each HTTP request (by
    /// `http::routes`), so the use cases that audit need not carry it in every signature.
    static REQUEST_IP: String;
}

/// Runs `work` (one request) with `ip` as the IP its audit entries record.
pub async fn with_request_ip<F: std::future::Future>(ip: String, work: F) -> F::Output {
    REQUEST_IP.scope(ip, work).await
}

/// One auditable action, before it is stamped.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub ip: String,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(
        action: &'static str,
        resource_type: &'static str,
        resource_id: impl ToString,
    ) -> Self {
        Self {
            user_id: None,
            client_id: None,
            action,
            resource_type,
            resource_id: resource_id.to_string(),
            ip: String::new(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn by(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    pub fn client(mut self, client: ClientId) -> Self {
        self.client_id = Some(client);
        self
    }

    pub fn from_ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = ip.into();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

enum Queued {
    Entry(AuditEntry),
    /// Answered once every entry queued before it is written (or given up on).
    Flush(oneshot::Sender<()>),
}

/// Records audit entries through the server's writer task; clones share the task.
#[derive(Debug, Clone)]
pub struct Auditor {
    clock: SharedClock,
    queue: mpsc::Sender<Queued>,
    ids: Arc<IdSequence>,
}

impl Auditor {
    /// Starts the writer task on the current tokio runtime. It ends when the last clone of the
    /// returned `Auditor` is dropped, after writing what is queued.
    pub fn start(store: SharedStore, clock: SharedClock) -> Self {
        let (queue, received) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, received));
        Self {
            clock,
            queue,
            ids: Arc::default(),
        }
    }

    /// Stamps the entry and queues it; waits only while the queue is full. A failed write is
    /// logged by the writer, not returned: the audited action already happened, and failing
    /// the request now would only hide that.
    pub async fn record(&self, event: AuditEvent) {
        let time = self.clock.now();
        let entry = AuditEntry {
            id: self.ids.next(time),
            time,
            user_id: event.user_id,
            client_id: event.client_id,
            action: event.action.to_owned(),
            resource_type: event.resource_type.to_owned(),
            resource_id: event.resource_id,
            ip: if event.ip.is_empty() {
                REQUEST_IP.try_with(Clone::clone).unwrap_or_default()
            } else {
                event.ip
            },
            details: event.details,
        };
        if let Err(mpsc::error::SendError(Queued::Entry(entry))) =
            self.queue.send(Queued::Entry(entry)).await
        {
            tracing::error!(action = %entry.action, "the audit writer has stopped; entry not recorded");
        }
    }

    /// Waits until every entry recorded before this call has been written (or, when the
    /// database refused it even entry by entry, logged as lost): before the server stops, and
    /// before anything reads the log back.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// UUIDv7s (RFC 9562 §5.7) from the entries' times: ids that grow with time keep inserts at
/// the end of the primary key's index, where random ones touched a different page each: the
/// audit writer was 6% of `coder_list_workspaces`' CPU on SQLite, now under 1%
/// (docs/benchmarks.md). Entries stamped with the same time get growing ids too (the counter
/// of RFC 9562 §6.2, method 1), so the log lists them newest first in the order they happened.
#[derive(Debug, Default)]
struct IdSequence(Mutex<uuid::ContextV7>);

impl IdSequence {
    fn next(&self, time: chrono::DateTime<chrono::Utc>) -> Uuid {
        let secs = u64::try_from(time.timestamp()).unwrap_or_default();
        Uuid::new_v7(uuid::Timestamp::from_unix(
            &self.0,
            secs,
            time.timestamp_subsec_nanos(),
        ))
    }
}

/// The writer: takes whatever is queued (up to `MAX_BATCH`), waits up to `LINGER` for more
/// unless a flush is waiting, writes the entries in one statement, and answers the flushes.
/// Under heavy load batches fill without waiting and the cost per entry falls.
async fn write_batches(store: SharedStore, mut received: mpsc::Receiver<Queued>) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while received.recv_many(&mut queued, MAX_BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + LINGER;
        loop {
            for item in queued.drain(..) {
                match item {
                    Queued::Entry(entry) => entries.push(entry),
                    Queued::Flush(done) => flushes.push(done),
                }
            }
            if !flushes.is_empty() || entries.is_empty() || entries.len() >= MAX_BATCH {
                break;
            }
            let room = MAX_BATCH - entries.len();
            match tokio::time::timeout_at(deadline, received.recv_many(&mut queued, room)).await {
                Ok(n) if n > 0 => {}
                // The deadline passed, or every sender is gone: write what there is.
                _ => break,
            }
        }
        if !entries.is_empty() {
            write_batch(&store, &entries).await;
            entries.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write_batch(store: &SharedStore, entries: &[AuditEntry]) {
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    while attempt < ATTEMPTS {
        match store.insert_audit_logs(entries).await {
            Ok(()) => return,
            // An unreachable database is waited out (the queue holds what arrives meanwhile,
            // then slows requests down), so an outage loses no entry.
            Err(err) if err.is_unavailable() && started.elapsed() < OUTAGE_PATIENCE => {
                tracing::debug!(error = %err, entries = entries.len(), "the audit log waits for the database");
                tokio::time::sleep(OUTAGE_RETRY_DELAY).await;
            }
            Err(err) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::warn!(error = %err, entries = entries.len(), attempt, "could not write the audit log; retrying");
                tokio::time::sleep(RETRY_DELAY * attempt).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, entries = entries.len(), "could not write an audit batch; writing its entries one by one");
                break;
            }
        }
    }
    // One entry the database refuses must not take the rest of its batch with it.
    for entry in entries {
        if let Err(err) = store.insert_audit_logs(std::slice::from_ref(entry)).await {
            tracing::error!(error = %err, action = %entry.action, resource = %entry.resource_id, "could not write the audit log; this entry is lost");
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_with_time_and_within_an_instant() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00.000Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let sequence = IdSequence::default();
        let ids: Vec<Uuid> = (0..50)
            .map(|ms| sequence.next(t0 + chrono::Duration::milliseconds(ms)))
            .chain((0..50).map(|_| sequence.next(t0 + chrono::Duration::milliseconds(60))))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(ids[0].get_version_num(), 7);
    }
}
