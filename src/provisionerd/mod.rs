//! `coder provisioner start`: an external provisioner daemon. It runs on a host of its own,
//! signs in with a provisioner key, and serves the server's provisioner requests (start, stop,
//! delete a workspace) over a WebSocket with the local provisioner of its host. Workspaces it
//! starts dial the server through the daemon's agent socket, which only forwards bytes: agents
//! speak to the server's URL (with TLS when it is `https`) end to end.

mod forwarder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::agent::client::{SessionError, dial_websocket};
use crate::domain::WorkspaceId;
use crate::domain::agent::{AgentOpError, AgentOutcome, AgentReply};
use crate::domain::provisioner::{
    DAEMON_KEY_HEADER, DAEMON_MAX_MESSAGE, DaemonRequest, DaemonStart,
};
use crate::provisioner::{
    LocalProvisioner, LocalProvisionerOptions, ProvisionError, Provisioner, StartSpec,
};

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The server pings every 15 s; this much silence means the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

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
        LocalProvisioner::new(LocalProvisionerOptions {
            data_dir: config.data_dir.clone(),
            allow_unsandboxed: config.allow_unsandboxed,
            agent_binary: config.agent_binary.clone(),
            agent_socket: socket,
            uid_range: config.uid_range.clone(),
            agent_url: Some(config.url.clone()),
        })
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
        .append_pair("name", &config.name);
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
                let reason = serve(socket, provisioner.clone()).await;
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

/// Answers the server's requests until the connection ends; returns why it ended.
async fn serve(
    socket: tokio_tungstenite::WebSocketStream<reqwest::Upgraded>,
    provisioner: Arc<LocalProvisioner>,
) -> String {
    let (mut sink, mut stream) = socket.split();
    let (reply_tx, mut reply_rx) = tokio::sync::mpsc::channel::<String>(16);
    let writer = tokio::spawn(async move {
        while let Some(text) = reply_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    let reason = loop {
        let next = match tokio::time::timeout(SILENCE_LIMIT, stream.next()).await {
            Ok(next) => next,
            Err(_) => break "no message from the server for 45 s".to_owned(),
        };
        let text = match next {
            None | Some(Ok(Message::Close(_))) => {
                break "the server closed the connection".to_owned();
            }
            Some(Err(e)) => break e.to_string(),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let call: Call = match serde_json::from_str(text.as_str()) {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a request this daemon cannot read");
                continue;
            }
        };
        let provisioner = provisioner.clone();
        let reply_tx = reply_tx.clone();
        tokio::spawn(async move {
            let outcome = match handle(&provisioner, call.request).await {
                Ok(value) => AgentOutcome::Result(value),
                Err(e) => AgentOutcome::Error(e),
            };
            if let Ok(text) = serde_json::to_string(&AgentReply {
                id: call.id,
                outcome,
            }) {
                let _ = reply_tx.send(text).await;
            }
        });
    };
    drop(reply_tx);
    writer.abort();
    reason
}

#[derive(serde::Deserialize)]
struct Call {
    id: u64,
    #[serde(flatten)]
    request: DaemonRequest,
}

fn op_error(e: ProvisionError) -> AgentOpError {
    match e {
        ProvisionError::Invalid(m) => AgentOpError::Invalid(m),
        ProvisionError::Unavailable(m) => AgentOpError::Busy(m),
        ProvisionError::Internal(m) => AgentOpError::Internal(m),
    }
}

async fn handle(
    provisioner: &LocalProvisioner,
    request: DaemonRequest,
) -> Result<serde_json::Value, AgentOpError> {
    match request {
        DaemonRequest::Start(DaemonStart {
            workspace_id,
            workspace_name,
            owner_name,
            archive,
            agent_token,
            limits,
        }) => {
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
    }
}
