//! Serving the server's requests on the agent's WebSocket: each request runs in a task of its
//! own (a long command does not hold up a file read), and answers go back as they finish.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::processes::ProcessTable;
use super::{Workspace, exec, files};
use crate::domain::agent::{AgentOpError, AgentOutcome, AgentReply, AgentRequest};

/// The server pings every 15 s; this much silence means the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// Serves the agent's requests until the connection ends; returns why it ended.
pub(crate) async fn serve(
    socket: WebSocketStream<reqwest::Upgraded>,
    workspace: Arc<Workspace>,
) -> String {
    serve_calls(socket, move |request: AgentRequest| {
        let workspace = workspace.clone();
        async move { handle(&workspace, request).await }
    })
    .await
}

/// A request on the wire, as `service::rpc_link` writes it.
#[derive(serde::Deserialize)]
struct Call<R> {
    id: u64,
    #[serde(flatten)]
    request: R,
}

/// Answers the server's requests on `socket` with `handle` (the peer side of
/// `service::rpc_link`, for an agent or a provisioner daemon): each request in a task of its
/// own, answers sent as they finish. Returns why the connection ended.
pub async fn serve_calls<R, F, Fut>(socket: WebSocketStream<reqwest::Upgraded>, handle: F) -> String
where
    R: serde::de::DeserializeOwned + Send + 'static,
    F: Fn(R) -> Fut,
    Fut: std::future::Future<Output = Result<Value, AgentOpError>> + Send + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        while let Some(text) = reply_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reason = loop {
        let next = match tokio::time::timeout(SILENCE_LIMIT, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                break format!(
                    "no message from the server for {} s",
                    SILENCE_LIMIT.as_secs()
                );
            }
        };
        let text = match next {
            None | Some(Ok(Message::Close(_))) => {
                break "the server closed the connection".to_owned();
            }
            Some(Err(e)) => break e.to_string(),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let call: Call<R> = match serde_json::from_str(text.as_str()) {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a request this process cannot read");
                continue;
            }
        };
        let answer = handle(call.request);
        let reply_tx = reply_tx.clone();
        tokio::spawn(async move {
            let outcome = match answer.await {
                Ok(value) => AgentOutcome::Result(value),
                Err(e) => AgentOutcome::Error(e),
            };
            let reply = AgentReply {
                id: call.id,
                outcome,
            };
            if let Ok(text) = serde_json::to_string(&reply) {
                let _ = reply_tx.send(text).await;
            }
        });
    };
    drop(reply_tx);
    writer.abort();
    reason
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, AgentOpError> {
    serde_json::to_value(v).map_err(|e| AgentOpError::internal("cannot encode the answer", e))
}

/// Blocking file work runs off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AgentOpError> + Send + 'static,
) -> Result<T, AgentOpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentOpError::internal("a file operation failed", e))?
}

async fn handle(workspace: &Arc<Workspace>, request: AgentRequest) -> Result<Value, AgentOpError> {
    let home = workspace.home.clone();
    match request {
        AgentRequest::Execute(req) if req.background => {
            let info = ProcessTable::start(workspace, &req.command)?;
            to_value(crate::domain::agent::ExecOutput {
                output: format!(
                    "Started in the background as process {} (pid {}). Read its output with coder_workspace_process_output; it runs until it exits, is signalled, or the workspace stops.\n",
                    info.id, info.pid
                ),
                exit_code: 0,
                timed_out: false,
                truncated: false,
                process_id: Some(info.id),
            })
        }
        AgentRequest::Execute(req) => to_value(
            exec::run_foreground(
                workspace,
                &req.command,
                Duration::from_millis(req.timeout_ms),
            )
            .await?,
        ),
        AgentRequest::ListDir { path } => {
            to_value(blocking(move || files::list_dir(&home, &path)).await?)
        }
        AgentRequest::ReadFile {
            path,
            offset,
            limit,
        } => to_value(blocking(move || files::read_file(&home, &path, offset, limit)).await?),
        AgentRequest::WriteFile { path, content } => {
            to_value(blocking(move || files::write_file(&home, &path, content.as_bytes())).await?)
        }
        AgentRequest::EditFiles { files: edits } => {
            to_value(blocking(move || files::edit_files(&home, &edits)).await?)
        }
        AgentRequest::ListProcesses => to_value(workspace.processes.list()),
        AgentRequest::ProcessOutput {
            process_id,
            offset,
            limit,
        } => to_value(workspace.processes.output(&process_id, offset, limit)?),
        AgentRequest::SignalProcess { process_id, signal } => {
            to_value(workspace.processes.signal(&process_id, &signal)?)
        }
    }
}
