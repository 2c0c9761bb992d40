//! `coder agent`: runs inside a workspace and connects it to the server.

use clap::Args;

use crate::agent::{AgentConfig, AgentUrl};

#[derive(Debug, Args)]
pub struct AgentCommand {
    /// The server's URL as the workspace reaches it: http(s)://host[:port] or unix:///path.
    #[arg(long = "url", env = "CODER_AGENT_URL")]
    url: String,
    /// The workspace's agent token.
    #[arg(long = "token", env = "CODER_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A Unix socket to reach --url through (it forwards to the server; TLS stays end to end).
    #[arg(long = "socket", env = "CODER_AGENT_SOCKET")]
    socket: Option<String>,
    /// A file holding the agent token, instead of --token.
    #[arg(long = "token-file", env = "CODER_AGENT_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
}

impl AgentCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        super::logging::init(crate::config::LogFormat::Human, false);
        let token = match (self.token, self.token_file) {
            (Some(token), _) if !token.trim().is_empty() => token.trim().to_owned(),
            (_, Some(path)) => std::fs::read_to_string(&path)
                .map_err(|e| {
                    anyhow::anyhow!("cannot read the agent token from {}: {e}", path.display())
                })?
                .trim()
                .to_owned(),
            _ => anyhow::bail!(
                "no agent token: set CODER_AGENT_TOKEN (or CODER_AGENT_TOKEN_FILE); the provisioner that started this workspace normally does"
            ),
        };
        let url = AgentUrl::parse(&self.url, self.socket.as_deref())?;
        crate::agent::run(AgentConfig { url, token }).await
    }
}
