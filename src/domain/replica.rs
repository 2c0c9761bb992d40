//! Replicas (running servers) and agent connections: which replica holds which agent's
//! connection, and the connection status Coder shows for an agent.

use chrono::{DateTime, Duration, Utc};

use super::id::uuid_id;
use super::{AgentId, AgentLifecycle, WorkspaceAgent};

uuid_id!(
    /// One run of `coder server`: a new id at every start.
    ReplicaId
);

/// A replica as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: ReplicaId,
    pub hostname: String,
    /// The base URL other replicas relay agent requests to.
    pub relay_address: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Its last heartbeat.
    pub updated_at: DateTime<Utc>,
}

/// A replica that has not heartbeated for this long is gone (crashed or cut off).
pub const REPLICA_STALE_AFTER: Duration = Duration::seconds(30);

impl Replica {
    pub fn is_alive(&self, now: DateTime<Utc>) -> bool {
        self.stopped_at.is_none() && now - self.updated_at < REPLICA_STALE_AFTER
    }
}

/// Where and since when an agent is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConnection {
    pub agent_id: AgentId,
    /// The replica holding the connection; `None` once it ended.
    pub replica_id: Option<ReplicaId>,
    pub first_connected_at: DateTime<Utc>,
    /// Refreshed by the holding replica while the connection lives.
    pub last_connected_at: DateTime<Utc>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

/// How often the holding replica refreshes `last_connected_at`.
pub const AGENT_CONNECTION_REFRESH_SECS: u64 = 10;
/// An agent not heard of for this long is `disconnected` (Coder's agent inactive timeout).
pub const AGENT_INACTIVE_AFTER: Duration = Duration::seconds(30);
/// An agent that never connected within this long is `timeout` (Coder's connection timeout).
pub const AGENT_CONNECTION_TIMEOUT: Duration = Duration::seconds(120);

/// Coder's `WorkspaceAgentStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    Connecting,
    Connected,
    Disconnected,
    Timeout,
}

impl AgentStatus {
    /// Coder's rule: never connected is `connecting` until the connection timeout; a connection
    /// that ended, or that no replica has vouched for within the inactive timeout, is
    /// `disconnected`. A stopped workspace's agent is `disconnected`.
    pub fn derive(
        agent: &WorkspaceAgent,
        connection: Option<&AgentConnection>,
        now: DateTime<Utc>,
    ) -> AgentStatus {
        if agent.lifecycle == AgentLifecycle::Off {
            return AgentStatus::Disconnected;
        }
        match connection {
            None if now - agent.created_at > AGENT_CONNECTION_TIMEOUT => AgentStatus::Timeout,
            None => AgentStatus::Connecting,
            Some(c) if c.disconnected_at.is_some() => AgentStatus::Disconnected,
            Some(c) if now - c.last_connected_at > AGENT_INACTIVE_AFTER => {
                AgentStatus::Disconnected
            }
            Some(_) => AgentStatus::Connected,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Connecting => "connecting",
            AgentStatus::Connected => "connected",
            AgentStatus::Disconnected => "disconnected",
            AgentStatus::Timeout => "timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildId, WorkspaceId};
    use chrono::TimeZone;

    fn agent(lifecycle: AgentLifecycle, created_at: DateTime<Utc>) -> WorkspaceAgent {
        WorkspaceAgent {
            id: AgentId::new(),
            workspace_id: WorkspaceId::new(),
            build_id: BuildId::new(),
            name: "main".into(),
            lifecycle,
            directory: String::new(),
            logs_length: 0,
            logs_overflowed: false,
            started_at: None,
            ready_at: None,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn status_follows_coders_rule() {
        let t0 = Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default();
        let a = agent(AgentLifecycle::Ready, t0);
        let s = |c: Option<&AgentConnection>, secs: i64| {
            AgentStatus::derive(&a, c, t0 + Duration::seconds(secs))
        };
        assert_eq!(s(None, 5), AgentStatus::Connecting);
        assert_eq!(s(None, 121), AgentStatus::Timeout);
        let live = AgentConnection {
            agent_id: a.id,
            replica_id: Some(ReplicaId::new()),
            first_connected_at: t0,
            last_connected_at: t0,
            disconnected_at: None,
        };
        assert_eq!(s(Some(&live), 29), AgentStatus::Connected);
        assert_eq!(s(Some(&live), 31), AgentStatus::Disconnected);
        let ended = AgentConnection {
            disconnected_at: Some(t0),
            replica_id: None,
            ..live.clone()
        };
        assert_eq!(s(Some(&ended), 1), AgentStatus::Disconnected);
        let off = agent(AgentLifecycle::Off, t0);
        assert_eq!(
            AgentStatus::derive(&off, Some(&live), t0),
            AgentStatus::Disconnected
        );
    }
}
