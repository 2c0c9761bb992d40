//! Provisioner daemons as every replica sees them: who signed in, with which key and tags,
//! which replica holds its connection, and when that replica last vouched for it.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreResult};
use crate::domain::provisioner::{ProvisionerDaemon, ProvisionerKeyId, ProvisionerTags};
use crate::domain::{OrganizationId, ReplicaId};

/// A daemon as the list shows it: the daemon, its key's name (`None` once the key is deleted)
/// and whether a build runs on its host now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDaemon {
    pub daemon: ProvisionerDaemon,
    pub key_name: Option<String>,
    pub running_job: bool,
}

impl Store {
    /// Records a daemon that just connected (or connected again), held by its replica.
    pub async fn upsert_provisioner_daemon(&self, daemon: &ProvisionerDaemon) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO provisioner_daemons (id, organization_id, key_id, name, version, \
                 tags, replica_id, created_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET organization_id = excluded.organization_id, \
                 key_id = excluded.key_id, name = excluded.name, version = excluded.version, \
                 tags = excluded.tags, replica_id = excluded.replica_id, \
                 last_seen_at = excluded.last_seen_at",
            )
            .bind(&daemon.id)
            .bind(daemon.organization_id.0)
            .bind(daemon.key_id.0)
            .bind(&daemon.name)
            .bind(&daemon.version)
            .bind(daemon.tags.canonical())
            .bind(daemon.replica_id.map(|r| r.0))
            .bind(DbTime(daemon.created_at))
            .bind(DbTime(daemon.last_seen_at))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The replica's heartbeat for the daemons connected to it: each is (again) held by it and
    /// seen now. Setting the replica too heals a release that raced a reconnection.
    pub async fn refresh_provisioner_daemons(
        &self,
        replica: ReplicaId,
        connected: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        for id in connected {
            on!(&self.pool, |pool| {
                sqlx::query(
                    "UPDATE provisioner_daemons SET replica_id = $2, last_seen_at = $3 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(replica.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
            });
        }
        Ok(())
    }

    /// The daemon left `replica` (its connection ended); a newer connection elsewhere keeps it.
    pub async fn release_provisioner_daemon(
        &self,
        id: &str,
        replica: ReplicaId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE provisioner_daemons SET replica_id = NULL, last_seen_at = $3 \
                 WHERE id = $1 AND replica_id = $2",
            )
            .bind(id)
            .bind(replica.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The organization's daemons, by name.
    pub async fn list_provisioner_daemons(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Vec<ListedDaemon>> {
        let rows: Vec<DaemonRow> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "SELECT d.id, d.organization_id, d.key_id, d.name, d.version, d.tags, \
                 d.replica_id, d.created_at, d.last_seen_at, k.name AS key_name, \
                 EXISTS (SELECT 1 FROM provisioner_jobs j \
                   JOIN workspace_builds b ON b.job_id = j.id \
                   JOIN workspaces w ON w.id = b.workspace_id \
                   WHERE j.status IN ('running', 'canceling') \
                   AND w.provisioner_id = d.id) AS running_job \
                 FROM provisioner_daemons d \
                 LEFT JOIN provisioner_keys k ON k.id = d.key_id \
                 WHERE d.organization_id = $1 ORDER BY lower(d.name), d.id",
            )
            .bind(org.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(ListedDaemon::from).collect())
    }
}

#[derive(FromRow)]
struct DaemonRow {
    id: String,
    organization_id: Uuid,
    key_id: Uuid,
    name: String,
    version: String,
    tags: String,
    replica_id: Option<Uuid>,
    created_at: DbTime,
    last_seen_at: DbTime,
    key_name: Option<String>,
    running_job: bool,
}

impl From<DaemonRow> for ListedDaemon {
    fn from(r: DaemonRow) -> Self {
        ListedDaemon {
            daemon: ProvisionerDaemon {
                id: r.id,
                organization_id: OrganizationId(r.organization_id),
                key_id: ProvisionerKeyId(r.key_id),
                name: r.name,
                version: r.version,
                tags: ProvisionerTags::from_stored(&r.tags),
                replica_id: r.replica_id.map(ReplicaId),
                created_at: r.created_at.0,
                last_seen_at: r.last_seen_at.0,
            },
            key_name: r.key_name,
            running_job: r.running_job,
        }
    }
}
