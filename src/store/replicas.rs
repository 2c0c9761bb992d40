//! Replicas: every running `coder server`, its heartbeat, and the address other replicas relay
//! agent requests to.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreResult};
use crate::domain::{Replica, ReplicaId};

impl Store {
    pub async fn insert_replica(&self, replica: Replica) -> StoreResult<()> {
        on!(&self.pool, |pool| {
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
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The replica's heartbeat.
    pub async fn touch_replica(&self, id: ReplicaId, now: DateTime<Utc>) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE replicas SET updated_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Marks the replica stopped, and every agent connection and provisioner daemon it held
    /// gone, in one transaction.
    pub async fn stop_replica(&self, id: ReplicaId, now: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        on!(tx.conn(), |c| {
            sqlx::query("UPDATE replicas SET stopped_at = $2, updated_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(c)
                .await?;
        });
        on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE workspace_agent_connections SET replica_id = NULL, disconnected_at = $2, \
                 updated_at = $2 WHERE replica_id = $1",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .execute(c)
            .await?;
        });
        on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE provisioner_daemons SET replica_id = NULL, last_seen_at = $2 \
                 WHERE replica_id = $1",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .execute(c)
            .await?;
        });
        tx.commit().await
    }

    pub async fn get_replica(&self, id: ReplicaId) -> StoreResult<Option<Replica>> {
        let row: Option<ReplicaRow> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "SELECT id, hostname, relay_address, version, started_at, stopped_at, updated_at \
                 FROM replicas WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| Replica {
            id: ReplicaId(r.id),
            hostname: r.hostname,
            relay_address: r.relay_address,
            version: r.version,
            started_at: r.started_at.0,
            stopped_at: r.stopped_at.map(|t| t.0),
            updated_at: r.updated_at.0,
        }))
    }

    /// Forgets replicas whose last heartbeat is older than `cutoff`.
    pub async fn delete_replicas_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query("DELETE FROM replicas WHERE updated_at < $1")
                .bind(DbTime(cutoff))
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

#[derive(FromRow)]
struct ReplicaRow {
    id: Uuid,
    hostname: String,
    relay_address: String,
    version: String,
    started_at: DbTime,
    stopped_at: Option<DbTime>,
    updated_at: DbTime,
}
