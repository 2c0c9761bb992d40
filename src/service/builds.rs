//! Workspace builds: starting, stopping, updating and deleting workspaces, build logs, and
//! canceling a build in flight.

use super::Services;
use super::templates::{LOG_PAGE, require_scope};
use super::views::{ProvisionerJobLogView, WorkspaceBuildView};
use super::workspaces::{build_event, can_access};
use crate::domain::manifest::resolve_parameters;
use crate::domain::{
    BuildId, DomainError, JobStatus, JobType, Page, ParameterValue, Principal, ProvisionerJob,
    Scope, TemplateVersionId, Transition, Workspace, WorkspaceBuild,
};
use crate::store::{InsertBuildOutcome, StoreError};

#[derive(Debug, Clone)]
pub struct CreateBuildRequest {
    pub transition: Transition,
    /// Build with this version instead of the current one (an update).
    pub template_version_id: Option<TemplateVersionId>,
    /// New values; the others keep their previous value.
    pub rich_parameter_values: Option<Vec<ParameterValue>>,
}

fn build_not_found() -> DomainError {
    DomainError::NotFound("Workspace build not found.".into())
}

fn nothing_to_cancel(status: JobStatus) -> DomainError {
    DomainError::invalid(format!(
        "The build has already finished ({}); there is nothing to cancel.",
        status.as_str()
    ))
}

fn busy(workspace: &Workspace, build: BuildId) -> DomainError {
    DomainError::conflict(
        format!(
            "Workspace {} already has a build in progress ({build}). Wait for it to finish (GET /api/v2/workspacebuilds/{build}) or cancel it (PATCH /api/v2/workspacebuilds/{build}/cancel), then try again.",
            workspace.name
        ),
        None,
    )
}

impl Services {
    /// Queues a build; a workspace runs one build at a time (another one in flight is a 409).
    pub async fn create_workspace_build(
        &self,
        actor: &Principal,
        workspace: &str,
        req: CreateBuildRequest,
    ) -> Result<WorkspaceBuildView, DomainError> {
        require_scope(actor, Scope::WorkspacesWrite)?;
        let workspace = self.resolve_workspace(actor, workspace).await?;
        let previous = self
            .store
            .get_latest_workspace_build(workspace.id)
            .await?
            .ok_or_else(|| DomainError::internal("workspace without a build"))?;
        let version_id = req
            .template_version_id
            .unwrap_or(previous.template_version_id);
        let version = self.load_version(version_id).await?;
        if version.template_id != Some(workspace.template_id) {
            return Err(DomainError::invalid(
                "template_version_id must be a version of the workspace's template.",
            ));
        }
        // Stopping and deleting keep the values the workspace runs with.
        let parameters = if req.transition == Transition::Start {
            let manifest = self.imported_manifest(&version).await?;
            resolve_parameters(
                &manifest.parameters,
                Some(&previous.parameters),
                req.rich_parameter_values.as_deref().unwrap_or_default(),
            )
            .map_err(|problems| {
                DomainError::invalid_fields("Invalid parameter values.", problems)
            })?
        } else {
            if req
                .rich_parameter_values
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            {
                return Err(DomainError::invalid(
                    "Parameter values can change only with a start build.",
                ));
            }
            previous.parameters.clone()
        };
        let now = self.clock.now();
        // A workspace whose files live on one provisioner's host is built there again.
        let placed_on = self.store.get_workspace_provisioner(workspace.id).await?;
        let tags = match placed_on.as_deref() {
            Some(id) => version.provisioner_tags.placed_on(id),
            None => version.provisioner_tags.clone(),
        };
        let job = ProvisionerJob::pending(
            workspace.organization_id,
            JobType::WorkspaceBuild,
            version.file_id,
            actor.user.id,
            now,
        )
        .with_tags(tags);
        let mut build = WorkspaceBuild {
            id: BuildId::new(),
            workspace_id: workspace.id,
            build_number: 0,
            transition: req.transition,
            template_version_id: version.id,
            job_id: job.id,
            initiator_id: actor.user.id,
            reason: "initiator".to_owned(),
            parameters,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_workspace_build(build.clone(), job).await {
            Ok(InsertBuildOutcome::Created(number)) => build.build_number = number,
            Ok(InsertBuildOutcome::Busy(active)) => return Err(busy(&workspace, active)),
            Ok(InsertBuildOutcome::WorkspaceMissing) => {
                return Err(DomainError::NotFound("Workspace not found.".into()));
            }
            // Two requests raced for the same build number; the other one won.
            Err(StoreError::Conflict { .. }) => return Err(busy(&workspace, previous.id)),
            Err(other) => return Err(other.into()),
        }
        self.provisioning()?.signals.job_queued();
        let owner = match self.store.get_user_by_id(workspace.owner_id).await? {
            Some(u) => u.username,
            None => String::new(),
        };
        self.audit(
            actor,
            build_event(&workspace, &owner, build.transition, build.build_number),
        )
        .await;
        self.build_view(&workspace, &build).await
    }

    /// A build and its workspace, if the actor may see them.
    pub(super) async fn load_build(
        &self,
        actor: &Principal,
        id: BuildId,
    ) -> Result<(WorkspaceBuild, Workspace), DomainError> {
        let build = self
            .store
            .get_workspace_build(id)
            .await?
            .ok_or_else(build_not_found)?;
        // A deleted workspace's builds stay readable by its owner, so the delete build's result
        // can still be checked.
        let workspace = self
            .store
            .get_workspace_including_deleted(build.workspace_id)
            .await?;
        match workspace {
            Some(ws) if can_access(actor, &ws) => Ok((build, ws)),
            _ => Err(build_not_found()),
        }
    }

    pub async fn get_workspace_build(
        &self,
        actor: &Principal,
        id: BuildId,
    ) -> Result<WorkspaceBuildView, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let (build, workspace) = self.load_build(actor, id).await?;
        self.build_view(&workspace, &build).await
    }

    /// The parameter values a build ran with, as Coder's
    /// `GET /api/v2/workspacebuilds/{workspacebuild}/parameters`.
    pub async fn workspace_build_parameters(
        &self,
        actor: &Principal,
        id: BuildId,
    ) -> Result<Vec<ParameterValue>, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let (build, _) = self.load_build(actor, id).await?;
        Ok(build.parameters)
    }

    /// A workspace's builds, newest first.
    pub async fn list_workspace_builds(
        &self,
        actor: &Principal,
        workspace: &str,
        page: Page,
    ) -> Result<Vec<WorkspaceBuildView>, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let workspace = self.resolve_workspace(actor, workspace).await?;
        let mut views = Vec::new();
        for b in self.store.list_workspace_builds(workspace.id, page).await? {
            views.push(self.build_view(&workspace, &b).await?);
        }
        Ok(views)
    }

    /// Log lines of a build after `after`, and whether the build has finished (so a follower
    /// knows no more lines will come once it has read them all).
    pub async fn workspace_build_logs(
        &self,
        actor: &Principal,
        id: BuildId,
        after: i64,
    ) -> Result<(Vec<ProvisionerJobLogView>, bool), DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let (build, _) = self.load_build(actor, id).await?;
        // Read the status first: lines written before a job finishes are then all visible.
        let finished = self
            .store
            .get_job(build.job_id)
            .await?
            .is_some_and(|j| !j.status.is_active());
        let logs = self
            .store
            .list_job_logs(build.job_id, after, LOG_PAGE)
            .await?;
        let complete = finished && (logs.len() as i64) < LOG_PAGE;
        Ok((
            logs.iter().map(ProvisionerJobLogView::from).collect(),
            complete,
        ))
    }

    /// Cancels a build: a pending one at once, a running one as soon as its runner notices.
    pub async fn cancel_workspace_build(
        &self,
        actor: &Principal,
        id: BuildId,
    ) -> Result<JobStatus, DomainError> {
        require_scope(actor, Scope::WorkspacesWrite)?;
        let (build, _) = self.load_build(actor, id).await?;
        let job = self
            .store
            .get_job(build.job_id)
            .await?
            .ok_or_else(build_not_found)?;
        if !job.status.is_active() {
            return Err(nothing_to_cancel(job.status));
        }
        let status = self
            .store
            .cancel_job(build.job_id, self.clock.now())
            .await?
            .ok_or_else(build_not_found)?;
        match status {
            JobStatus::Canceling => {
                self.provisioning()?.signals.cancel(build.job_id);
                Ok(status)
            }
            JobStatus::Canceled => Ok(status),
            other => Err(nothing_to_cancel(other)),
        }
    }
}
