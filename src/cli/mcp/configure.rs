//! `coder exp mcp configure claude-desktop|claude-code|cursor`: adds `coder exp mcp server` to a
//! local agent's MCP config file, keeping everything else in it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::server::Toolset;
use crate::cli::client::{ClientArgs, display_url, non_empty};
use crate::cli::config_dir::{create_private_dir, env_path, write_private_file};

/// The key of our entry under `mcpServers`.
const SERVER_NAME: &str = "coder";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum McpClient {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
}

impl McpClient {
    fn display_name(self) -> &'static str {
        match self {
            McpClient::ClaudeDesktop => "Claude Desktop",
            McpClient::ClaudeCode => "Claude Code",
            McpClient::Cursor => "Cursor",
        }
    }

    /// Where the client reads its MCP servers; `home` is `$HOME`.
    fn config_path(self, home: &Path) -> PathBuf {
        match self {
            McpClient::ClaudeDesktop => claude_desktop_dir(home).join("claude_desktop_config.json"),
            McpClient::ClaudeCode => home.join(".claude.json"),
            McpClient::Cursor => home.join(".cursor").join("mcp.json"),
        }
    }
}

/// Electron's `appData` folder, where Claude Desktop keeps its config.
fn claude_desktop_dir(home: &Path) -> PathBuf {
    if cfg!(target_os = "macos") {
        return home.join("Library/Application Support/Claude");
    }
    if cfg!(windows)
        && let Some(appdata) = env_path("APPDATA")
    {
        return appdata.join("Claude");
    }
    env_path("XDG_CONFIG_HOME")
        .unwrap_or_else(|| home.join(".config"))
        .join("Claude")
}

#[derive(Debug, Args)]
pub struct ConfigureCommand {
    /// The agent to configure.
    #[arg(value_enum)]
    target: McpClient,

    /// Print the resulting config file instead of writing it.
    #[arg(long)]
    dry_run: bool,

    /// Passed on to `coder exp mcp server --toolset`.
    #[arg(long, value_enum)]
    toolset: Option<Toolset>,

    /// Passed on to `coder exp mcp server --allowed-tools`.
    #[arg(long, value_delimiter = ',', value_name = "TOOLS")]
    allowed_tools: Vec<String>,

    #[command(flatten)]
    client: ClientArgs,
}

/// What the entry authenticates with, for the message printed afterwards.
enum Identity {
    /// The login `coder login` stored: the entry names the config dir, so the agent always uses
    /// the current session and no secret is copied into the agent's file.
    ConfigDir(PathBuf),
    /// A token given explicitly (`--token`, `CODER_SESSION_TOKEN`), e.g. a long-lived API token.
    Token,
}

impl ConfigureCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        let home = env_path("HOME").context("HOME is not set: cannot find the agent's config")?;
        let path = self.target.config_path(&home);
        let (env, identity) = self.environment()?;
        let entry = self.entry(env)?;

        let existing = read_config(&path)?;
        let mut config = existing.clone().unwrap_or_else(|| json!({}));
        let servers = config
            .as_object_mut()
            .with_context(|| format!("{} does not hold a JSON object", path.display()))?
            .entry("mcpServers")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .with_context(|| {
                format!(
                    "\"mcpServers\" in {} is not a JSON object; fix it, then run this again",
                    path.display()
                )
            })?;
        let previous = servers.insert(SERVER_NAME.to_owned(), entry.clone());
        let action = match &previous {
            None => "Added",
            Some(p) if *p == entry => "Kept",
            Some(_) => "Updated",
        };
        let text = format!("{}\n", serde_json::to_string_pretty(&config)?);

        let client = self.target.display_name();
        if self.dry_run {
            print!("{text}");
            eprintln!(
                "Dry run: this is {} with the \"{SERVER_NAME}\" MCP server {}; nothing was written.",
                path.display(),
                action.to_lowercase()
            );
            return Ok(());
        }
        if action != "Kept" {
            write_config(&path, text.as_bytes())?;
        }
        println!(
            "{action} the \"{SERVER_NAME}\" MCP server in {} ({client}): {} {}",
            path.display(),
            entry["command"].as_str().unwrap_or_default(),
            self.args().join(" ")
        );
        match identity {
            Identity::ConfigDir(dir) => println!(
                "It signs in with the login stored in {} (`coder login` renews it).",
                dir.display()
            ),
            Identity::Token => {
                println!("It signs in with the token you gave; the file now holds that secret.")
            }
        }
        println!("Restart {client} to load it.");
        Ok(())
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["exp".to_owned(), "mcp".to_owned(), "server".to_owned()];
        if let Some(toolset) = self.toolset {
            args.extend(["--toolset".to_owned(), toolset.as_str().to_owned()]);
        }
        let allowed: Vec<&str> = self
            .allowed_tools
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        if !allowed.is_empty() {
            args.extend(["--allowed-tools".to_owned(), allowed.join(",")]);
        }
        args
    }

    fn entry(&self, env: Map<String, Value>) -> anyhow::Result<Value> {
        let exe = std::env::current_exe().context("cannot find the path of this coder binary")?;
        let exe = exe.canonicalize().unwrap_or(exe);
        let mut entry = json!({
            "command": exe.to_string_lossy(),
            "args": self.args(),
            "env": env,
        });
        if self.target == McpClient::ClaudeCode {
            entry["type"] = json!("stdio");
        }
        Ok(entry)
    }

    /// The environment the agent starts `coder exp mcp server` with.
    fn environment(&self) -> anyhow::Result<(Map<String, Value>, Identity)> {
        let mut env = Map::new();
        if let Some(token) = non_empty(self.client.token.as_deref()) {
            let url = self.client.server_url()?.context(
                "a token needs the server's URL too: pass --url (or CODER_URL), or run `coder login <url>`",
            )?;
            env.insert("CODER_URL".to_owned(), json!(display_url(&url)));
            env.insert("CODER_SESSION_TOKEN".to_owned(), json!(token));
            return Ok((env, Identity::Token));
        }
        let dir = self.client.config_dir()?;
        if dir.url()?.is_none() || dir.session()?.is_none() {
            bail!(
                "you are not logged in: run `coder login <url>` first (or pass --url and --token); looked in {}",
                dir.path().display()
            );
        }
        let path = std::path::absolute(dir.path()).unwrap_or_else(|_| dir.path().to_path_buf());
        env.insert("CODER_CONFIG_DIR".to_owned(), json!(path.to_string_lossy()));
        Ok((env, Identity::ConfigDir(path)))
    }
}

/// The config as it is now; `None` when the file does not exist or is empty.
fn read_config(path: &Path) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not valid JSON; fix or move it, then run this again",
            path.display()
        )
    })?;
    Ok(Some(value))
}

/// Replaces the file through a temporary one and a rename (an agent reading it never sees half a
/// file). A new file gets mode 0600 as it may hold a token; an existing one keeps its mode.
fn write_config(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // Through a symlink (dotfiles kept in a repository) to the file it points at.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let old_permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    let written = write_private_file(&temp, bytes)
        .and_then(|()| match old_permissions {
            Some(p) => std::fs::set_permissions(&temp, p),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}
