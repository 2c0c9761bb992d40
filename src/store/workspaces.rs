//! Workspaces and their builds. Lists of workspaces are in `workspace_list.rs`, the agents a
//! build starts in `agents.rs`.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::{corrupt, corrupt_json};
use super::jobs::insert_job_row;
use super::pool::{Tx, on};
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all, unstorable};
use crate::domain::{
    BuildId, JobId, JobStatus, OrganizationId, Page, ParameterValue, ProvisionerJob, TemplateId,
    TemplateVersionId, Transition, UserId, Workspace, WorkspaceBuild, WorkspaceId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertBuildOutcome {
    /// Stored with this build number.
    Created(i64),
    /// Another build is pending or running.
    Busy(BuildId),
    /// The workspace is gone.
    WorkspaceMissing,
}

/// Workspaces.
impl Store {
    /// Stores the workspace with its first build and job; false when the template was deleted
    /// meanwhile. A duplicate name is a `Conflict`.
    pub async fn insert_workspace(
        &self,
        workspace: Workspace,
        build: WorkspaceBuild,
        job: ProvisionerJob,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Locks the template row: see delete_template.
        let template = on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE templates SET updated_at = updated_at WHERE id = $1 AND NOT deleted",
            )
            .bind(workspace.template_id.0)
            .execute(c)
            .await?
            .rows_affected()
        });
        if template == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO workspaces (id, owner_id, organization_id, template_id, name, \
                 deleted, last_used_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6, $6)",
            )
            .bind(workspace.id.0)
            .bind(workspace.owner_id.0)
            .bind(workspace.organization_id.0)
            .bind(workspace.template_id.0)
            .bind(&workspace.name)
            .bind(DbTime(workspace.created_at))
            .execute(c)
            .await?;
        });
        insert_job_row(&mut tx, &job).await?;
        insert_build_row(&mut tx, &build, 1).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A workspace that is not deleted.
    pub async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Option<Workspace>> {
        let sql =
            format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND NOT deleted");
        let row: Option<WorkspaceRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Workspace::try_from).transpose()
    }

    /// A workspace even after its delete build, for reading its builds.
    pub async fn get_workspace_including_deleted(
        &self,
        id: WorkspaceId,
    ) -> StoreResult<Option<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1");
        let row: Option<WorkspaceRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Workspace::try_from).transpose()
    }

    pub async fn get_workspace_by_owner_and_name(
        &self,
        owner: UserId,
        name: &str,
    ) -> StoreResult<Option<Workspace>> {
        if unstorable(name) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {WORKSPACE_COLUMNS} FROM workspaces \
             WHERE owner_id = $1 AND lower(name) = lower($2) AND NOT deleted"
        );
        let row: Option<WorkspaceRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(owner.0)
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(Workspace::try_from).transpose()
    }

    /// Hides the workspace once its delete build has finished; its builds stay readable.
    pub async fn mark_workspace_deleted(
        &self,
        id: WorkspaceId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE workspaces SET deleted = TRUE, updated_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The provisioner whose host holds the workspace's files, once it has started somewhere.
    pub async fn get_workspace_provisioner(&self, id: WorkspaceId) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on!(&self.pool, |pool| {
            sqlx::query_as("SELECT provisioner_id FROM workspaces WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(p,)| p).filter(|p| !p.is_empty()))
    }

    /// Records the provisioner that built the workspace, so its later builds go there too.
    pub async fn set_workspace_provisioner(
        &self,
        id: WorkspaceId,
        provisioner: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query("UPDATE workspaces SET provisioner_id = $2, updated_at = $3 WHERE id = $1")
                .bind(id.0)
                .bind(provisioner)
                .bind(DbTime(now))
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// Builds.
impl Store {
    /// Stores a build with the next number, unless another build of the workspace is in flight;
    /// the check and the insert are one transaction that locks the workspace row.
    pub async fn insert_workspace_build(
        &self,
        build: WorkspaceBuild,
        job: ProvisionerJob,
    ) -> StoreResult<InsertBuildOutcome> {
        let mut tx = self.pool.begin().await?;
        // Writing first takes the workspace row's lock (Postgres) or the database's write
        // lock (SQLite), so concurrent requests for one workspace queue up here.
        let found = on!(tx.conn(), |c| {
            sqlx::query("UPDATE workspaces SET updated_at = $2 WHERE id = $1 AND NOT deleted")
                .bind(build.workspace_id.0)
                .bind(DbTime(build.created_at))
                .execute(c)
                .await?
                .rows_affected()
        });
        if found == 0 {
            tx.rollback().await?;
            return Ok(InsertBuildOutcome::WorkspaceMissing);
        }
        let latest: Option<(Uuid, i64, String)> = on!(tx.conn(), |c| {
            sqlx::query_as(
                "SELECT b.id, b.build_number, j.status FROM workspace_builds b \
                 JOIN provisioner_jobs j ON j.id = b.job_id \
                 WHERE b.workspace_id = $1 ORDER BY b.build_number DESC LIMIT 1",
            )
            .bind(build.workspace_id.0)
            .fetch_optional(c)
            .await?
        });
        let mut number = 1;
        if let Some((id, n, status)) = latest {
            if JobStatus::parse(&status).is_some_and(|s| s.is_active()) {
                tx.rollback().await?;
                return Ok(InsertBuildOutcome::Busy(BuildId(id)));
            }
            number = n + 1;
        }
        insert_job_row(&mut tx, &job).await?;
        insert_build_row(&mut tx, &build, number).await?;
        tx.commit().await?;
        Ok(InsertBuildOutcome::Created(number))
    }

    pub async fn get_workspace_build(&self, id: BuildId) -> StoreResult<Option<WorkspaceBuild>> {
        let sql = format!("SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE id = $1");
        let row: Option<BuildRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(WorkspaceBuild::try_from).transpose()
    }

    pub async fn get_workspace_build_by_job(
        &self,
        job: JobId,
    ) -> StoreResult<Option<WorkspaceBuild>> {
        let sql = format!("SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE job_id = $1");
        let row: Option<BuildRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(job.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(WorkspaceBuild::try_from).transpose()
    }

    pub async fn get_latest_workspace_build(
        &self,
        workspace: WorkspaceId,
    ) -> StoreResult<Option<WorkspaceBuild>> {
        let sql = format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE workspace_id = $1 \
             ORDER BY build_number DESC LIMIT 1"
        );
        let row: Option<BuildRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(workspace.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(WorkspaceBuild::try_from).transpose()
    }

    /// Newest first.
    pub async fn list_workspace_builds(
        &self,
        workspace: WorkspaceId,
        page: Page,
    ) -> StoreResult<Vec<WorkspaceBuild>> {
        let sql = format!(
            "SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE workspace_id = $1 \
             ORDER BY build_number DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<BuildRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(workspace.0)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }
}

async fn insert_build_row(tx: &mut Tx, build: &WorkspaceBuild, number: i64) -> StoreResult<()> {
    on!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO workspace_builds (id, workspace_id, build_number, transition, \
             template_version_id, job_id, initiator_id, reason, parameters, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(build.id.0)
        .bind(build.workspace_id.0)
        .bind(number)
        .bind(build.transition.as_str())
        .bind(build.template_version_id.0)
        .bind(build.job_id.0)
        .bind(build.initiator_id.0)
        .bind(&build.reason)
        .bind(parameters_json(&build.parameters))
        .bind(DbTime(build.created_at))
        .execute(c)
        .await?;
    });
    Ok(())
}

pub(super) const WORKSPACE_COLUMNS: &str = "id, owner_id, organization_id, template_id, name, \
     deleted, last_used_at, created_at, updated_at";

const BUILD_COLUMNS: &str = "id, workspace_id, build_number, transition, \
     template_version_id, job_id, initiator_id, reason, parameters, created_at, updated_at";

#[derive(FromRow)]
pub(super) struct WorkspaceRow {
    id: Uuid,
    owner_id: Uuid,
    organization_id: Uuid,
    template_id: Uuid,
    name: String,
    deleted: bool,
    last_used_at: DbTime,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;

    fn try_from(r: WorkspaceRow) -> Result<Self, Self::Error> {
        Ok(Workspace {
            id: WorkspaceId(r.id),
            owner_id: UserId(r.owner_id),
            organization_id: OrganizationId(r.organization_id),
            template_id: TemplateId(r.template_id),
            name: r.name,
            deleted: r.deleted,
            last_used_at: r.last_used_at.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
struct BuildRow {
    id: Uuid,
    workspace_id: Uuid,
    build_number: i64,
    transition: String,
    template_version_id: Uuid,
    job_id: Uuid,
    initiator_id: Uuid,
    reason: String,
    parameters: String,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<BuildRow> for WorkspaceBuild {
    type Error = StoreError;

    fn try_from(r: BuildRow) -> Result<Self, Self::Error> {
        let parameters: Vec<ParameterValue> = serde_json::from_str(&r.parameters)
            .map_err(|e| corrupt_json("workspace_builds.parameters", e))?;
        Ok(WorkspaceBuild {
            id: BuildId(r.id),
            workspace_id: WorkspaceId(r.workspace_id),
            build_number: r.build_number,
            transition: Transition::parse(&r.transition)
                .ok_or_else(|| corrupt("workspace_builds.transition", &r.transition))?,
            template_version_id: TemplateVersionId(r.template_version_id),
            job_id: JobId(r.job_id),
            initiator_id: UserId(r.initiator_id),
            reason: r.reason,
            parameters,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

fn parameters_json(values: &[ParameterValue]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}
