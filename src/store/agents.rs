//! Workspace agents (one per build), their logs and the apps they serve.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::corrupt;
use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all, qualified};
use crate::domain::{
    AgentConnection, AgentId, AgentLifecycle, AgentLog, AppId, BuildId, LogLevel, ReplicaId,
    WorkspaceAgent, WorkspaceApp, WorkspaceId,
};

impl Store {
    /// Stores the agent with its apps, in the order given, in one transaction.
    pub async fn insert_agent(
        &self,
        agent: WorkspaceAgent,
        apps: Vec<WorkspaceApp>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO workspace_agents (id, workspace_id, build_id, name, lifecycle_state, \
                 directory, logs_length, logs_overflowed, started_at, ready_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0, FALSE, NULL, NULL, $7, $7)",
            )
            .bind(agent.id.0)
            .bind(agent.workspace_id.0)
            .bind(agent.build_id.0)
            .bind(&agent.name)
            .bind(agent.lifecycle.as_str())
            .bind(&agent.directory)
            .bind(DbTime(agent.created_at))
            .execute(c)
            .await?;
        });
        for (position, app) in apps.iter().enumerate() {
            on!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO workspace_apps (id, agent_id, slug, display_name, url, icon, \
                     position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(app.id.0)
                .bind(agent.id.0)
                .bind(&app.slug)
                .bind(&app.display_name)
                .bind(&app.url)
                .bind(&app.icon)
                .bind(position as i64)
                .bind(DbTime(app.created_at))
                .execute(c)
                .await?;
            });
        }
        tx.commit().await
    }

    pub async fn get_agent(&self, id: AgentId) -> StoreResult<Option<WorkspaceAgent>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE id = $1");
        let row: Option<AgentRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(WorkspaceAgent::try_from).transpose()
    }

    pub async fn get_agent_by_build(&self, build: BuildId) -> StoreResult<Option<WorkspaceAgent>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE build_id = $1 \
             ORDER BY created_at LIMIT 1"
        );
        let row: Option<AgentRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(build.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(WorkspaceAgent::try_from).transpose()
    }

    /// The agent of the workspace's latest build if that build is a start whose job succeeded,
    /// the state every command and file operation needs, in one statement: the workspace row
    /// names its latest build's job (migration 0005), so this replaces reading the latest
    /// build, its job and its agent one after another (three hand-offs to sqlx's SQLite
    /// thread, docs/benchmarks.md). `None` says only "not so"; the caller reads the details.
    pub async fn get_running_agent(
        &self,
        workspace: WorkspaceId,
    ) -> StoreResult<Option<WorkspaceAgent>> {
        // Built once: every command runs this.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {} FROM workspaces w \
                 JOIN workspace_builds b ON b.job_id = w.latest_job_id \
                 JOIN provisioner_jobs j ON j.id = b.job_id \
                 JOIN workspace_agents a ON a.build_id = b.id \
                 WHERE w.id = $1 AND b.transition = 'start' AND j.status = 'succeeded' \
                 ORDER BY a.created_at LIMIT 1",
                qualified("a", AGENT_COLUMNS)
            )
        });
        let row: Option<AgentRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&SQL)
                .bind(workspace.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(WorkspaceAgent::try_from).transpose()
    }

    /// Moves the agent to `state`; `starting` stamps `started_at`, the end states `ready_at`.
    pub async fn update_agent_lifecycle(
        &self,
        id: AgentId,
        state: AgentLifecycle,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let started = (state == AgentLifecycle::Starting).then_some(DbTime(now));
        let ended = matches!(
            state,
            AgentLifecycle::Ready | AgentLifecycle::StartError | AgentLifecycle::StartTimeout
        )
        .then_some(DbTime(now));
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE workspace_agents SET lifecycle_state = $2, updated_at = $3, \
                 started_at = COALESCE($4, started_at), ready_at = COALESCE($5, ready_at) \
                 WHERE id = $1",
            )
            .bind(id.0)
            .bind(state.as_str())
            .bind(DbTime(now))
            .bind(started)
            .bind(ended)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Turns every agent of the workspace `off`.
    pub async fn stop_workspace_agents(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE workspace_agents SET lifecycle_state = 'off', updated_at = $2 \
                 WHERE workspace_id = $1 AND lifecycle_state <> 'off'",
            )
            .bind(workspace.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Appends lines while the agent's log stays under `max_bytes`; past it, one notice is
    /// written and the log is marked overflowed. Returns false once overflowed.
    pub async fn insert_agent_logs(
        &self,
        agent: AgentId,
        lines: &[(DateTime<Utc>, LogLevel, String)],
        max_bytes: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Writing first takes the agent row's lock (Postgres) or the database's write
        // lock (SQLite, where the busy timeout applies): a read first let concurrent
        // appends lose each other's length on Postgres, and on SQLite fail with
        // "database is locked" when the read snapshot could not become a writer.
        let state: Option<(i64, bool)> = on!(tx.conn(), |c| {
            sqlx::query_as(
                "UPDATE workspace_agents SET logs_length = logs_length WHERE id = $1 \
                 RETURNING logs_length, logs_overflowed",
            )
            .bind(agent.0)
            .fetch_optional(c)
            .await?
        });
        let Some((mut length, overflowed)) = state else {
            tx.rollback().await?;
            return Ok(false);
        };
        if overflowed {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut now_overflowed = false;
        for (at, level, output) in lines {
            let size = output.len() as i64;
            if length + size > max_bytes {
                let notice = format!(
                    "The agent log reached its limit of {} KiB; later output is not kept.",
                    max_bytes / 1024
                );
                on!(tx.conn(), |c| {
                    sqlx::query(
                        "INSERT INTO workspace_agent_logs (agent_id, created_at, level, output) \
                         VALUES ($1, $2, 'warn', $3)",
                    )
                    .bind(agent.0)
                    .bind(DbTime(*at))
                    .bind(&notice)
                    .execute(c)
                    .await?;
                });
                now_overflowed = true;
                break;
            }
            on!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO workspace_agent_logs (agent_id, created_at, level, output) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(agent.0)
                .bind(DbTime(*at))
                .bind(level.as_str())
                .bind(output)
                .execute(c)
                .await?;
            });
            length += size;
        }
        on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE workspace_agents SET logs_length = $2, logs_overflowed = $3 WHERE id = $1",
            )
            .bind(agent.0)
            .bind(length)
            .bind(now_overflowed)
            .execute(c)
            .await?;
        });
        tx.commit().await?;
        Ok(!now_overflowed)
    }

    /// Lines with an id above `after`, oldest first.
    pub async fn list_agent_logs(
        &self,
        agent: AgentId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<AgentLog>> {
        let sql = format!(
            "SELECT {AGENT_LOG_COLUMNS} FROM workspace_agent_logs \
             WHERE agent_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows: Vec<AgentLogRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(agent.0)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }

    /// The agent's apps, in the order they were stored.
    pub async fn list_agent_apps(&self, agent: AgentId) -> StoreResult<Vec<WorkspaceApp>> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM workspace_apps WHERE agent_id = $1 ORDER BY position"
        );
        let rows: Vec<AppRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(agent.0).fetch_all(pool).await?
        });
        convert_all(rows)
    }
}

/// Agent tokens (a SHA-256 of each, deleted to revoke it) and agent connections (which replica
/// holds each agent's WebSocket, and since when).
impl Store {
    /// Stores the SHA-256 of the agent's token.
    pub async fn insert_agent_token(
        &self,
        agent: AgentId,
        hashed_token: &[u8],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO workspace_agent_tokens (agent_id, hashed_token, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3)",
            )
            .bind(agent.0)
            .bind(hashed_token)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The agent whose token hashes to `hashed_token`, if its token has not been revoked.
    pub async fn get_agent_by_token(
        &self,
        hashed_token: &[u8],
    ) -> StoreResult<Option<WorkspaceAgent>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE id = \
             (SELECT agent_id FROM workspace_agent_tokens WHERE hashed_token = $1)"
        );
        let row: Option<AgentRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(hashed_token)
                .fetch_optional(pool)
                .await?
        });
        row.map(WorkspaceAgent::try_from).transpose()
    }

    /// Revokes the tokens of every agent of the workspace; returns how many there were.
    pub async fn delete_workspace_agent_tokens(&self, workspace: WorkspaceId) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query(
                "DELETE FROM workspace_agent_tokens WHERE agent_id IN \
                 (SELECT id FROM workspace_agents WHERE workspace_id = $1)",
            )
            .bind(workspace.0)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Records that `replica` now holds the agent's connection.
    pub async fn mark_agent_connected(
        &self,
        agent: AgentId,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO workspace_agent_connections (agent_id, replica_id, \
                 first_connected_at, last_connected_at, disconnected_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3, NULL, $3, $3) \
                 ON CONFLICT (agent_id) DO UPDATE SET replica_id = $2, last_connected_at = $3, \
                 disconnected_at = NULL, updated_at = $3",
            )
            .bind(agent.0)
            .bind(replica.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records the end of the agent's connection, if `replica` still holds it (a newer
    /// connection on another replica is left alone).
    pub async fn mark_agent_disconnected(
        &self,
        agent: AgentId,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE workspace_agent_connections SET replica_id = NULL, disconnected_at = $3, \
                 last_connected_at = $3, updated_at = $3 WHERE agent_id = $1 AND replica_id = $2",
            )
            .bind(agent.0)
            .bind(replica.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Refreshes `last_connected_at` of every connection `replica` holds.
    pub async fn touch_agent_connections(
        &self,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE workspace_agent_connections SET last_connected_at = $2, updated_at = $2 \
                 WHERE replica_id = $1",
            )
            .bind(replica.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    pub async fn get_agent_connection(
        &self,
        agent: AgentId,
    ) -> StoreResult<Option<AgentConnection>> {
        let row: Option<ConnectionRow> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "SELECT agent_id, replica_id, first_connected_at, last_connected_at, \
                 disconnected_at FROM workspace_agent_connections WHERE agent_id = $1",
            )
            .bind(agent.0)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| AgentConnection {
            agent_id: AgentId(r.agent_id),
            replica_id: r.replica_id.map(ReplicaId),
            first_connected_at: r.first_connected_at.0,
            last_connected_at: r.last_connected_at.0,
            disconnected_at: r.disconnected_at.map(|t| t.0),
        }))
    }
}

#[derive(FromRow)]
struct ConnectionRow {
    agent_id: Uuid,
    replica_id: Option<Uuid>,
    first_connected_at: DbTime,
    last_connected_at: DbTime,
    disconnected_at: Option<DbTime>,
}

const AGENT_COLUMNS: &str = "id, workspace_id, build_id, name, lifecycle_state, directory, \
     logs_length, logs_overflowed, started_at, ready_at, created_at, updated_at";

const AGENT_LOG_COLUMNS: &str = "id, agent_id, created_at, level, output";

const APP_COLUMNS: &str = "id, agent_id, slug, display_name, url, icon, created_at";

#[derive(FromRow)]
struct AgentRow {
    id: Uuid,
    workspace_id: Uuid,
    build_id: Uuid,
    name: String,
    lifecycle_state: String,
    directory: String,
    logs_length: i64,
    logs_overflowed: bool,
    started_at: Option<DbTime>,
    ready_at: Option<DbTime>,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<AgentRow> for WorkspaceAgent {
    type Error = StoreError;

    fn try_from(r: AgentRow) -> Result<Self, Self::Error> {
        Ok(WorkspaceAgent {
            id: AgentId(r.id),
            workspace_id: WorkspaceId(r.workspace_id),
            build_id: BuildId(r.build_id),
            name: r.name,
            lifecycle: AgentLifecycle::parse(&r.lifecycle_state)
                .ok_or_else(|| corrupt("workspace_agents.lifecycle_state", &r.lifecycle_state))?,
            directory: r.directory,
            logs_length: r.logs_length,
            logs_overflowed: r.logs_overflowed,
            started_at: r.started_at.map(|t| t.0),
            ready_at: r.ready_at.map(|t| t.0),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
struct AgentLogRow {
    id: i64,
    agent_id: Uuid,
    created_at: DbTime,
    level: String,
    output: String,
}

impl TryFrom<AgentLogRow> for AgentLog {
    type Error = StoreError;

    fn try_from(r: AgentLogRow) -> Result<Self, Self::Error> {
        Ok(AgentLog {
            id: r.id,
            agent_id: AgentId(r.agent_id),
            created_at: r.created_at.0,
            level: LogLevel::parse(&r.level)
                .ok_or_else(|| corrupt("workspace_agent_logs.level", &r.level))?,
            output: r.output,
        })
    }
}

#[derive(FromRow)]
struct AppRow {
    id: Uuid,
    agent_id: Uuid,
    slug: String,
    display_name: String,
    url: String,
    icon: String,
    created_at: DbTime,
}

impl TryFrom<AppRow> for WorkspaceApp {
    type Error = StoreError;

    fn try_from(r: AppRow) -> Result<Self, Self::Error> {
        Ok(WorkspaceApp {
            id: AppId(r.id),
            agent_id: AgentId(r.agent_id),
            slug: r.slug,
            display_name: r.display_name,
            url: r.url,
            icon: r.icon,
            created_at: r.created_at.0,
        })
    }
}
