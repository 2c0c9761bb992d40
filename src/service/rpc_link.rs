//! One request/answer link over a peer's WebSocket, as the server holds it for each workspace
//! agent and each provisioner daemon: requests are written as `{"id", "method", "params"}`,
//! answers come back as `{"id", "result"}` or `{"id", "error"}` in any order, and a caller
//! waits for its own answer by id.
//!
//! The HTTP layer owns the socket and drives a `LinkSession`: it writes what `next_outgoing`
//! gives and hands every text frame it reads to `incoming`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::domain::agent::{AgentOutcome, AgentReply};

/// Requests waiting to be written to one peer's socket.
const OUTBOX: usize = 256;

/// Why a request could not reach its peer, or its answer could not come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// No replica holds a connection to the peer.
    #[error("it is not connected")]
    NotConnected,
    /// The connection ended before the peer answered.
    #[error("its connection ended before it answered")]
    Lost,
    #[error("it did not answer within {0} s")]
    TimedOut(u64),
    /// The replica holding the connection could not be reached or failed.
    #[error("the replica holding its connection failed: {0}")]
    Relay(String),
}

#[derive(Debug)]
pub struct Link {
    session: u64,
    outbox: mpsc::Sender<String>,
    pending: Mutex<HashMap<u64, oneshot::Sender<AgentOutcome>>>,
    next_call: AtomicU64,
    /// Set when the link must end: a newer connection replaced it, or the server stops.
    closed: watch::Sender<bool>,
}

/// A request on the wire.
#[derive(Serialize)]
struct Call<'a, R> {
    id: u64,
    #[serde(flatten)]
    request: &'a R,
}

impl Link {
    /// A new link for connection number `session`, with the session that drives it.
    pub fn open(session: u64) -> (Arc<Link>, LinkSession) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let (closed_tx, closed_rx) = watch::channel(false);
        let link = Arc::new(Link {
            session,
            outbox: tx,
            pending: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(1),
            closed: closed_tx,
        });
        let session = LinkSession {
            link: link.clone(),
            outbox: rx,
            closed: closed_rx,
            on_end: None,
        };
        (link, session)
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// Ends the link: its session stops, and every caller still waiting gets `Lost`.
    pub fn close(&self) {
        let _ = self.closed.send(true);
        self.fail_pending();
    }

    fn fail_pending(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Sends `request` and waits up to `timeout` for its answer.
    pub async fn call<R: Serialize>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<AgentOutcome, LinkError> {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let text = serde_json::to_string(&Call { id, request })
            .map_err(|e| LinkError::Relay(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if self.outbox.send(text).await.is_err() {
            return Err(LinkError::Lost);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(LinkError::Lost),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                Err(LinkError::TimedOut(timeout.as_secs()))
            }
        }
    }
}

/// One live connection, as the socket's handler drives it. Dropping it ends the link and runs
/// the owner's clean-up (`on_end`).
pub struct LinkSession {
    link: Arc<Link>,
    outbox: mpsc::Receiver<String>,
    closed: watch::Receiver<bool>,
    on_end: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for LinkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSession")
            .field("session", &self.link.session)
            .finish_non_exhaustive()
    }
}

impl LinkSession {
    /// Runs `f` when the session ends (its socket closed or it was replaced).
    pub fn on_end(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_end = Some(Box::new(f));
        self
    }

    /// The next request to write to the socket; `None` once the link must end.
    pub async fn next_outgoing(&mut self) -> Option<String> {
        if *self.closed.borrow() {
            return None;
        }
        tokio::select! {
            next = self.outbox.recv() => next,
            _ = self.closed.wait_for(|closed| *closed) => None,
        }
    }

    /// An answer read from the socket.
    pub fn incoming(&self, text: &str) {
        let reply: AgentReply = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable message on a link");
                return;
            }
        };
        let waiter = self
            .link
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&reply.id);
        if let Some(tx) = waiter {
            let _ = tx.send(reply.outcome);
        }
    }
}

impl Drop for LinkSession {
    fn drop(&mut self) {
        self.link.fail_pending();
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}
