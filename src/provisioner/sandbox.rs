//! The bubblewrap sandbox every workspace process runs in.
//!
//! The host is mounted read-only; `/home` is an empty tmpfs with the workspace's directory bound
//! at `/home/coder`, and `/tmp` is the workspace's own; the server's data directory, database
//! and config file are covered so they are not visible at all. Each process tree gets private
//! PID, IPC and UTS namespaces, no capabilities, a new session (no terminal injection), and dies
//! with the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::WorkspaceContext;
use crate::domain::WORKSPACE_HOME;

/// The PATH inside workspaces.
const PATH: &str =
    "/home/coder/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How workspace processes are isolated.
#[derive(Debug, Clone)]
pub enum SandboxMode {
    Bubblewrap {
        bwrap: PathBuf,
    },
    /// The owner chose to run workspaces without isolation.
    Unsandboxed,
    /// No usable sandbox: builds fail with this message.
    Missing(String),
}

/// Where one workspace lives on the host.
#[derive(Debug, Clone)]
pub struct WorkspaceLayout {
    pub root: PathBuf,
    pub home: PathBuf,
    pub tmp: PathBuf,
}

impl WorkspaceLayout {
    pub fn new(workspaces_dir: &Path, id: &str) -> Self {
        let root = workspaces_dir.join(id);
        WorkspaceLayout {
            home: root.join("home"),
            tmp: root.join("tmp"),
            root,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    mode: SandboxMode,
    /// Host paths covered inside the sandbox.
    hidden: Vec<PathBuf>,
    shell: PathBuf,
}

impl Sandbox {
    /// Finds bubblewrap and checks that it can build a sandbox on this host.
    pub async fn detect(allow_unsandboxed: bool, hidden: Vec<PathBuf>) -> Sandbox {
        let shell = ["/bin/bash", "/usr/bin/bash", "/bin/sh"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        let mode = match find_in_path("bwrap") {
            Some(bwrap) => match smoke_test(&bwrap).await {
                Ok(()) => SandboxMode::Bubblewrap { bwrap },
                Err(why) if allow_unsandboxed => {
                    tracing::warn!(reason = %why, "bubblewrap cannot create a sandbox here; running workspaces UNSANDBOXED as allowed");
                    SandboxMode::Unsandboxed
                }
                Err(why) => SandboxMode::Missing(format!(
                    "Workspaces run in a bubblewrap sandbox, but bwrap cannot create one on this server: {why}. \
                     Unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1), \
                     or run the server with --allow-unsandboxed-workspaces to accept running workspaces without isolation."
                )),
            },
            None if allow_unsandboxed => SandboxMode::Unsandboxed,
            None => SandboxMode::Missing(
                "Workspaces run in a bubblewrap sandbox, but `bwrap` is not installed on this server. \
                 Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap) and restart \
                 the server, or start it with --allow-unsandboxed-workspaces to run workspaces without \
                 isolation (not recommended)."
                    .into(),
            ),
        };
        let hidden: Vec<PathBuf> = hidden
            .into_iter()
            .filter_map(|p| p.canonicalize().ok())
            .filter(|p| p != Path::new("/"))
            .collect();
        // A path inside a hidden directory is already gone; covering it again would leave an
        // empty mount point that still shows its name.
        let hidden = hidden
            .iter()
            .filter(|p| {
                !hidden
                    .iter()
                    .any(|other| other != *p && p.starts_with(other))
            })
            .cloned()
            .collect();
        Sandbox {
            mode,
            hidden,
            shell,
        }
    }

    pub fn mode(&self) -> &SandboxMode {
        &self.mode
    }

    pub fn unavailable(&self) -> Option<String> {
        match &self.mode {
            SandboxMode::Missing(why) => Some(why.clone()),
            _ => None,
        }
    }

    pub fn shell(&self) -> &Path {
        &self.shell
    }

    /// The host path a path inside the workspace (`/home/coder/...`) maps to.
    pub fn host_path(layout: &WorkspaceLayout, inside: &str) -> PathBuf {
        match inside.strip_prefix(WORKSPACE_HOME) {
            Some(rest) => layout.home.join(rest.trim_start_matches('/')),
            None => layout.home.clone(),
        }
    }

    /// A command running `argv` in the workspace, with stdin closed and in a new process group.
    pub fn command(
        &self,
        layout: &WorkspaceLayout,
        context: &WorkspaceContext,
        argv: &[&str],
    ) -> Command {
        let dir_host = Self::host_path(layout, &context.dir);
        let dir_ok = dir_host.is_dir();
        let mut cmd = match &self.mode {
            SandboxMode::Bubblewrap { bwrap } => {
                let mut cmd = Command::new(bwrap);
                cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
                for hidden in &self.hidden {
                    if hidden.is_dir() {
                        cmd.arg("--tmpfs").arg(hidden);
                    } else {
                        cmd.args(["--ro-bind", "/dev/null"]).arg(hidden);
                    }
                }
                cmd.args(["--tmpfs", "/home", "--bind"])
                    .arg(&layout.home)
                    .arg(WORKSPACE_HOME)
                    .arg("--bind")
                    .arg(&layout.tmp)
                    .arg("/tmp");
                cmd.args([
                    "--unshare-pid",
                    "--unshare-ipc",
                    "--unshare-uts",
                    "--hostname",
                    &context.workspace_name,
                    "--die-with-parent",
                    "--new-session",
                    "--cap-drop",
                    "ALL",
                    "--chdir",
                    if dir_ok { &context.dir } else { WORKSPACE_HOME },
                    "--clearenv",
                ]);
                for (k, v) in self.env(context, WORKSPACE_HOME) {
                    cmd.arg("--setenv").arg(k).arg(v);
                }
                cmd.arg("--").args(argv);
                cmd
            }
            SandboxMode::Unsandboxed | SandboxMode::Missing(_) => {
                let (program, args) = argv.split_first().unwrap_or((&"/bin/sh", &[]));
                let mut cmd = Command::new(program);
                cmd.args(args)
                    .env_clear()
                    .envs(self.env(context, &layout.home.to_string_lossy()))
                    .current_dir(if dir_ok { &dir_host } else { &layout.home });
                cmd
            }
        };
        cmd.stdin(Stdio::null()).process_group(0);
        cmd
    }

    fn env(&self, context: &WorkspaceContext, home: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("HOME".to_owned(), home.to_owned()),
            ("PATH".to_owned(), PATH.to_owned()),
            ("USER".to_owned(), "coder".to_owned()),
            ("LOGNAME".to_owned(), "coder".to_owned()),
            (
                "SHELL".to_owned(),
                self.shell.to_string_lossy().into_owned(),
            ),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("TERM".to_owned(), "dumb".to_owned()),
        ];
        for (k, v) in &context.env {
            // A template may replace PATH; HOME and USER are refused when the manifest is parsed.
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Builds a throwaway sandbox with the same namespaces the real ones use.
async fn smoke_test(bwrap: &Path) -> Result<(), String> {
    let output = Command::new(bwrap)
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
