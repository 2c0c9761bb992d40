//! Workspace agents: running commands, file operations, agent logs and apps. The agent is named
//! by its id or by its workspace (`[owner/]name`), so REST and MCP tools share these calls.

use std::time::Duration;

use super::Services;
use super::templates::{LOG_PAGE, require_scope};
use super::views::{ExecResultView, WorkspaceAgentLogView, WorkspaceAgentView, WorkspaceAppView};
use super::workspaces::{can_access, workspace_not_found};
use crate::auth::Principal;
use crate::domain::manifest::Manifest;
use crate::domain::{
    AgentId, DomainError, JobStatus, Transition, Workspace, WorkspaceAgent, WorkspaceStatus,
};
use crate::oauth::scopes::Scope;
use crate::provisioner::{
    DirListing, EditResult, ExecRequest, FileContent, FileEdits, ProvisionError, WorkspaceContext,
};

/// Which agent an operation addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTarget {
    Agent(AgentId),
    /// A workspace by id or `[owner/]name[.agent]`: its current agent.
    Workspace(String),
}

#[derive(Debug, Clone, Default)]
pub struct ExecuteRequest {
    pub command: String,
    /// Default 60 s; at most the server's --max-command-timeout.
    pub timeout_ms: Option<u64>,
    pub background: bool,
}

fn agent_not_found() -> DomainError {
    DomainError::NotFound("Workspace agent not found.".into())
}

impl From<ProvisionError> for DomainError {
    fn from(err: ProvisionError) -> Self {
        match err {
            ProvisionError::Invalid(m) => DomainError::invalid(m),
            ProvisionError::NotFound(m) => DomainError::NotFound(m),
            ProvisionError::Busy(m) | ProvisionError::Unavailable(m) => {
                DomainError::conflict(m, None)
            }
            ProvisionError::Internal(m) => DomainError::Internal(m),
        }
    }
}

/// An agent the caller may use, with its workspace.
struct Resolved {
    workspace: Workspace,
    agent: WorkspaceAgent,
}

impl Services {
    /// The agent (and workspace) the target names, if the actor may see it.
    async fn resolve_agent(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<Resolved, DomainError> {
        match target {
            AgentTarget::Agent(id) => {
                let agent = self
                    .store
                    .get_agent(*id)
                    .await?
                    .ok_or_else(agent_not_found)?;
                match self.store.get_workspace(agent.workspace_id).await? {
                    Some(workspace) if can_access(actor, &workspace) => {
                        Ok(Resolved { workspace, agent })
                    }
                    _ => Err(agent_not_found()),
                }
            }
            AgentTarget::Workspace(raw) => {
                let workspace = self.resolve_workspace(actor, raw).await?;
                let build = self
                    .store
                    .get_latest_workspace_build(workspace.id)
                    .await?
                    .ok_or_else(workspace_not_found)?;
                let agent = self.store.get_agent_by_build(build.id).await?.ok_or_else(|| {
                    DomainError::conflict(
                        format!(
                            "Workspace {} has no agent: it is not running. Start it first (POST /api/v2/workspaces/{}/builds with \"transition\": \"start\").",
                            workspace.name, workspace.id
                        ),
                        None,
                    )
                })?;
                Ok(Resolved { workspace, agent })
            }
        }
    }

    /// Like `resolve_agent`, but the agent must be the running workspace's current one; returns
    /// the context its commands run with.
    async fn running_agent(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<(Resolved, WorkspaceContext), DomainError> {
        let resolved = self.resolve_agent(actor, target).await?;
        let build = self
            .store
            .get_latest_workspace_build(resolved.workspace.id)
            .await?
            .ok_or_else(workspace_not_found)?;
        let job = self
            .store
            .get_job(build.job_id)
            .await?
            .ok_or_else(|| DomainError::internal("build without its job"))?;
        let status = WorkspaceStatus::derive(build.transition, job.status);
        let current = build.id == resolved.agent.build_id;
        if !(current && build.transition == Transition::Start && job.status == JobStatus::Succeeded)
        {
            let what = if current {
                format!("is {}", status.as_str())
            } else {
                format!(
                    "has been rebuilt since this agent ran (it is now {})",
                    status.as_str()
                )
            };
            return Err(DomainError::conflict(
                format!(
                    "Workspace {} {what}: commands and files need it running. Start it (POST /api/v2/workspaces/{}/builds with \"transition\": \"start\") and wait for the build to succeed.",
                    resolved.workspace.name, resolved.workspace.id
                ),
                None,
            ));
        }
        let version = self.load_version(build.template_version_id).await?;
        let manifest = match &version.manifest {
            Some(json) => Manifest::from_json(json).map_err(DomainError::internal)?,
            None => Manifest::default(),
        };
        let owner = self
            .store
            .get_user_by_id(resolved.workspace.owner_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        let context = WorkspaceContext::new(
            resolved.workspace.id,
            &resolved.workspace.name,
            &owner,
            &manifest,
            &build.parameters,
        );
        Ok((resolved, context))
    }

    pub async fn get_workspace_agent(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<WorkspaceAgentView, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let r = self.resolve_agent(actor, target).await?;
        let apps = self.store.list_agent_apps(r.agent.id).await?;
        Ok(WorkspaceAgentView::new(&r.agent, &apps))
    }

    /// Runs a shell command in the workspace.
    pub async fn agent_execute(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        req: ExecuteRequest,
    ) -> Result<ExecResultView, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        if req.command.trim().is_empty() {
            return Err(DomainError::invalid("command is required."));
        }
        let provisioning = self.provisioning()?;
        let limits = provisioning.limits;
        let timeout = match req.timeout_ms {
            None | Some(0) => limits.default_timeout,
            Some(ms) => Duration::from_millis(ms),
        };
        if timeout > limits.max_timeout {
            return Err(DomainError::invalid(format!(
                "timeout_ms must be at most {} (this server's --max-command-timeout); for longer work use \"background\": true.",
                limits.max_timeout.as_millis()
            )));
        }
        let (_, context) = self.running_agent(actor, target).await?;
        let out = provisioning
            .provisioner
            .exec(
                &context,
                ExecRequest {
                    command: req.command,
                    timeout,
                    background: req.background,
                },
            )
            .await?;
        Ok(ExecResultView {
            output: out.output,
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            truncated: out.truncated,
        })
    }

    pub async fn agent_list_dir(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        path: &str,
    ) -> Result<DirListing, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        let (r, _) = self.running_agent(actor, target).await?;
        let path = if path.trim().is_empty() {
            crate::domain::WORKSPACE_HOME
        } else {
            path
        };
        Ok(self
            .provisioning()?
            .provisioner
            .list_dir(r.workspace.id, path)
            .await?)
    }

    pub async fn agent_read_file(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<FileContent, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        let (r, _) = self.running_agent(actor, target).await?;
        Ok(self
            .provisioning()?
            .provisioner
            .read_file(r.workspace.id, path, offset, limit)
            .await?)
    }

    /// Writes a file; returns its absolute path inside the workspace.
    pub async fn agent_write_file(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        path: &str,
        content: &str,
    ) -> Result<String, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        let (r, _) = self.running_agent(actor, target).await?;
        Ok(self
            .provisioning()?
            .provisioner
            .write_file(r.workspace.id, path, content.as_bytes().to_vec())
            .await?)
    }

    /// Applies search/replace edits to one or several files, all or nothing.
    pub async fn agent_edit_files(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        files: Vec<FileEdits>,
    ) -> Result<Vec<EditResult>, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        let (r, _) = self.running_agent(actor, target).await?;
        Ok(self
            .provisioning()?
            .provisioner
            .edit_files(r.workspace.id, files)
            .await?)
    }

    /// The startup script's output (and what it left running), after log id `after`.
    pub async fn agent_logs(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        after: i64,
    ) -> Result<Vec<WorkspaceAgentLogView>, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let r = self.resolve_agent(actor, target).await?;
        let logs = self
            .store
            .list_agent_logs(r.agent.id, after, LOG_PAGE)
            .await?;
        Ok(logs.iter().map(WorkspaceAgentLogView::from).collect())
    }

    pub async fn agent_apps(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<Vec<WorkspaceAppView>, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let r = self.resolve_agent(actor, target).await?;
        let apps = self.store.list_agent_apps(r.agent.id).await?;
        Ok(apps.iter().map(WorkspaceAppView::from).collect())
    }
}
