//! `coder exp`: experimental commands, as Coder groups them.

use clap::{Args, Subcommand};

use super::mcp::McpCommand;

#[derive(Debug, Args)]
pub struct ExpCommand {
    #[command(subcommand)]
    sub: ExpSubcommand,
}

#[derive(Debug, Subcommand)]
enum ExpSubcommand {
    /// Model Context Protocol: serve Coder's tools to local AI agents.
    Mcp(McpCommand),
}

impl ExpCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.sub {
            ExpSubcommand::Mcp(cmd) => cmd.run().await,
        }
    }
}
