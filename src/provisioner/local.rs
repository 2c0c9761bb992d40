//! The `local` provisioner: each workspace is `<data dir>/workspaces/<id>/home` on this host,
//! and every process in it runs in the bubblewrap sandbox of `sandbox.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::process::{self, Captured, ProcessRegistry, Tracked};
use super::sandbox::{Sandbox, SandboxMode, WorkspaceLayout};
use super::{
    AgentProcess, DirListing, EditResult, ExecOutput, ExecRequest, FileContent, FileEdits,
    ProvisionError, Provisioner, StartSpec, WorkspaceContext, archive, files,
};
use crate::domain::WorkspaceId;

/// The most output a command returns; the rest is dropped and the result marked truncated.
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// Background processes one workspace may have at once.
const MAX_BACKGROUND: usize = 32;

#[derive(Debug, Clone)]
pub struct LocalProvisionerOptions {
    pub data_dir: PathBuf,
    /// Run without a sandbox when bubblewrap is missing (the owner's explicit choice).
    pub allow_unsandboxed: bool,
    /// Host paths the sandbox must hide besides the data directory (config file, database).
    pub hidden_paths: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct LocalProvisioner {
    workspaces_dir: PathBuf,
    sandbox: Sandbox,
    processes: Arc<ProcessRegistry>,
}

impl LocalProvisioner {
    pub async fn new(options: LocalProvisionerOptions) -> Self {
        let mut hidden = vec![options.data_dir.clone()];
        hidden.extend(options.hidden_paths);
        let sandbox = Sandbox::detect(options.allow_unsandboxed, hidden).await;
        match sandbox.mode() {
            SandboxMode::Bubblewrap { bwrap } => {
                tracing::info!(bwrap = %bwrap.display(), "workspaces run in bubblewrap sandboxes")
            }
            SandboxMode::Unsandboxed => tracing::warn!(
                "!!! WORKSPACES ARE NOT SANDBOXED !!! --allow-unsandboxed-workspaces is set: \
                 workspace commands run as the server's own user and can read and change \
                 anything it can, including its database. Install bubblewrap and remove the flag."
            ),
            SandboxMode::Missing(why) => {
                tracing::warn!(reason = %why, "workspace builds will fail until this is fixed")
            }
        }
        LocalProvisioner {
            workspaces_dir: options.data_dir.join("workspaces"),
            sandbox,
            processes: Arc::new(ProcessRegistry::default()),
        }
    }

    fn layout(&self, workspace: WorkspaceId) -> WorkspaceLayout {
        WorkspaceLayout::new(&self.workspaces_dir, &workspace.to_string())
    }

    fn require_sandbox(&self) -> Result<(), ProvisionError> {
        match self.sandbox.unavailable() {
            Some(why) => Err(ProvisionError::Unavailable(why)),
            None => Ok(()),
        }
    }

    fn require_home(layout: &WorkspaceLayout) -> Result<(), ProvisionError> {
        if layout.home.is_dir() {
            Ok(())
        } else {
            Err(ProvisionError::Busy(
                "The workspace has no files on this server: start it first.".into(),
            ))
        }
    }

    /// Makes the home (from the template on the first start), a fresh /tmp, and the working
    /// directory.
    async fn prepare(
        &self,
        layout: &WorkspaceLayout,
        spec: &StartSpec,
    ) -> Result<Vec<String>, ProvisionError> {
        let layout = layout.clone();
        let archive = spec.archive.clone();
        let dir = Sandbox::host_path(&layout, &spec.context.dir);
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, ProvisionError> {
            let io = |what: &str, e: std::io::Error| ProvisionError::internal(what, e);
            std::fs::create_dir_all(&layout.root)
                .map_err(|e| io("cannot create the workspace directory", e))?;
            let mut notes = Vec::new();
            if !layout.home.exists() {
                // Extract next to the home and rename, so a failed copy never leaves a half home.
                let staging = layout.root.join("home.new");
                if staging.exists() {
                    remove_tree(&staging)
                        .map_err(|e| io("cannot clear a previous staging directory", e))?;
                }
                std::fs::create_dir(&staging).map_err(|e| io("cannot create the home", e))?;
                let skipped = archive::extract_into(&archive, &staging)
                    .map_err(|e| ProvisionError::Invalid(e.0))?;
                for s in skipped {
                    notes.push(format!("Skipped {s}."));
                }
                std::fs::rename(&staging, &layout.home)
                    .map_err(|e| io("cannot create the home", e))?;
                notes.push("Copied the template's files into the new home.".into());
            }
            if layout.tmp.exists() {
                remove_tree(&layout.tmp).map_err(|e| io("cannot clear the workspace /tmp", e))?;
            }
            std::fs::create_dir(&layout.tmp)
                .map_err(|e| io("cannot create the workspace /tmp", e))?;
            if dir.starts_with(&layout.home) && !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| io("cannot create the working directory", e))?;
            }
            Ok(notes)
        })
        .await
        .map_err(|e| ProvisionError::internal("the preparation task failed", e))?
    }

    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
    ) -> Result<T, ProvisionError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ProvisionError::internal("a file operation failed", e))?
    }

    /// Starts `cmd` and tracks its process group, so stopping the workspace ends it. The
    /// command is consumed: it holds our copies of a pipe's write end, which must close for the
    /// reader to see EOF.
    fn spawn_tracked(
        &self,
        workspace: WorkspaceId,
        mut cmd: tokio::process::Command,
    ) -> Result<(tokio::process::Child, i32, Tracked), ProvisionError> {
        let child = cmd
            .spawn()
            .map_err(|e| ProvisionError::internal("cannot start the process", e))?;
        drop(cmd);
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let tracked = self.processes.track(workspace, pgid);
        Ok((child, pgid, tracked))
    }
}

/// Leaves a started process running; it stays tracked until it exits.
fn keep_running(mut child: tokio::process::Child, tracked: Tracked) {
    tokio::spawn(async move {
        let _ = child.wait().await;
        drop(tracked);
    });
}

/// Removes a directory tree even where a workspace made parts of it read-only.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            std::fs::remove_dir_all(path)
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.is_dir() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    fn name(&self) -> &'static str {
        "local"
    }

    fn unavailable(&self) -> Option<String> {
        self.sandbox.unavailable()
    }

    async fn start(&self, spec: StartSpec) -> Result<AgentProcess, ProvisionError> {
        self.require_sandbox()?;
        let workspace = spec.context.workspace_id;
        self.processes.kill_all(workspace).await;
        let layout = self.layout(workspace);
        let notes = self.prepare(&layout, &spec).await?;

        // The wrapper runs the script, reports its exit code behind a marker no script can guess,
        // and then stays, so that what the script started in the background keeps running until
        // the workspace stops.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let marker = format!("__coder_startup_script_exit_{nonce}__");
        let shell = self.sandbox.shell().to_string_lossy().into_owned();
        let wrapper = "\"$0\" -c \"$1\" </dev/null 2>&1; code=$?; printf '%s%s\\n' \"$2\" \"$code\"; \
                       exec 1>/dev/null 2>&1; while :; do sleep 3600; done";
        let (reader, writer) = process::output_pipe()?;
        let stdout = writer
            .try_clone()
            .map_err(|e| ProvisionError::internal("cannot create a pipe", e))?;
        let mut cmd = self.sandbox.command(
            &layout,
            &spec.context,
            &[
                "/bin/sh",
                "-c",
                wrapper,
                &shell,
                &spec.startup_script,
                &marker,
            ],
        );
        cmd.stdout(stdout).stderr(writer).kill_on_drop(false);
        let (child, _, tracked) = self.spawn_tracked(workspace, cmd)?;
        keep_running(child, tracked);
        let (tx, rx) = mpsc::channel(1024);
        for note in notes {
            let _ = tx
                .send(super::AgentEvent::Line(format!("[coder] {note}")))
                .await;
        }
        process::spawn_agent_reader(reader, marker, tx)?;
        Ok(AgentProcess { events: rx })
    }

    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.processes.kill_all(workspace).await;
        Ok(())
    }

    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.processes.kill_all(workspace).await;
        let root = self.layout(workspace).root;
        Self::blocking(move || {
            remove_tree(&root)
                .map_err(|e| ProvisionError::internal("cannot remove the workspace directory", e))
        })
        .await
    }

    async fn exec(
        &self,
        context: &WorkspaceContext,
        request: ExecRequest,
    ) -> Result<ExecOutput, ProvisionError> {
        self.require_sandbox()?;
        let workspace = context.workspace_id;
        let layout = self.layout(workspace);
        Self::require_home(&layout)?;
        let shell = self.sandbox.shell().to_string_lossy().into_owned();
        if request.background {
            if self.processes.count(workspace) >= MAX_BACKGROUND {
                return Err(ProvisionError::Busy(format!(
                    "The workspace already runs {MAX_BACKGROUND} processes; stop some (or restart the workspace) first."
                )));
            }
            let name = format!(
                "coder-bg-{}.log",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let log_host = layout.tmp.join(&name);
            let log = std::fs::File::create(&log_host)
                .map_err(|e| ProvisionError::internal("cannot create the background log", e))?;
            let log_err = log
                .try_clone()
                .map_err(|e| ProvisionError::internal("cannot create the background log", e))?;
            let mut cmd = self
                .sandbox
                .command(&layout, context, &[&shell, "-c", &request.command]);
            cmd.stdout(log).stderr(log_err).kill_on_drop(false);
            let (child, _, tracked) = self.spawn_tracked(workspace, cmd)?;
            keep_running(child, tracked);
            let shown = match self.sandbox.mode() {
                SandboxMode::Bubblewrap { .. } => format!("/tmp/{name}"),
                _ => log_host.display().to_string(),
            };
            return Ok(ExecOutput {
                output: format!(
                    "Started in the background. Its output goes to {shown}; it runs until it exits or the workspace stops.\n"
                ),
                exit_code: 0,
                timed_out: false,
                truncated: false,
            });
        }

        let (reader, writer) = process::output_pipe()?;
        let stdout = writer
            .try_clone()
            .map_err(|e| ProvisionError::internal("cannot create a pipe", e))?;
        let mut cmd = self
            .sandbox
            .command(&layout, context, &[&shell, "-c", &request.command]);
        cmd.stdout(stdout).stderr(writer).kill_on_drop(true);
        let (mut child, pgid, tracked) = self.spawn_tracked(workspace, cmd)?;
        let sink = Arc::new(Mutex::new(Captured::default()));
        let reading = process::spawn_capture(reader, MAX_OUTPUT, sink.clone())?;
        let waited = tokio::time::timeout(request.timeout, child.wait()).await;
        // Whatever the command left behind goes with it, as when a terminal closes.
        process::kill_group(pgid);
        let (exit_code, timed_out) = match waited {
            Ok(Ok(status)) => (process::exit_code(status), false),
            Ok(Err(e)) => return Err(ProvisionError::internal("cannot wait for the command", e)),
            Err(_) => {
                let _ = child.wait().await;
                (124, true)
            }
        };
        drop(tracked);
        let mut reading = reading;
        if tokio::time::timeout(Duration::from_secs(2), &mut reading)
            .await
            .is_err()
        {
            reading.abort();
        }
        let captured = std::mem::take(&mut *sink.lock().unwrap_or_else(|p| p.into_inner()));
        let mut output = String::from_utf8_lossy(&captured.bytes).into_owned();
        let truncated = captured.dropped > 0;
        if truncated {
            output.push_str(&format!(
                "\n[output truncated: {} more bytes were not kept; the limit is {} KiB]\n",
                captured.dropped,
                MAX_OUTPUT / 1024
            ));
        }
        if timed_out {
            output.push_str(&format!(
                "\n[the command timed out after {} s and was killed]\n",
                request.timeout.as_secs_f64()
            ));
        }
        Ok(ExecOutput {
            output,
            exit_code,
            timed_out,
            truncated,
        })
    }

    async fn list_dir(
        &self,
        workspace: WorkspaceId,
        path: &str,
    ) -> Result<DirListing, ProvisionError> {
        let home = self.layout(workspace).home;
        let path = path.to_owned();
        Self::blocking(move || files::list_dir(&home, &path)).await
    }

    async fn read_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        offset: u64,
        limit: u64,
    ) -> Result<FileContent, ProvisionError> {
        let home = self.layout(workspace).home;
        let path = path.to_owned();
        Self::blocking(move || files::read_file(&home, &path, offset, limit)).await
    }

    async fn write_file(
        &self,
        workspace: WorkspaceId,
        path: &str,
        content: Vec<u8>,
    ) -> Result<String, ProvisionError> {
        let home = self.layout(workspace).home;
        let path = path.to_owned();
        Self::blocking(move || files::write_file(&home, &path, &content)).await
    }

    async fn edit_files(
        &self,
        workspace: WorkspaceId,
        edits: Vec<FileEdits>,
    ) -> Result<Vec<EditResult>, ProvisionError> {
        let home = self.layout(workspace).home;
        Self::blocking(move || files::edit_files(&home, &edits)).await
    }
}
