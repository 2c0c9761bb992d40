//! The agent part of the store contract: agent tokens, agent connections and replicas.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{AgentConnection, AgentId, Replica, ReplicaId, WorkspaceAgent, WorkspaceId};

#[async_trait]
pub trait AgentStore: Send + Sync {
    // Agent tokens.
    /// Stores the SHA-256 of the agent's token.
    async fn insert_agent_token(
        &self,
        agent: AgentId,
        hashed_token: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The agent whose token hashes to `hashed_token`, if its token has not been revoked.
    async fn get_agent_by_token(&self, hashed_token: &[u8]) -> StoreResult<Option<WorkspaceAgent>>;
    /// Revokes the tokens of every agent of the workspace; returns how many there were.
    async fn delete_workspace_agent_tokens(&self, workspace: WorkspaceId) -> StoreResult<u64>;

    // Agent connections.
    /// Records that `replica` now holds the agent's connection.
    async fn mark_agent_connected(
        &self,
        agent: AgentId,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records the end of the agent's connection, if `replica` still holds it (a newer
    /// connection on another replica is left alone).
    async fn mark_agent_disconnected(
        &self,
        agent: AgentId,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Refreshes `last_connected_at` of every connection `replica` holds.
    async fn touch_agent_connections(
        &self,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    async fn get_agent_connection(&self, agent: AgentId) -> StoreResult<Option<AgentConnection>>;

    // Replicas.
    async fn insert_replica(&self, replica: Replica) -> StoreResult<()>;
    /// The replica's heartbeat.
    async fn touch_replica(&self, id: ReplicaId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Marks the replica stopped and every connection it held ended.
    async fn stop_replica(&self, id: ReplicaId, now: DateTime<Utc>) -> StoreResult<()>;
    async fn get_replica(&self, id: ReplicaId) -> StoreResult<Option<Replica>>;
    /// Forgets replicas stopped or silent since before `cutoff`.
    async fn delete_replicas_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
}
