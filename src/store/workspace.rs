//! The workspace part of the store contract: organizations, files, templates, provisioner jobs,
//! workspaces, builds and agents.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Page, StoreResult};
use crate::domain::{
    AgentId, AgentLifecycle, AgentLog, BuildId, FileId, JobId, JobLog, JobStatus, LogLevel,
    NewJobLog, Organization, OrganizationId, ProvisionerJob, StoredFile, Template, TemplateId,
    TemplateVersion, TemplateVersionId, UserId, Workspace, WorkspaceAgent, WorkspaceApp,
    WorkspaceBuild, WorkspaceId, WorkspaceStatus,
};

/// Which workspaces a listing returns; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceFilter {
    pub owner_id: Option<UserId>,
    /// Case-insensitive substring of the workspace name.
    pub name: Option<String>,
    /// Case-insensitive template name.
    pub template_name: Option<String>,
    pub template_id: Option<TemplateId>,
    pub status: Option<WorkspaceStatus>,
}

/// Which abandoned jobs to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanScope {
    /// Every running job: the database has a single server (SQLite) that just started.
    All,
    /// Jobs whose worker has not reported since this time (a crashed replica).
    StaleBefore(DateTime<Utc>),
    /// Jobs of one worker that is shutting down.
    Worker(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertBuildOutcome {
    /// Stored with this build number.
    Created(i64),
    /// Another build is pending or running.
    Busy(BuildId),
    /// The workspace is gone.
    WorkspaceMissing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTemplateOutcome {
    Deleted,
    NotFound,
    /// Workspaces still use the template.
    HasWorkspaces(i64),
}

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    // Organizations.
    /// Creates the default organization unless one exists, and returns the one that does.
    async fn ensure_default_organization(&self, org: Organization) -> StoreResult<Organization>;
    async fn get_organization(&self, id: OrganizationId) -> StoreResult<Option<Organization>>;
    async fn get_organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>>;

    // Files.
    /// Stores the file, or returns the one this user already uploaded with the same hash; the
    /// flag is true when a new row was written.
    async fn insert_file(&self, file: StoredFile) -> StoreResult<(StoredFile, bool)>;
    async fn get_file(&self, id: FileId) -> StoreResult<Option<StoredFile>>;

    // Provisioner jobs.
    async fn get_job(&self, id: JobId) -> StoreResult<Option<ProvisionerJob>>;
    /// Takes the oldest pending job for `worker`, atomically, so that no two workers get it.
    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ProvisionerJob>>;
    /// Records that the worker is still on the job; returns the job's status, so that a cancel
    /// request made on any replica is seen.
    async fn heartbeat_job(&self, id: JobId, now: DateTime<Utc>) -> StoreResult<Option<JobStatus>>;
    /// Finishes a running or canceling job; false when it had already been finished (for example
    /// failed by recovery).
    async fn complete_job(
        &self,
        id: JobId,
        status: JobStatus,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Cancels a pending job at once, marks a running one `canceling`; returns the status after.
    async fn cancel_job(&self, id: JobId, now: DateTime<Utc>) -> StoreResult<Option<JobStatus>>;
    /// Fails the running jobs in `scope` (canceling ones become canceled), logs `message` on each,
    /// and marks their agents `start_error`. Returns the jobs it finished.
    async fn fail_orphaned_jobs(
        &self,
        scope: OrphanScope,
        now: DateTime<Utc>,
        message: &str,
    ) -> StoreResult<Vec<JobId>>;
    async fn insert_job_logs(&self, job: JobId, logs: &[NewJobLog]) -> StoreResult<()>;
    /// Lines with an id above `after`, oldest first.
    async fn list_job_logs(&self, job: JobId, after: i64, limit: i64) -> StoreResult<Vec<JobLog>>;

    // Template versions and templates.
    async fn insert_template_version(
        &self,
        version: TemplateVersion,
        job: ProvisionerJob,
    ) -> StoreResult<()>;
    async fn get_template_version(
        &self,
        id: TemplateVersionId,
    ) -> StoreResult<Option<TemplateVersion>>;
    async fn get_template_version_by_job(&self, job: JobId)
    -> StoreResult<Option<TemplateVersion>>;
    async fn get_template_version_by_name(
        &self,
        template: TemplateId,
        name: &str,
    ) -> StoreResult<Option<TemplateVersion>>;
    async fn list_template_versions(
        &self,
        template: TemplateId,
    ) -> StoreResult<Vec<TemplateVersion>>;
    async fn set_template_version_manifest(
        &self,
        id: TemplateVersionId,
        manifest: &str,
        readme: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Stores the template and attaches its active version to it, in one transaction; false (and
    /// nothing written) when that version already belongs to a template.
    async fn insert_template(&self, template: Template) -> StoreResult<bool>;
    async fn get_template(&self, id: TemplateId) -> StoreResult<Option<Template>>;
    async fn get_template_by_name(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<Option<Template>>;
    async fn list_templates(&self, org: Option<OrganizationId>) -> StoreResult<Vec<Template>>;
    async fn set_template_active_version(
        &self,
        id: TemplateId,
        version: TemplateVersionId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes the template unless live workspaces use it, in one transaction.
    async fn delete_template(
        &self,
        id: TemplateId,
        now: DateTime<Utc>,
    ) -> StoreResult<DeleteTemplateOutcome>;

    // Workspaces and builds.
    /// Stores the workspace with its first build and job; false when the template was deleted
    /// meanwhile. A duplicate name is a `Conflict`.
    async fn insert_workspace(
        &self,
        workspace: Workspace,
        build: WorkspaceBuild,
        job: ProvisionerJob,
    ) -> StoreResult<bool>;
    /// A workspace that is not deleted.
    async fn get_workspace(&self, id: WorkspaceId) -> StoreResult<Option<Workspace>>;
    /// A workspace even after its delete build, for reading its builds.
    async fn get_workspace_including_deleted(
        &self,
        id: WorkspaceId,
    ) -> StoreResult<Option<Workspace>>;
    async fn get_workspace_by_owner_and_name(
        &self,
        owner: UserId,
        name: &str,
    ) -> StoreResult<Option<Workspace>>;
    async fn list_workspaces(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
    ) -> StoreResult<(Vec<Workspace>, i64)>;
    /// The same list as `list_workspaces`, as summaries read in one query (for views that do
    /// not need each workspace's build, agent and apps).
    async fn list_workspace_summaries(
        &self,
        filter: &WorkspaceFilter,
        page: Page,
    ) -> StoreResult<(Vec<crate::domain::WorkspaceSummary>, i64)>;
    async fn mark_workspace_deleted(&self, id: WorkspaceId, now: DateTime<Utc>) -> StoreResult<()>;
    /// Stores a build with the next number, unless another build of the workspace is in flight;
    /// the check and the insert are one transaction that locks the workspace row.
    async fn insert_workspace_build(
        &self,
        build: WorkspaceBuild,
        job: ProvisionerJob,
    ) -> StoreResult<InsertBuildOutcome>;
    async fn get_workspace_build(&self, id: BuildId) -> StoreResult<Option<WorkspaceBuild>>;
    async fn get_workspace_build_by_job(&self, job: JobId) -> StoreResult<Option<WorkspaceBuild>>;
    async fn get_latest_workspace_build(
        &self,
        workspace: WorkspaceId,
    ) -> StoreResult<Option<WorkspaceBuild>>;
    /// Newest first.
    async fn list_workspace_builds(
        &self,
        workspace: WorkspaceId,
        page: Page,
    ) -> StoreResult<Vec<WorkspaceBuild>>;

    // Agents.
    async fn insert_agent(&self, agent: WorkspaceAgent, apps: Vec<WorkspaceApp>)
    -> StoreResult<()>;
    async fn get_agent(&self, id: AgentId) -> StoreResult<Option<WorkspaceAgent>>;
    async fn get_agent_by_build(&self, build: BuildId) -> StoreResult<Option<WorkspaceAgent>>;
    /// Moves the agent to `state`; `starting` stamps `started_at`, the end states `ready_at`.
    async fn update_agent_lifecycle(
        &self,
        id: AgentId,
        state: AgentLifecycle,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Turns every agent of the workspace `off`.
    async fn stop_workspace_agents(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Appends lines while the agent's log stays under `max_bytes`; past it, one notice is
    /// written and the log is marked overflowed. Returns false once overflowed.
    async fn insert_agent_logs(
        &self,
        agent: AgentId,
        lines: &[(DateTime<Utc>, LogLevel, String)],
        max_bytes: i64,
    ) -> StoreResult<bool>;
    async fn list_agent_logs(
        &self,
        agent: AgentId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<AgentLog>>;
    async fn list_agent_apps(&self, agent: AgentId) -> StoreResult<Vec<WorkspaceApp>>;
}
