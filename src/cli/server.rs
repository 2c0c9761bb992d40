//! `coder server`, `coder server create-admin-user` and `coder server rotate-oauth2-signing-key`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{ServerConfig, ServerOptions};
use crate::domain::DomainError;
use crate::ratelimit::RateLimiter;
use crate::service::{CreateUserRequest, ServicePolicy, Services};
use crate::store;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerCommand {
    #[command(subcommand)]
    sub: Option<ServerSubcommand>,

    /// A YAML or TOML file with any of the options below (flags and env vars win over it).
    #[arg(long, env = "CODER_CONFIG_PATH", global = true)]
    config: Option<PathBuf>,

    #[command(flatten)]
    options: ServerOptions,
}

#[derive(Debug, Subcommand)]
enum ServerSubcommand {
    /// Create an owner account without starting the server (for scripts and containers).
    CreateAdminUser(CreateAdminUser),
    /// Start signing OAuth2 access tokens with a new key. Tokens signed with the old key stay
    /// valid until they expire; running servers pick the new key up within a minute.
    RotateOauth2SigningKey(DatabaseArgs),
}

/// Where the database is, for subcommands that work on it without starting the server.
#[derive(Debug, Args)]
struct DatabaseArgs {
    #[arg(long, env = "CODER_PG_CONNECTION_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    #[arg(long, env = "CODER_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DatabaseArgs {
    fn config(&self, config_path: Option<&std::path::Path>) -> anyhow::Result<ServerConfig> {
        let options = ServerOptions {
            postgres_url: self.postgres_url.clone(),
            data_dir: self.data_dir.clone(),
            ..ServerOptions::default()
        };
        ServerConfig::from_options(options, config_path)
    }
}

#[derive(Debug, Args)]
struct CreateAdminUser {
    #[arg(long, env = "CODER_EMAIL")]
    email: String,
    #[arg(long, env = "CODER_USERNAME")]
    username: String,
    /// The password; read from stdin (or prompted for) when absent.
    #[arg(long, env = "CODER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    #[arg(long, default_value = "")]
    name: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

impl ServerCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.sub {
            Some(ServerSubcommand::CreateAdminUser(cmd)) => cmd.run(self.config).await,
            Some(ServerSubcommand::RotateOauth2SigningKey(db)) => {
                rotate_signing_key(db, self.config).await
            }
            None => serve(self.options, self.config).await,
        }
    }
}

async fn serve(options: ServerOptions, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = ServerConfig::from_options(options, config_path.as_deref())?;
    super::logging::init(config.log_format, config.verbose);
    super::open_files::raise_and_log();
    for name in &config.unknown_experiments {
        tracing::warn!(experiment = %name, known = ?crate::domain::Experiment::ALL.map(|e| e.name()), "ignoring unknown experiment");
    }
    let database = config.database.redacted();
    let app = App::build(config.clone()).await?;
    // Listening for the stop signals starts before the server says it started: a SIGTERM sent
    // as soon as it has must stop it gracefully, not by the signal's default action.
    let shutdown = shutdown_signal()?;
    let experiments = config.experiments.names();
    tracing::info!(
        url = %app.access_url().as_str().trim_end_matches('/'),
        listen = %app.local_addr()?,
        database = %database,
        data_dir = %config.data_dir.display(),
        experiments = %if experiments.is_empty() { "none".to_owned() } else { experiments.join(",") },
        "Coder server started; open the URL to sign in",
    );
    app.run_until_stopped(shutdown).await?;
    tracing::info!("Coder server stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; both are caught from the moment this is called.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

impl CreateAdminUser {
    async fn run(self, config_path: Option<PathBuf>) -> anyhow::Result<()> {
        let config = self.database.config(config_path.as_deref())?;
        let password = match self.password.clone() {
            Some(p) => p,
            None => super::password::read_password()?,
        };
        let store = store::open(&config.database).await?;
        let clock = std::sync::Arc::new(SystemClock);
        let services = Services::new(
            store.clone(),
            clock.clone(),
            ServicePolicy {
                session_duration: config.session_duration,
                default_token_lifetime: config.default_token_lifetime,
                max_token_lifetime: config.max_token_lifetime,
                password_hash_concurrency: config.password_hash_concurrency,
                password_hash_wait: config.password_hash_wait,
            },
            RateLimiter::new(1, chrono::Duration::minutes(1), clock),
        );
        let created = services
            .create_admin_user(CreateUserRequest {
                email: self.email,
                username: self.username,
                name: self.name,
                password,
            })
            .await;
        store.close().await;
        match created {
            Ok(user) => {
                println!(
                    "Created owner {} ({}) in {}",
                    user.username,
                    user.email,
                    config.database.redacted()
                );
                Ok(())
            }
            Err(DomainError::Invalid { message, fields }) => {
                let details: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.detail))
                    .collect();
                bail!("{message} {}", details.join("; "))
            }
            Err(err) => Err(err.into()),
        }
    }
}

async fn rotate_signing_key(db: DatabaseArgs, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    use crate::clock::Clock;
    let config = db.config(config_path.as_deref())?;
    let store = store::open(&config.database).await?;
    let rotated = crate::oauth::keys::KeyRing::rotate(&store, SystemClock.now()).await;
    store.close().await;
    let kid = rotated?;
    println!(
        "New OAuth2 signing key {kid} in {}; older keys keep verifying until their tokens expire.",
        config.database.redacted()
    );
    Ok(())
}
