//! `coder provisioner start`: an external provisioner daemon. It runs on a host of its own,
//! signs in with a provisioner key, and serves the server's provisioner requests (start, stop,
//! delete a workspace) over a WebSocket with the local provisioner of its host. Workspaces it
//! starts dial the server through the daemon's agent socket, which only forwards bytes: agents
//! speak to the server's URL (with TLS when it is `https`) end to end.

mod forwarder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::client::{SessionError, dial_websocket};
use crate::agent::rpc::serve_calls;
use crate::domain::WorkspaceId;
use crate::domain::agent::AgentOpError;
use crate::domain::provisioner::{
    DAEMON_KEY_HEADER, DAEMON_MAX_MESSAGE, DaemonRequest, DaemonStart, HeldWorkspace,
};
use crate::provisioner::{
    HostProvisioner, LocalProvisionerOptions, ProvisionError, Provisioner, StartSpec,
};
use anyhow::Context;
use base64::Engine;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The server's URL, as this host reaches it.
    pub url: url::Url,
    pub key: String,
    pub name: String,
    pub organization: String,
    pub data_dir: PathBuf,
    pub uid_range: std::ops::RangeInclusive<u32>,
    pub allow_unsandboxed: bool,
    /// The `coder` binary agents run from.
    pub agent_binary: PathBuf,
    /// The Docker engine for container workspaces on this host.
    pub docker_host: String,
}

/// Runs until the process is stopped; returns only when it cannot serve at all.
pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let id = crate::provisioner::provisioner_id(&config.data_dir).with_context(|| {
        format!(
            "cannot keep this daemon's id in {}",
            config.data_dir.display()
        )
    })?;
    let socket = config.data_dir.join("agent").join("agent.sock");
    let forwarding = forwarder::start(&socket, &config.url)?;
    let provisioner = Arc::new(
        HostProvisioner::new(
            LocalProvisionerOptions {
                data_dir: config.data_dir.clone(),
                allow_unsandboxed: config.allow_unsandboxed,
                agent_binary: config.agent_binary.clone(),
                agent_socket: socket,
                uid_range: config.uid_range.clone(),
                agent_url: Some(config.url.clone()),
            },
            &config.docker_host,
            &id,
        )
        .await,
    );
    if let Some(why) = provisioner.unavailable() {
        anyhow::bail!("this host cannot run workspaces: {why}");
    }
    let http = reqwest::Client::builder()
        .http1_only()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("coder-provisionerd/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut serve_url = config.url.join(&format!(
        "api/v2/organizations/{}/provisionerdaemons/serve",
        config.organization
    ))?;
    serve_url
        .query_pairs_mut()
        .append_pair("id", &id)
        .append_pair("name", &config.name)
        .append_pair("version", env!("CARGO_PKG_VERSION"));
    tracing::info!(url = %config.url, name = %config.name, %id, "provisioner daemon starting");
    let mut backoff = Duration::from_millis(200);
    loop {
        let request = http
            .get(serve_url.clone())
            .header(DAEMON_KEY_HEADER, &config.key);
        match dial_websocket(request, DAEMON_MAX_MESSAGE).await {
            Ok(socket) => {
                tracing::info!("connected to the server; serving provisioner jobs");
                backoff = Duration::from_millis(200);
                let provisioner = provisioner.clone();
                let reason = serve_calls(socket, move |request: DaemonRequest| {
                    let provisioner = provisioner.clone();
                    async move { handle(&provisioner, request).await }
                })
                .await;
                tracing::warn!(reason = %reason, "disconnected from the server; reconnecting");
            }
            Err(SessionError::Refused(why)) => {
                tracing::warn!(reason = %why, "the server refused this daemon; retrying");
                backoff = MAX_BACKOFF;
            }
            Err(SessionError::Unreachable(why)) => {
                tracing::warn!(reason = %why, "the server is unreachable; retrying");
            }
        }
        if forwarding.is_finished() {
            anyhow::bail!("the agent socket stopped accepting connections");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn op_error(e: ProvisionError) -> AgentOpError {
    match e {
        ProvisionError::Invalid(m) => AgentOpError::Invalid(m),
        ProvisionError::Unavailable(m) => AgentOpError::Busy(m),
        ProvisionError::Internal(m) => AgentOpError::Internal(m),
    }
}

async fn handle(
    provisioner: &HostProvisioner,
    request: DaemonRequest,
) -> Result<serde_json::Value, AgentOpError> {
    match request {
        DaemonRequest::Start(start) => {
            let DaemonStart {
                workspace_id,
                workspace_name,
                owner_name,
                archive,
                agent_token,
                limits,
                kind,
                docker,
            } = *start;
            let archive = base64::engine::general_purpose::STANDARD
                .decode(archive)
                .map_err(|e| {
                    AgentOpError::Invalid(format!("the template archive is not base64: {e}"))
                })?;
            tracing::info!(workspace = %workspace_id, "starting a workspace");
            let notes = provisioner
                .start(StartSpec {
                    workspace_id: WorkspaceId(workspace_id),
                    workspace_name,
                    owner_name,
                    archive: Arc::new(archive),
                    agent_token,
                    limits,
                    kind,
                    docker,
                })
                .await
                .map_err(op_error)?;
            serde_json::to_value(notes).map_err(|e| AgentOpError::internal("cannot encode", e))
        }
        DaemonRequest::Stop { workspace_id } => {
            tracing::info!(workspace = %workspace_id, "stopping a workspace");
            provisioner
                .stop(WorkspaceId(workspace_id))
                .await
                .map_err(op_error)?;
            Ok(serde_json::Value::Null)
        }
        DaemonRequest::Delete { workspace_id } => {
            tracing::info!(workspace = %workspace_id, "deleting a workspace");
            provisioner
                .delete(WorkspaceId(workspace_id))
                .await
                .map_err(op_error)?;
            Ok(serde_json::Value::Null)
        }
        DaemonRequest::Inventory => {
            let held: Vec<HeldWorkspace> = provisioner
                .inventory()
                .await
                .map_err(op_error)?
                .into_iter()
                .map(|h| HeldWorkspace {
                    workspace_id: h.workspace.0,
                    running: h.running,
                })
                .collect();
            serde_json::to_value(held).map_err(|e| AgentOpError::internal("cannot encode", e))
        }
    }
}
