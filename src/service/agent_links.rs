//! Agent links: the agents connected to this replica, and the way to reach any agent from any
//! replica.
//!
//! An agent keeps one WebSocket to one replica. A request for it that lands here is sent on that
//! socket when this replica holds it, and otherwise relayed over HTTP to the replica that does,
//! found through the `workspace_agent_connections` and `replicas` tables that every replica
//! shares in PostgreSQL (DESIGN.md §4). A SQLite deployment has one replica and never relays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::rpc_link::{Link, LinkSession};
use crate::clock::SharedClock;
use crate::domain::agent::{AgentOutcome, AgentRequest};
use crate::domain::{AgentId, ReplicaId};
use crate::secret;
use crate::store::SharedStore;

pub use super::rpc_link::LinkError;

/// The header a relayed request carries the deployment's relay secret in.
pub const RELAY_SECRET_HEADER: &str = "Coder-Relay-Secret";
/// The site-config key of the relay secret every replica shares.
const RELAY_SECRET_KEY: &str = "replica_relay_secret";

/// The relay side: how this replica reaches the others, and proves it is one of them.
#[derive(Debug)]
struct Relay {
    http: reqwest::Client,
    /// The shared secret as this replica last read it from the database.
    secret: Mutex<String>,
}

#[derive(Debug)]
pub struct AgentLinks {
    replica: ReplicaId,
    store: SharedStore,
    clock: SharedClock,
    links: Mutex<HashMap<AgentId, Arc<Link>>>,
    next_session: AtomicU64,
    /// None where there is only one replica (SQLite).
    relay: Option<Relay>,
}

impl AgentLinks {
    /// `relay`: whether other replicas may exist (PostgreSQL) and must be reachable.
    pub async fn new(
        replica: ReplicaId,
        store: SharedStore,
        clock: SharedClock,
        relay: bool,
    ) -> anyhow::Result<Self> {
        let relay = if relay {
            let secret = relay_secret(&store, &clock).await?;
            Some(Relay {
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build()?,
                secret: Mutex::new(secret),
            })
        } else {
            None
        };
        Ok(AgentLinks {
            replica,
            store,
            clock,
            links: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            relay,
        })
    }

    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// How many agents are connected to this replica.
    pub fn connected(&self) -> usize {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Takes over the agent's link (a reconnecting agent replaces its old connection) and
    /// records in the database that this replica holds it. Ending the session records the
    /// disconnection, unless a newer connection of the same agent has replaced it.
    pub async fn open(
        self: &Arc<Self>,
        agent: AgentId,
    ) -> Result<LinkSession, crate::store::StoreError> {
        let (link, session) = Link::open(self.next_session.fetch_add(1, Ordering::Relaxed));
        let previous = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent, link.clone());
        if let Some(old) = previous {
            old.close();
        }
        self.store
            .mark_agent_connected(agent, self.replica, self.clock.now())
            .await?;
        let links = self.clone();
        let number = link.session();
        Ok(session.on_end(move || links.ended(agent, number)))
    }

    fn ended(self: Arc<Self>, agent: AgentId, session: u64) {
        let removed = {
            let mut map = self.links.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&agent) {
                Some(current) if current.session() == session => map.remove(&agent).is_some(),
                _ => false,
            }
        };
        if removed {
            tokio::spawn(async move {
                let now = self.clock.now();
                if let Err(err) = self
                    .store
                    .mark_agent_disconnected(agent, self.replica, now)
                    .await
                {
                    tracing::warn!(%agent, error = %err, "could not record an agent's disconnection");
                }
            });
        }
    }

    /// Sends the request to the agent wherever it is connected and waits for its answer.
    pub async fn call(
        &self,
        agent: AgentId,
        request: AgentRequest,
    ) -> Result<AgentOutcome, LinkError> {
        if let Some(link) = self.local(agent) {
            let timeout = request.reply_timeout();
            return link.call(&request, timeout).await;
        }
        let Some(relay) = &self.relay else {
            return Err(LinkError::NotConnected);
        };
        let holder = match self.store.get_agent_connection(agent).await {
            Ok(Some(c)) => c.replica_id,
            Ok(None) => None,
            Err(e) => return Err(LinkError::Relay(e.to_string())),
        };
        let Some(holder) = holder.filter(|r| *r != self.replica) else {
            return Err(LinkError::NotConnected);
        };
        let replica = match self.store.get_replica(holder).await {
            Ok(Some(r)) if r.is_alive(self.clock.now()) => r,
            Ok(_) => return Err(LinkError::NotConnected),
            Err(e) => return Err(LinkError::Relay(e.to_string())),
        };
        relay.forward(&replica.relay_address, agent, request).await
    }

    /// Serves a request another replica relayed here: only agents connected to this replica.
    pub async fn call_relayed(
        &self,
        presented_secret: &str,
        agent: AgentId,
        request: AgentRequest,
    ) -> Result<Result<AgentOutcome, LinkError>, RelayRefused> {
        let Some(relay) = &self.relay else {
            return Err(RelayRefused);
        };
        if !relay.accepts(presented_secret) {
            // The secret may have been created by another replica after this one read it.
            let current = relay_secret(&self.store, &self.clock)
                .await
                .map_err(|_| RelayRefused)?;
            *relay.secret.lock().unwrap_or_else(|p| p.into_inner()) = current;
            if !relay.accepts(presented_secret) {
                return Err(RelayRefused);
            }
        }
        Ok(match self.local(agent) {
            Some(link) => link.call(&request, request.reply_timeout()).await,
            None => Err(LinkError::NotConnected),
        })
    }

    fn local(&self, agent: AgentId) -> Option<Arc<Link>> {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&agent)
            .cloned()
    }

    /// Ends every link (the server is stopping); agents reconnect to whichever replica runs.
    pub fn close_all(&self) {
        let links: Vec<Arc<Link>> = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, link)| link)
            .collect();
        for link in links {
            link.close();
        }
    }

    /// Refreshes `last_connected_at` of the agents connected here, so the others can tell a
    /// live connection from one whose replica died.
    pub async fn refresh(&self) {
        if let Err(err) = self
            .store
            .touch_agent_connections(self.replica, self.clock.now())
            .await
        {
            tracing::warn!(error = %err, "could not refresh this replica's agent connections");
        }
    }
}

/// A relayed request without the deployment's relay secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayRefused;

impl Relay {
    fn accepts(&self, presented: &str) -> bool {
        let ours = self.secret.lock().unwrap_or_else(|p| p.into_inner());
        secret::constant_time_eq(ours.as_bytes(), presented.as_bytes())
    }

    async fn forward(
        &self,
        replica_url: &str,
        agent: AgentId,
        request: AgentRequest,
    ) -> Result<AgentOutcome, LinkError> {
        let timeout = request.reply_timeout() + Duration::from_secs(5);
        let secret = self
            .secret
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let url = format!("{}{}", replica_url.trim_end_matches('/'), relay_path(agent));
        let response = self
            .http
            .post(&url)
            .header(RELAY_SECRET_HEADER, secret)
            .timeout(timeout)
            .json(&request)
            .send()
            .await
            .map_err(|e| LinkError::Relay(format!("{url}: {e}")))?;
        let status = response.status();
        let body: RelayAnswer = response
            .json()
            .await
            .map_err(|e| LinkError::Relay(format!("{url} answered {status}: {e}")))?;
        body.into_result()
    }
}

/// The path on a replica that relayed agent requests are sent to.
pub fn relay_path(agent: AgentId) -> String {
    format!("/api/v2/replicas/relay/agents/{agent}")
}

/// A relayed request's answer on the wire: the agent's outcome, or why it could not be had.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayAnswer {
    Outcome(AgentOutcome),
    NotConnected,
    Lost,
    TimedOut(u64),
    Failed(String),
}

impl RelayAnswer {
    pub fn from_result(result: Result<AgentOutcome, LinkError>) -> Self {
        match result {
            Ok(outcome) => RelayAnswer::Outcome(outcome),
            Err(LinkError::NotConnected) => RelayAnswer::NotConnected,
            Err(LinkError::Lost) => RelayAnswer::Lost,
            Err(LinkError::TimedOut(s)) => RelayAnswer::TimedOut(s),
            Err(LinkError::Relay(m)) => RelayAnswer::Failed(m),
        }
    }

    fn into_result(self) -> Result<AgentOutcome, LinkError> {
        match self {
            RelayAnswer::Outcome(o) => Ok(o),
            RelayAnswer::NotConnected => Err(LinkError::NotConnected),
            RelayAnswer::Lost => Err(LinkError::Lost),
            RelayAnswer::TimedOut(s) => Err(LinkError::TimedOut(s)),
            RelayAnswer::Failed(m) => Err(LinkError::Relay(m)),
        }
    }
}

/// The deployment's relay secret, created by the first replica that needs it. Two replicas
/// starting at once may both write one; the loser of that race re-reads it when a relayed
/// request fails the check (`call_relayed`).
async fn relay_secret(store: &SharedStore, clock: &SharedClock) -> anyhow::Result<String> {
    if let Some(existing) = store.get_site_config(RELAY_SECRET_KEY).await? {
        return Ok(existing);
    }
    let fresh = secret::random_alphanumeric(48);
    store
        .upsert_site_config(RELAY_SECRET_KEY, &fresh, clock.now())
        .await?;
    Ok(store
        .get_site_config(RELAY_SECRET_KEY)
        .await?
        .unwrap_or(fresh))
}
