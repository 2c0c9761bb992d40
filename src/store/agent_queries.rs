//! The agent SQL both backends share, written once (see `queries.rs` for why this is a macro).

/// Implements `AgentStore` for `$store`, whose `pool` field is a `sqlx::Pool` of that backend.
macro_rules! impl_agent_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AgentStore for $store {
            async fn insert_agent_token(
                &self,
                agent: $crate::domain::AgentId,
                hashed_token: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO workspace_agent_tokens (agent_id, hashed_token, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3)",
                )
                .bind(agent.0)
                .bind(hashed_token)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_agent_by_token(
                &self,
                hashed_token: &[u8],
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceAgent>> {
                use $crate::store::workspace_rows::{AgentRow, AGENT_COLUMNS};
                let sql = format!(
                    "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE id = \
                     (SELECT agent_id FROM workspace_agent_tokens WHERE hashed_token = $1)"
                );
                sqlx::query_as::<_, AgentRow>(&sql)
                    .bind(hashed_token)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceAgent::try_from)
                    .transpose()
            }

            async fn delete_workspace_agent_tokens(
                &self,
                workspace: $crate::domain::WorkspaceId,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM workspace_agent_tokens WHERE agent_id IN \
                     (SELECT id FROM workspace_agents WHERE workspace_id = $1)",
                )
                .bind(workspace.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn mark_agent_connected(
                &self,
                agent: $crate::domain::AgentId,
                replica: $crate::domain::ReplicaId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO workspace_agent_connections (agent_id, replica_id, \
                     first_connected_at, last_connected_at, disconnected_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3, NULL, $3, $3) \
                     ON CONFLICT (agent_id) DO UPDATE SET replica_id = $2, last_connected_at = $3, \
                     disconnected_at = NULL, updated_at = $3",
                )
                .bind(agent.0)
                .bind(replica.0)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn mark_agent_disconnected(
                &self,
                agent: $crate::domain::AgentId,
                replica: $crate::domain::ReplicaId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE workspace_agent_connections SET replica_id = NULL, disconnected_at = $3, \
                     last_connected_at = $3, updated_at = $3 WHERE agent_id = $1 AND replica_id = $2",
                )
                .bind(agent.0)
                .bind(replica.0)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn touch_agent_connections(
                &self,
                replica: $crate::domain::ReplicaId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(
                    "UPDATE workspace_agent_connections SET last_connected_at = $2, updated_at = $2 \
                     WHERE replica_id = $1",
                )
                .bind(replica.0)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn get_agent_connection(
                &self,
                agent: $crate::domain::AgentId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::AgentConnection>> {
                use $crate::store::time::DbTime;
                let row: Option<(uuid::Uuid, Option<uuid::Uuid>, DbTime, DbTime, Option<DbTime>)> =
                    sqlx::query_as(
                        "SELECT agent_id, replica_id, first_connected_at, last_connected_at, \
                         disconnected_at FROM workspace_agent_connections WHERE agent_id = $1",
                    )
                    .bind(agent.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(agent_id, replica_id, first, last, disconnected)| {
                    $crate::domain::AgentConnection {
                        agent_id: $crate::domain::AgentId(agent_id),
                        replica_id: replica_id.map($crate::domain::ReplicaId),
                        first_connected_at: first.0,
                        last_connected_at: last.0,
                        disconnected_at: disconnected.map(|t| t.0),
                    }
                }))
            }

            async fn insert_replica(
                &self,
                replica: $crate::domain::Replica,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                sqlx::query(
                    "INSERT INTO replicas (id, hostname, relay_address, version, started_at, \
                     stopped_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $5, $7)",
                )
                .bind(replica.id.0)
                .bind(&replica.hostname)
                .bind(&replica.relay_address)
                .bind(&replica.version)
                .bind(DbTime(replica.started_at))
                .bind(replica.stopped_at.map(DbTime))
                .bind(DbTime(replica.updated_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn touch_replica(
                &self,
                id: $crate::domain::ReplicaId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE replicas SET updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn stop_replica(
                &self,
                id: $crate::domain::ReplicaId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                sqlx::query("UPDATE replicas SET stopped_at = $2, updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE workspace_agent_connections SET replica_id = NULL, disconnected_at = $2, \
                     updated_at = $2 WHERE replica_id = $1",
                )
                .bind(id.0)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_replica(
                &self,
                id: $crate::domain::ReplicaId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Replica>> {
                use $crate::store::time::DbTime;
                let row: Option<(uuid::Uuid, String, String, String, DbTime, Option<DbTime>, DbTime)> =
                    sqlx::query_as(
                        "SELECT id, hostname, relay_address, version, started_at, stopped_at, \
                         updated_at FROM replicas WHERE id = $1",
                    )
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(
                    |(id, hostname, relay_address, version, started, stopped, updated)| {
                        $crate::domain::Replica {
                            id: $crate::domain::ReplicaId(id),
                            hostname,
                            relay_address,
                            version,
                            started_at: started.0,
                            stopped_at: stopped.map(|t| t.0),
                            updated_at: updated.0,
                        }
                    },
                ))
            }

            async fn delete_replicas_before(
                &self,
                cutoff: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM replicas WHERE updated_at < $1")
                    .bind($crate::store::time::DbTime(cutoff))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_agent_store;
