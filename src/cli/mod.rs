//! The `coder` command line.

mod logging;
mod server;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "coder",
    version,
    about = "Coder: workspaces for people and AI agents"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the Coder server.
    Server(server::ServerCommand),
}

/// Runs the parsed command; the exit code follows from the result.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(cmd) => cmd.run().await,
    }
}
