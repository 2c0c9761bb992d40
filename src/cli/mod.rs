//! The `coder` command line.

mod agent;
mod audit;
mod client;
mod config_dir;
mod device_login;
mod exp;
mod logging;
mod login;
mod mcp;
mod open_files;
mod output;
mod password;
mod prompt;
mod provisioner;
mod server;
mod spinner;
mod templates;
mod tokens;
mod users;
mod workspaces;

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
    Server(Box<server::ServerCommand>),
    /// Sign in to a Coder server and store the session for the other commands.
    Login(login::LoginCommand),
    /// End the stored session.
    Logout(login::LogoutCommand),
    /// Show who you are signed in as, and where.
    Whoami(users::WhoamiCommand),
    /// Look up users.
    Users(users::UsersCommand),
    /// Create, list and remove API tokens.
    Tokens(tokens::TokensCommand),
    /// Manage templates.
    Templates(templates::TemplatesCommand),
    /// Create a workspace from a template.
    Create(workspaces::CreateCommand),
    /// List workspaces.
    #[command(alias = "ls")]
    List(workspaces::ListCommand),
    /// Show a workspace's resources, agents and apps.
    Show(workspaces::ShowCommand),
    /// Start a workspace.
    Start(workspaces::BuildCommand),
    /// Stop a workspace.
    Stop(workspaces::BuildCommand),
    /// Restart a workspace (stop, then start).
    Restart(workspaces::BuildCommand),
    /// Delete a workspace.
    #[command(alias = "rm")]
    Delete(workspaces::BuildCommand),
    /// Show a workspace's build logs.
    Logs(workspaces::LogsCommand),
    /// Read the audit log (owners only).
    Audit(audit::AuditCommand),
    /// Experimental commands.
    Exp(exp::ExpCommand),
    /// Run the workspace agent (started inside a workspace by its provisioner).
    Agent(agent::AgentCommand),
    /// Provisioner daemons and their keys.
    Provisioner(provisioner::ProvisionerCommand),
}

impl Cli {
    /// Whether the command runs on a single-threaded runtime. The workspace agent does: its
    /// work is a few sockets and child processes, and on one thread a command's request, its
    /// spawn, its output and its answer need no wake-ups between worker threads: with the
    /// output read in the waiting task, about 0.1 ms of a 2.2 ms `echo hi` (docs/benchmarks.md,
    /// issue 19). Its blocking file work runs on tokio's blocking pool either way.
    pub fn runs_on_one_thread(&self) -> bool {
        matches!(self.command, Command::Agent(_))
    }
}

/// Runs the parsed command; the exit code follows from the result.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(cmd) => cmd.run().await,
        Command::Login(cmd) => cmd.run().await,
        Command::Logout(cmd) => cmd.run().await,
        Command::Whoami(cmd) => cmd.run().await,
        Command::Users(cmd) => cmd.run().await,
        Command::Tokens(cmd) => cmd.run().await,
        Command::Templates(cmd) => cmd.run().await,
        Command::Create(cmd) => cmd.run().await,
        Command::List(cmd) => cmd.run().await,
        Command::Show(cmd) => cmd.run().await,
        Command::Start(cmd) => cmd.run(workspaces::Action::Start).await,
        Command::Stop(cmd) => cmd.run(workspaces::Action::Stop).await,
        Command::Restart(cmd) => cmd.run(workspaces::Action::Restart).await,
        Command::Delete(cmd) => cmd.run(workspaces::Action::Delete).await,
        Command::Logs(cmd) => cmd.run().await,
        Command::Audit(cmd) => cmd.run().await,
        Command::Exp(cmd) => cmd.run().await,
        Command::Agent(cmd) => cmd.run().await,
        Command::Provisioner(cmd) => cmd.run().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
