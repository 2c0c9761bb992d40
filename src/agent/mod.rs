//! `coder agent`: the process inside a workspace that dials the server and does the work there.
//!
//! It fetches its manifest, runs the startup script once (reporting its output and lifecycle),
//! and serves the server's requests (commands, files, background processes) over a WebSocket.
//! When the server goes away it reconnects with backoff; the workspace's processes, including
//! its background processes and their output, live on meanwhile, because they belong to this
//! process and not to the server.

pub mod client;
mod exec;
pub mod files;
mod processes;
pub mod rpc;
mod startup;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use client::AgentUrl;
use client::{ServerClient, SessionError};
use processes::ProcessTable;
use startup::Reporter;

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Variables only the agent itself reads; no workspace process inherits them.
pub const AGENT_ONLY_ENV: [&str; 3] = [
    "CODER_AGENT_URL",
    "CODER_AGENT_TOKEN",
    "CODER_AGENT_TOKEN_FILE",
];

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub url: AgentUrl,
    pub token: String,
}

/// What the agent's request handlers share.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// The home every file operation stays inside.
    pub home: std::path::PathBuf,
    /// Variables and working directory every command gets, from the manifest.
    pub env: Vec<(String, String)>,
    pub dir: std::path::PathBuf,
    pub shell: String,
    pub processes: ProcessTable,
}

/// Runs until the process is told to stop; returns only on a fatal configuration error.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let client = ServerClient::new(&config.url, &config.token)?;
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .context("HOME is not set: the agent serves files inside the workspace's home")?;
    tracing::info!(url = %config.url, "coder agent starting");
    let mut backoff = FIRST_BACKOFF;
    let mut started: Option<Arc<Workspace>> = None;
    let reporter = Reporter::start(client.clone());
    loop {
        let attempt = async {
            let manifest = client.manifest().await?;
            let workspace = match &started {
                Some(ws) => ws.clone(),
                None => {
                    let ws = Arc::new(Workspace::new(home.clone(), &manifest));
                    startup::run_script(ws.clone(), &manifest, reporter.clone());
                    started = Some(ws.clone());
                    ws
                }
            };
            let socket = client.dial_rpc().await?;
            tracing::info!("connected to the server");
            Ok::<_, SessionError>((workspace, socket))
        }
        .await;
        match attempt {
            Ok((workspace, socket)) => {
                backoff = FIRST_BACKOFF;
                let ended = rpc::serve(socket, workspace).await;
                tracing::warn!(reason = %ended, "disconnected from the server; reconnecting");
            }
            Err(SessionError::Refused(why)) => {
                tracing::warn!(reason = %why, "the server refused this agent; retrying");
                backoff = MAX_BACKOFF;
            }
            Err(SessionError::Unreachable(why)) => {
                tracing::debug!(reason = %why, "the server is unreachable; retrying");
            }
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Between 75% and 100% of `d`, so agents of a restarted server do not all dial at once.
fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(rand::thread_rng().gen_range(0.75..=1.0))
}

impl Workspace {
    fn new(home: std::path::PathBuf, manifest: &crate::domain::agent::AgentManifest) -> Self {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| !AGENT_ONLY_ENV.contains(&k.as_str()))
            .collect();
        for (k, v) in &manifest.environment_variables {
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v.clone()));
        }
        let dir = host_dir(&home, &manifest.directory);
        let shell = ["/bin/bash", "/usr/bin/bash", "/bin/sh"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map_or("/bin/sh", |p| p)
            .to_owned();
        Workspace {
            home,
            env,
            dir,
            shell,
            processes: ProcessTable::default(),
        }
    }

    /// The working directory commands start in: the manifest's, once it exists, else the home.
    pub fn working_dir(&self) -> &std::path::Path {
        if self.dir.is_dir() {
            &self.dir
        } else {
            &self.home
        }
    }
}

/// Where a directory inside the workspace (`/home/coder/...`) is for this process: the same
/// path in a sandbox, or under the real home when the home is elsewhere (unsandboxed).
fn host_dir(home: &std::path::Path, inside: &str) -> std::path::PathBuf {
    match inside.strip_prefix(crate::domain::WORKSPACE_HOME) {
        Some(rest) => home.join(rest.trim_start_matches('/')),
        None if inside.starts_with('/') => std::path::PathBuf::from(inside),
        None => home.join(inside),
    }
}
