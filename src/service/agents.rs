//! Workspace agents: running commands, file operations, agent logs and apps. The agent is named
//! by its id or by its workspace (`[owner/]name`), so REST and MCP tools share these calls.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::Services;
use super::agent_links::LinkError;
use super::templates::{LOG_PAGE, require_scope};
use super::views::{ExecResultView, WorkspaceAgentLogView, WorkspaceAgentView, WorkspaceAppView};
use super::workspaces::{can_access, workspace_not_found};
use crate::domain::agent::{
    AgentOpError, AgentOutcome, AgentRequest, DirListing, EditResult, ExecOutput, ExecRequest,
    FileContent, FileEdits, ProcessInfo, ProcessOutput,
};
use crate::domain::{
    AgentId, DomainError, JobStatus, Principal, Scope, Transition, Workspace, WorkspaceAgent,
    WorkspaceBuild, WorkspaceStatus,
};

/// The longest command line a shell can be given: the kernel refuses a single argument of
/// `MAX_ARG_STRLEN` (32 pages, 131072 bytes, with its NUL) or more with E2BIG.
pub const MAX_COMMAND_BYTES: usize = 131_071;
/// How long a caller should wait before retrying a request for an agent that is reconnecting.
const RECONNECT_RETRY_SECS: u64 = 5;

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

impl From<AgentOpError> for DomainError {
    fn from(err: AgentOpError) -> Self {
        match err {
            AgentOpError::Invalid(m) => DomainError::invalid(m),
            AgentOpError::NotFound(m) => DomainError::NotFound(m),
            AgentOpError::Busy(m) => DomainError::conflict(m, None),
            AgentOpError::Internal(m) => DomainError::Internal(m),
        }
    }
}

/// Why a command cannot be run as given, before it reaches the workspace.
fn check_command(command: &str) -> Result<(), DomainError> {
    if command.trim().is_empty() {
        return Err(DomainError::invalid("command is required."));
    }
    if command.contains('\0') {
        return Err(DomainError::invalid(
            "command contains a NUL byte (\\0), which no shell command can carry; remove it.",
        ));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(DomainError::invalid(format!(
            "command is {} bytes; the limit is {MAX_COMMAND_BYTES} bytes (the kernel's limit on one argument). Write a longer script to a file (write-file, or coder_workspace_write_file) and run that file.",
            command.len()
        )));
    }
    Ok(())
}

/// An agent the caller may use, with its workspace.
struct Resolved {
    workspace: Workspace,
    agent: WorkspaceAgent,
    /// The workspace's latest build, when finding the agent already read it (by workspace),
    /// so that `running_agent` does not read it a second time.
    latest_build: Option<WorkspaceBuild>,
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
                    Some(workspace) if can_access(actor, &workspace) => Ok(Resolved {
                        workspace,
                        agent,
                        latest_build: None,
                    }),
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
                Ok(Resolved {
                    workspace,
                    agent,
                    latest_build: Some(build),
                })
            }
        }
    }

    /// Like `resolve_agent`, but the agent must be the running workspace's current one.
    async fn running_agent(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<Resolved, DomainError> {
        // Every command and file operation takes this path, so a workspace named by the caller
        // (what agents send) is resolved in two statements instead of four; a workspace that is
        // not running takes the full path below, which says why.
        if let AgentTarget::Workspace(raw) = target {
            let workspace = self.resolve_workspace(actor, raw).await?;
            if let Some(agent) = self.store.get_running_agent(workspace.id).await? {
                return Ok(Resolved {
                    workspace,
                    agent,
                    latest_build: None,
                });
            }
        }
        let mut resolved = self.resolve_agent(actor, target).await?;
        let build = match resolved.latest_build.take() {
            Some(build) => build,
            None => self
                .store
                .get_latest_workspace_build(resolved.workspace.id)
                .await?
                .ok_or_else(workspace_not_found)?,
        };
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
        Ok(resolved)
    }

    /// Sends `request` to the running workspace's agent, wherever it is connected, and decodes
    /// its answer.
    async fn call_agent<T: DeserializeOwned>(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        request: AgentRequest,
    ) -> Result<T, DomainError> {
        let r = self.running_agent(actor, target).await?;
        let links = self.agent_links()?;
        let outcome = match links.call(r.agent.id, request).await {
            Ok(outcome) => outcome,
            Err(err) => return Err(self.unreachable(&r, err).await),
        };
        match outcome {
            AgentOutcome::Result(value) => serde_json::from_value(value).map_err(|e| {
                DomainError::internal(format!("the agent answered in an unexpected shape: {e}"))
            }),
            AgentOutcome::Error(e) => Err(e.into()),
        }
    }

    /// The retryable error for an agent that could not be reached, naming the workspace.
    async fn unreachable(&self, r: &Resolved, err: LinkError) -> DomainError {
        let name = &r.workspace.name;
        let message = match &err {
            LinkError::NotConnected => {
                let seen = match self.store.get_agent_connection(r.agent.id).await {
                    Ok(Some(c)) => {
                        let ago = (self.clock.now() - c.last_connected_at)
                            .num_seconds()
                            .max(0);
                        format!("it was last connected {ago} s ago")
                    }
                    _ => "it has not connected yet".to_owned(),
                };
                format!(
                    "The agent of workspace {name} is not connected ({seen}). Agents reconnect on their own within seconds after a server restart: retry in {RECONNECT_RETRY_SECS} s. If this persists, restart the workspace."
                )
            }
            LinkError::Lost => format!(
                "The connection to the agent of workspace {name} ended before it answered; the agent reconnects on its own. Retry in {RECONNECT_RETRY_SECS} s (a command may or may not have run)."
            ),
            LinkError::TimedOut(secs) => format!(
                "The agent of workspace {name} did not answer within {secs} s. Retry; if it keeps happening, restart the workspace."
            ),
            LinkError::Relay(cause) => {
                tracing::warn!(workspace = %r.workspace.id, error = %cause, "relaying to another replica failed");
                format!(
                    "The server replica holding the connection to the agent of workspace {name} could not be reached. Retry in {RECONNECT_RETRY_SECS} s."
                )
            }
        };
        DomainError::Unavailable {
            message,
            retry_after_secs: RECONNECT_RETRY_SECS,
        }
    }

    pub async fn get_workspace_agent(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<WorkspaceAgentView, DomainError> {
        require_scope(actor, Scope::WorkspacesRead)?;
        let r = self.resolve_agent(actor, target).await?;
        self.agent_view(&r.agent).await
    }

    /// The agent as Coder shows it, with its connection status as of now.
    pub(crate) async fn agent_view(
        &self,
        agent: &WorkspaceAgent,
    ) -> Result<WorkspaceAgentView, DomainError> {
        let apps = self.store.list_agent_apps(agent.id).await?;
        let connection = self.store.get_agent_connection(agent.id).await?;
        Ok(WorkspaceAgentView::new(
            agent,
            connection.as_ref(),
            &apps,
            self.clock.now(),
        ))
    }

    /// Runs a shell command in the workspace.
    pub async fn agent_execute(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        req: ExecuteRequest,
    ) -> Result<ExecResultView, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        check_command(&req.command)?;
        let limits = self.provisioning()?.limits;
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
        let out: ExecOutput = self
            .call_agent(
                actor,
                target,
                AgentRequest::Execute(ExecRequest {
                    command: req.command,
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    background: req.background,
                }),
            )
            .await?;
        Ok(ExecResultView {
            output: out.output,
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            truncated: out.truncated,
            process_id: out.process_id,
        })
    }

    pub async fn agent_list_dir(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        path: &str,
    ) -> Result<DirListing, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        let path = if path.trim().is_empty() {
            crate::domain::WORKSPACE_HOME
        } else {
            path
        };
        self.call_agent(
            actor,
            target,
            AgentRequest::ListDir {
                path: path.to_owned(),
            },
        )
        .await
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
        self.call_agent(
            actor,
            target,
            AgentRequest::ReadFile {
                path: path.to_owned(),
                offset,
                limit,
            },
        )
        .await
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
        self.call_agent(
            actor,
            target,
            AgentRequest::WriteFile {
                path: path.to_owned(),
                content: content.to_owned(),
            },
        )
        .await
    }

    /// Applies search/replace edits to one or several files, all or nothing.
    pub async fn agent_edit_files(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        files: Vec<FileEdits>,
    ) -> Result<Vec<EditResult>, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        self.call_agent(actor, target, AgentRequest::EditFiles { files })
            .await
    }

    /// The workspace's background processes, running and recently ended.
    pub async fn agent_list_processes(
        &self,
        actor: &Principal,
        target: &AgentTarget,
    ) -> Result<Vec<ProcessInfo>, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        self.call_agent(actor, target, AgentRequest::ListProcesses)
            .await
    }

    /// A page of a background process's output.
    pub async fn agent_process_output(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        process_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<ProcessOutput, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        self.call_agent(
            actor,
            target,
            AgentRequest::ProcessOutput {
                process_id: process_id.to_owned(),
                offset,
                limit,
            },
        )
        .await
    }

    /// Sends a signal to a background process's process group.
    pub async fn agent_signal_process(
        &self,
        actor: &Principal,
        target: &AgentTarget,
        process_id: &str,
        signal: &str,
    ) -> Result<ProcessInfo, DomainError> {
        require_scope(actor, Scope::WorkspacesExec)?;
        self.call_agent(
            actor,
            target,
            AgentRequest::SignalProcess {
                process_id: process_id.to_owned(),
                signal: signal.to_owned(),
            },
        )
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_before_they_reach_a_shell() {
        assert!(check_command("echo hi").is_ok());
        assert!(check_command("  ").is_err());
        assert!(check_command("echo a\0b").is_err());
        assert!(check_command(&"x".repeat(MAX_COMMAND_BYTES)).is_ok());
        let long = check_command(&"x".repeat(MAX_COMMAND_BYTES + 1));
        assert!(
            matches!(long, Err(DomainError::Invalid { message, .. }) if message.contains("131071"))
        );
    }
}
