//! `coder provisioner start` (an external provisioner daemon) and `coder provisioner keys
//! create|list|delete` (what daemons sign in with), as in Coder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ApiClient, ClientArgs, parse_server_url};
use super::output::{self, OutputFormat};
use super::users::path_segment;
use crate::provisionerd::DaemonConfig;

#[derive(Debug, Args)]
pub struct ProvisionerCommand {
    #[command(subcommand)]
    sub: ProvisionerSubcommand,
}

#[derive(Debug, Subcommand)]
enum ProvisionerSubcommand {
    /// Run a provisioner daemon: build workspaces on this host for a Coder server.
    Start(Box<StartDaemon>),
    /// Manage the keys provisioner daemons sign in with (owners).
    Keys(KeysCommand),
}

#[derive(Debug, Args)]
struct StartDaemon {
    /// The server's URL, as this host reaches it.
    #[arg(long, env = "CODER_URL", value_name = "URL")]
    url: String,

    /// The provisioner key (from `coder provisioner keys create`).
    #[arg(long, env = "CODER_PROVISIONER_DAEMON_KEY", hide_env_values = true)]
    key: String,

    /// This daemon's name in builds and listings [default: the host name].
    #[arg(long, env = "CODER_PROVISIONER_DAEMON_NAME")]
    name: Option<String>,

    /// The organization whose jobs it takes.
    #[arg(long, short = 'O', env = "CODER_ORGANIZATION", default_value = "coder")]
    org: String,

    /// Where the daemon keeps its id and its workspaces [default: ~/.local/share/coder-provisionerd].
    #[arg(long, env = "CODER_PROVISIONER_DAEMON_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// Host uids its workspaces run as when it runs as root, one per workspace.
    #[arg(
        long,
        env = "CODER_WORKSPACE_UID_RANGE",
        default_value = "1000000000-1000065535"
    )]
    workspace_uid_range: String,

    /// The Docker engine for container workspaces on this host.
    #[arg(long, env = "DOCKER_HOST", default_value = crate::domain::container::DEFAULT_DOCKER_HOST)]
    docker_host: String,

    /// Run workspaces without the bubblewrap sandbox where it is unavailable (trusted hosts only).
    #[arg(long, env = "CODER_ALLOW_UNSANDBOXED_WORKSPACES")]
    allow_unsandboxed_workspaces: bool,
}

#[derive(Debug, Args)]
struct KeysCommand {
    #[command(subcommand)]
    sub: KeysSubcommand,

    #[command(flatten)]
    client: ClientArgs,

    /// The organization the keys belong to.
    #[arg(
        long,
        short = 'O',
        env = "CODER_ORGANIZATION",
        default_value = "coder",
        global = true
    )]
    org: String,
}

#[derive(Debug, Subcommand)]
enum KeysSubcommand {
    /// Create a key and print it (it is shown only once).
    Create(CreateKey),
    /// List the keys (never their secrets).
    #[command(alias = "ls")]
    List(ListKeys),
    /// Delete a key; daemons using it are refused when they next connect.
    #[command(aliases = ["rm", "remove"])]
    Delete(DeleteKey),
}

#[derive(Debug, Args)]
struct CreateKey {
    /// The key's name.
    name: String,
    /// A tag its daemons get, as key=value; repeat for several.
    #[arg(long = "tag", short = 't', value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

#[derive(Debug, Args)]
struct ListKeys {
    /// table or json.
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct DeleteKey {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    key: String,
}

impl ProvisionerCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.sub {
            ProvisionerSubcommand::Start(cmd) => cmd.run().await,
            ProvisionerSubcommand::Keys(cmd) => cmd.run().await,
        }
    }
}

impl StartDaemon {
    async fn run(self) -> anyhow::Result<()> {
        super::logging::init(crate::config::LogFormat::Human, false);
        let url = parse_server_url(&self.url)?;
        let (low, high) = self
            .workspace_uid_range
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)))
            .filter(|(a, b)| *a >= 1000 && a <= b)
            .context("--workspace-uid-range must be a range such as 1000000000-1000065535 of uids from 1000 up")?;
        let name = match self.name.filter(|n| !n.trim().is_empty()) {
            Some(n) => n,
            None => rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
        };
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        crate::provisionerd::run(DaemonConfig {
            url,
            key: self.key.trim().to_owned(),
            name,
            organization: self.org,
            data_dir,
            uid_range: low..=high,
            allow_unsandboxed: self.allow_unsandboxed_workspaces,
            agent_binary: std::env::current_exe()
                .context("cannot find this binary to run agents from")?,
            docker_host: self.docker_host,
        })
        .await
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("coder-provisionerd"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/coder-provisionerd"))
}

impl KeysCommand {
    async fn run(self) -> anyhow::Result<()> {
        let client = self.client.authenticated()?;
        let base = format!(
            "/api/v2/organizations/{}/provisionerkeys",
            path_segment(&self.org)
        );
        match self.sub {
            KeysSubcommand::Create(cmd) => create(&client, &base, cmd).await,
            KeysSubcommand::List(cmd) => list(&client, &base, cmd).await,
            KeysSubcommand::Delete(cmd) => {
                client
                    .delete(&format!("{base}/{}", path_segment(&cmd.name)))
                    .await
                    .with_context(|| format!("cannot delete the provisioner key {:?}", cmd.name))?;
                eprintln!("Deleted the provisioner key {:?}.", cmd.name);
                Ok(())
            }
        }
    }
}

async fn create(client: &ApiClient, base: &str, cmd: CreateKey) -> anyhow::Result<()> {
    let mut tags = BTreeMap::new();
    for tag in &cmd.tags {
        let Some((k, v)) = tag.split_once('=') else {
            bail!("--tag {tag:?} must be key=value");
        };
        tags.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    let created: Created = client
        .post(base, &json!({ "name": cmd.name, "tags": tags }))
        .await
        .context("cannot create the provisioner key")?;
    println!("{}", created.key);
    Ok(())
}

async fn list(client: &ApiClient, base: &str, cmd: ListKeys) -> anyhow::Result<()> {
    let keys: Vec<Value> = client.get(base).await?;
    match cmd.output {
        OutputFormat::Json => println!("{}", output::json(&keys)?),
        OutputFormat::Table => {
            if keys.is_empty() {
                eprintln!(
                    "No provisioner keys; create one with `coder provisioner keys create <name> --tag key=value`."
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    let tags = k
                        .get("tags")
                        .and_then(Value::as_object)
                        .map(|t| {
                            t.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    vec![
                        k.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        tags,
                        output::timestamp(k.get("created_at").and_then(Value::as_str)),
                    ]
                })
                .collect();
            print!("{}", output::table(&["name", "tags", "created at"], &rows));
        }
    }
    Ok(())
}
