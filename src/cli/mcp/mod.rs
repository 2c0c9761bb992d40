//! `coder exp mcp`: the local MCP server for agents on this machine, and their configuration.

mod configure;
mod relay;
mod server;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct McpCommand {
    #[command(subcommand)]
    sub: McpSubcommand,
}

#[derive(Debug, Subcommand)]
enum McpSubcommand {
    /// Serve MCP on stdio for a local agent, with the tools of the Coder server you are logged
    /// in to.
    Server(server::McpServerCommand),
    /// Add `coder exp mcp server` to Claude Desktop's, Claude Code's or Cursor's MCP config.
    Configure(configure::ConfigureCommand),
}

impl McpCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.sub {
            McpSubcommand::Server(cmd) => cmd.run().await,
            McpSubcommand::Configure(cmd) => cmd.run().await,
        }
    }
}
