//! The agent's side of the API: an agent proves itself with its token, fetches its manifest,
//! reports its startup logs and lifecycle, and opens the link the server's requests travel on.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Services;
use super::agent_links::{AgentLinks, RelayAnswer};
use super::rpc_link::LinkSession;
use crate::domain::agent::{
    AGENT_API_VERSION, AgentManifest, AgentRequest, PatchAgentLogs, ReportLifecycle,
};
use crate::domain::manifest::{Manifest, parameter_env_name};
use crate::domain::{
    AGENT_NAME, AgentId, AgentLifecycle, DomainError, LogLevel, ParameterValue, Workspace,
    WorkspaceAgent,
};
use crate::secret;

/// The most agent log kept per agent, as in Coder.
pub const AGENT_LOG_LIMIT: i64 = 1024 * 1024;
/// Lines one log report may carry.
const MAX_LOG_LINES: usize = 1000;

/// An agent that presented a valid token.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub agent: WorkspaceAgent,
    pub workspace: Workspace,
}

fn revoked() -> DomainError {
    DomainError::Unauthenticated(
        "This agent token is not valid: the workspace was stopped, deleted or rebuilt. The provisioner starts a new agent with a new token on the next start."
            .into(),
    )
}

/// A new agent token, and the hash kept of it.
pub fn new_agent_token() -> (String, Vec<u8>) {
    let token = format!("coder-agent-{}", secret::random_alphanumeric(40));
    let hash = secret::sha256(token.as_bytes());
    (token, hash)
}

/// Every variable a workspace's processes get from the server: the template's, one per
/// parameter, and Coder's `CODER_*` descriptions of the workspace.
pub fn workspace_environment(
    manifest: &Manifest,
    parameters: &[ParameterValue],
    workspace: &Workspace,
    owner_name: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.extend(manifest.agent.env.clone());
    for p in parameters {
        env.insert(parameter_env_name(&p.name), p.value.clone());
    }
    env.insert("CODER".into(), "true".into());
    env.insert("CODER_WORKSPACE_NAME".into(), workspace.name.clone());
    env.insert("CODER_WORKSPACE_OWNER_NAME".into(), owner_name.to_owned());
    env.insert("CODER_WORKSPACE_ID".into(), workspace.id.to_string());
    env.insert("CODER_WORKSPACE_AGENT_NAME".into(), AGENT_NAME.into());
    env
}

impl Services {
    pub(crate) fn agent_links(&self) -> Result<&Arc<AgentLinks>, DomainError> {
        self.agent_links
            .as_ref()
            .ok_or_else(|| DomainError::internal("workspace agents are not served by this process"))
    }

    /// The agent a token belongs to, refused once its workspace stopped or was rebuilt.
    pub async fn authenticate_agent(&self, token: &str) -> Result<AgentIdentity, DomainError> {
        if token.is_empty() {
            return Err(DomainError::Unauthenticated(
                "An agent token is required in the Coder-Session-Token header.".into(),
            ));
        }
        let agent = self
            .store
            .get_agent_by_token(&secret::sha256(token.as_bytes()))
            .await?
            .ok_or_else(revoked)?;
        if agent.lifecycle == AgentLifecycle::Off {
            return Err(revoked());
        }
        let workspace = self
            .store
            .get_workspace(agent.workspace_id)
            .await?
            .ok_or_else(revoked)?;
        Ok(AgentIdentity { agent, workspace })
    }

    /// Refuses an agent speaking another version of the agent contract.
    pub fn check_agent_version(&self, presented: Option<&str>) -> Result<(), DomainError> {
        match presented {
            Some(v) if v == AGENT_API_VERSION => Ok(()),
            other => Err(DomainError::invalid(format!(
                "This server speaks agent API {AGENT_API_VERSION}, and the agent {}. Start the workspace again so that it runs this server's agent.",
                other.map_or("sent no version".to_owned(), |v| format!("speaks {v}"))
            ))),
        }
    }

    pub async fn agent_manifest(&self, me: &AgentIdentity) -> Result<AgentManifest, DomainError> {
        let build = self
            .store
            .get_workspace_build(me.agent.build_id)
            .await?
            .ok_or_else(revoked)?;
        let version = self.load_version(build.template_version_id).await?;
        let manifest = match &version.manifest {
            Some(json) => Manifest::from_json(json).map_err(DomainError::internal)?,
            None => Manifest::default(),
        };
        let owner = self
            .store
            .get_user_by_id(me.workspace.owner_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        Ok(AgentManifest {
            agent_id: me.agent.id.0,
            agent_name: me.agent.name.clone(),
            workspace_id: me.workspace.id.0,
            workspace_name: me.workspace.name.clone(),
            environment_variables: workspace_environment(
                &manifest,
                &build.parameters,
                &me.workspace,
                &owner,
            ),
            owner_name: owner,
            directory: manifest.agent.dir.clone(),
            startup_script: manifest.agent.startup_script.clone(),
            startup_script_timeout_seconds: manifest.agent.startup_timeout_secs,
            api_version: AGENT_API_VERSION.to_owned(),
        })
    }

    /// Stores startup output; past the per-agent cap, lines are dropped after one notice.
    pub async fn agent_patch_logs(
        &self,
        me: &AgentIdentity,
        logs: PatchAgentLogs,
    ) -> Result<(), DomainError> {
        if logs.logs.len() > MAX_LOG_LINES {
            return Err(DomainError::invalid(format!(
                "A log report carries at most {MAX_LOG_LINES} lines; send them in batches."
            )));
        }
        let lines: Vec<(chrono::DateTime<chrono::Utc>, LogLevel, String)> = logs
            .logs
            .into_iter()
            .map(|l| (l.created_at, l.level, l.output.replace('\0', "")))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.store
            .insert_agent_logs(me.agent.id, &lines, AGENT_LOG_LIMIT)
            .await?;
        Ok(())
    }

    pub async fn agent_report_lifecycle(
        &self,
        me: &AgentIdentity,
        report: ReportLifecycle,
    ) -> Result<(), DomainError> {
        let state = match AgentLifecycle::parse(&report.state) {
            Some(
                s @ (AgentLifecycle::Starting
                | AgentLifecycle::Ready
                | AgentLifecycle::StartError
                | AgentLifecycle::StartTimeout),
            ) => s,
            _ => {
                return Err(DomainError::invalid(format!(
                    "Unknown lifecycle state {:?}; an agent reports starting, ready, start_error or start_timeout.",
                    report.state
                )));
            }
        };
        self.store
            .update_agent_lifecycle(me.agent.id, state, self.clock.now())
            .await?;
        Ok(())
    }

    /// Opens the link the server's requests reach this agent on.
    pub async fn open_agent_session(&self, me: &AgentIdentity) -> Result<LinkSession, DomainError> {
        Ok(self.agent_links()?.open(me.agent.id).await?)
    }

    /// Serves a request another replica relayed to the agent connected here. `None`: the
    /// relay secret was wrong (or this deployment does not relay).
    pub async fn relay_agent_call(
        &self,
        presented_secret: &str,
        agent: AgentId,
        request: AgentRequest,
    ) -> Result<Option<RelayAnswer>, DomainError> {
        match self
            .agent_links()?
            .call_relayed(presented_secret, agent, request)
            .await
        {
            Ok(result) => Ok(Some(RelayAnswer::from_result(result))),
            Err(_) => Ok(None),
        }
    }
}
