//! `coder exp mcp server`: a stdio MCP server (newline-delimited JSON-RPC, MCP 2025-11-25
//! transports §stdio) for local agents, relaying to the server's remote MCP endpoint so every
//! tool lives once, on the server. Only MCP messages go to stdout; diagnostics go to stderr.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::relay::{self, Relay};
use crate::cli::client::{ClientArgs, api_status, display_url, http_client};

const EXPERIMENT: &str = "mcp-server-http";

/// Coder's `?toolset=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toolset {
    Standard,
    Workspace,
    Chatgpt,
}

impl Toolset {
    pub fn as_str(self) -> &'static str {
        match self {
            Toolset::Standard => "standard",
            Toolset::Workspace => "workspace",
            Toolset::Chatgpt => "chatgpt",
        }
    }
}

#[derive(Debug, Args)]
pub struct McpServerCommand {
    /// Offer only these tools (comma-separated); calls to any other are refused.
    #[arg(
        long,
        env = "CODER_MCP_ALLOWED_TOOLS",
        value_delimiter = ',',
        value_name = "TOOLS"
    )]
    allowed_tools: Vec<String>,

    /// Which of the server's toolsets to serve [default: standard].
    #[arg(long, env = "CODER_MCP_TOOLSET", value_enum)]
    toolset: Option<Toolset>,

    #[command(flatten)]
    client: ClientArgs,
}

impl McpServerCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let server = display_url(client.base());
        // Checked first, so an agent's log shows the one thing to fix instead of failing tools.
        let experiments: Vec<String> = client
            .get("/api/v2/experiments")
            .await
            .map_err(|e| match api_status(&e) {
                Some(StatusCode::UNAUTHORIZED) => anyhow::anyhow!(
                    "the server at {server} does not accept the stored session: run `coder login {server}` again"
                ),
                _ => e,
            })?;
        if !experiments.iter().any(|e| e == EXPERIMENT) {
            bail!(
                "the Coder server at {server} has the {EXPERIMENT} experiment off: an administrator must start it with --experiments={EXPERIMENT} (or CODER_EXPERIMENTS={EXPERIMENT})"
            );
        }
        let allowed: Vec<String> = self
            .allowed_tools
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let token = client.token().context("no session token")?.to_owned();
        let relay = Relay::new(
            http_client()?,
            client.base(),
            token,
            self.toolset.map(Toolset::as_str),
            (!allowed.is_empty()).then_some(allowed),
        );
        eprintln!(
            "coder: MCP server on stdio, relaying to {}",
            relay.endpoint()
        );
        serve_stdio(Arc::new(relay)).await
    }
}

/// Reads one message per line until stdin closes, answering each request as it completes; then
/// waits for the requests still running (each bounded by its timeout) and returns.
async fn serve_stdio(relay: Arc<Relay>) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(message) = rx.recv().await {
            let mut line = message.to_string().into_bytes();
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                // The client is gone; keep draining so senders never block.
                while rx.recv().await.is_some() {}
            }
        }
    });
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut tasks = JoinSet::new();
    let mut in_flight: HashMap<String, AbortHandle> = HashMap::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = stdin
            .read_until(b'\n', &mut buf)
            .await
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) => {
                let _ = tx.send(relay::error(
                    Value::Null,
                    -32700,
                    format!("Parse error: a line on stdin is not JSON ({e})."),
                    None,
                ));
                continue;
            }
        };
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            // MCP basic/utilities/cancellation: stop the work; no response is owed.
            if let Some(id) = message.pointer("/params/requestId")
                && let Some(task) = in_flight.remove(&id.to_string())
            {
                task.abort();
            }
            continue;
        }
        let request_id = match &message {
            Value::Object(m) if m.contains_key("method") => m.get("id").map(Value::to_string),
            _ => None,
        };
        let relay = relay.clone();
        let tx = tx.clone();
        let task = tasks.spawn(async move {
            let answers = match message {
                Value::Array(batch) => relay.handle_batch(batch).await,
                message => relay.handle(message).await,
            };
            for answer in answers {
                let _ = tx.send(answer);
            }
        });
        if let Some(id) = request_id {
            in_flight.retain(|_, t| !t.is_finished());
            in_flight.insert(id, task);
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    Ok(())
}
