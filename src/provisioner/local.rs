//! The `local` provisioner: each workspace is `<data dir>/workspaces/<id>/home` on this host,
//! and its agent runs in the bubblewrap sandbox of `sandbox.rs`, as the workspace's own user,
//! in the workspace's cgroups.
//!
//! Nothing about a running workspace is kept in the server's memory: the sandbox's pid is
//! recorded in the workspace directory, so a restarted server can stop what an earlier run
//! started, and the agent reconnects to it on its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::cgroups::{Cgroups, Limits};
use super::disk;
use super::sandbox::{self, AgentLaunch, SandboxMode, SandboxRecord, WorkspaceLayout};
use super::{Held, ProvisionError, Provisioner, StartSpec, WorkspaceLimits, archive};
use crate::domain::WorkspaceId;

/// The uid a workspace's user has inside an unprivileged user namespace.
const NAMESPACE_UID: u32 = 1000;
/// Where the uids given to workspaces are claimed, host-wide: one file per uid, holding the
/// directory of the workspace that has it.
const UID_REGISTRY: &str = "/var/lib/coderd/workspace-uids";
/// The disk size of a workspace that has a disk but whose server no longer sets one.
const DEFAULT_DISK_BYTES: u64 = 10 << 30;
/// How long `start` waits for bwrap to report the sandbox it made.
const SANDBOX_REPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct LocalProvisionerOptions {
    pub data_dir: PathBuf,
    /// Run without a sandbox when bubblewrap is missing (the owner's explicit choice).
    pub allow_unsandboxed: bool,
    /// The `coder` binary the agent runs from.
    pub agent_binary: PathBuf,
    /// The server's Unix socket for agents; its directory is bound into every sandbox.
    pub agent_socket: PathBuf,
    /// The host uids workspaces run as when the server is root, one per workspace.
    pub uid_range: std::ops::RangeInclusive<u32>,
    /// The server's URL, when agents reach it through `agent_socket` with TLS of their own (a
    /// provisioner daemon forwards the socket to the server); `None`: the socket is the server.
    pub agent_url: Option<url::Url>,
}

#[derive(Debug)]
pub struct LocalProvisioner {
    options: LocalProvisionerOptions,
    workspaces_dir: PathBuf,
    mode: SandboxMode,
    cgroups: Cgroups,
    /// Held while a uid is chosen, so two starts never pick the same one.
    allocating: Mutex<()>,
}

impl LocalProvisioner {
    pub async fn new(options: LocalProvisionerOptions) -> Self {
        let mode = sandbox::detect(options.allow_unsandboxed).await;
        let cgroups = match mode {
            SandboxMode::Isolated { .. } => Cgroups::detect(),
            _ => Cgroups::None("the server is not root".into()),
        };
        let provisioner = LocalProvisioner {
            workspaces_dir: options.data_dir.join("workspaces"),
            options,
            mode,
            cgroups,
            allocating: Mutex::new(()),
        };
        provisioner.warn_about_gaps();
        provisioner
    }

    /// One line at start naming each protection this host cannot give.
    fn warn_about_gaps(&self) {
        match &self.mode {
            SandboxMode::Isolated { bwrap } => {
                let missing = self.cgroups.missing();
                if missing.is_empty() {
                    tracing::info!(bwrap = %bwrap.display(), "workspaces run in bubblewrap sandboxes as their own users, with cgroup limits");
                } else {
                    tracing::warn!(
                        missing = %missing.join("; "),
                        "workspaces run in bubblewrap sandboxes as their own users, but without some cgroup limits: a workspace may use more processes, memory or CPU than configured"
                    );
                }
            }
            SandboxMode::SameUser { bwrap } => tracing::warn!(
                bwrap = %bwrap.display(),
                "the server is not root: workspaces run in bubblewrap sandboxes under the server's own uid, without per-workspace users or cgroup limits. Run the server as root for full isolation."
            ),
            SandboxMode::Unsandboxed => tracing::warn!(
                "!!! WORKSPACES ARE NOT SANDBOXED !!! --allow-unsandboxed-workspaces is set: \
                 workspace commands run as the server's own user and can read and change \
                 anything it can, including its database. Install bubblewrap and remove the flag."
            ),
            SandboxMode::Missing(why) => {
                tracing::warn!(reason = %why, "workspace builds will fail until this is fixed")
            }
        }
    }

    pub fn mode(&self) -> &SandboxMode {
        &self.mode
    }

    /// Where the workspace lives: on a capped disk of its own when it has one, or when one is
    /// configured and the workspace has no home yet (a home made before the cap stays where it
    /// is, rather than being hidden under an empty disk).
    fn layout(&self, workspace: WorkspaceId, limits: Option<&WorkspaceLimits>) -> WorkspaceLayout {
        let layout = WorkspaceLayout::new(&self.workspaces_dir, &workspace.to_string());
        let capped = matches!(self.mode, SandboxMode::Isolated { .. })
            && limits.is_some_and(|l| l.disk_bytes.is_some());
        if disk::image(&layout.root).exists() || (capped && !layout.home.exists()) {
            layout.on_disk()
        } else {
            layout
        }
    }

    /// The workspace's host uid: kept in its directory from the first start, otherwise the
    /// lowest free one of the range. Uids are claimed host-wide (`UID_REGISTRY`), not per data
    /// directory, so that two servers on one host never give two workspaces the same user.
    fn uid_for(&self, layout: &WorkspaceLayout) -> Result<u32, ProvisionError> {
        if !matches!(self.mode, SandboxMode::Isolated { .. }) {
            return Ok(NAMESPACE_UID);
        }
        let _guard = self.allocating.lock().unwrap_or_else(|p| p.into_inner());
        let registry = Path::new(UID_REGISTRY);
        std::fs::create_dir_all(registry)
            .map_err(|e| ProvisionError::internal(&format!("cannot create {UID_REGISTRY}"), e))?;
        let owner = layout.root.to_string_lossy().into_owned();
        let file = layout.root.join("uid");
        let running = uids_with_processes();
        if let Some(uid) = read_uid(&file) {
            match claim(registry, uid, &owner, &running) {
                Ok(true) => return Ok(uid),
                Ok(false) => {}
                Err(e) => {
                    return Err(ProvisionError::internal(
                        "cannot claim the workspace's uid",
                        e,
                    ));
                }
            }
        }
        for uid in self.options.uid_range.clone() {
            match claim(registry, uid, &owner, &running) {
                Ok(true) => {
                    std::fs::write(&file, uid.to_string()).map_err(|e| {
                        ProvisionError::internal("cannot record the workspace's uid", e)
                    })?;
                    return Ok(uid);
                }
                Ok(false) => {}
                Err(e) => return Err(ProvisionError::internal("cannot claim a workspace uid", e)),
            }
        }
        Err(ProvisionError::Unavailable(format!(
            "Every workspace uid in --workspace-uid-range ({}-{}) is taken on this host, by a workspace or by processes still running as it; widen the range, delete workspaces, or end those processes.",
            self.options.uid_range.start(),
            self.options.uid_range.end()
        )))
    }

    /// Stops the recorded sandbox, if it still runs, and removes its cgroups.
    async fn kill_sandbox(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        let layout = self.layout(workspace, None);
        let cgroups = self.cgroups.clone();
        blocking(move || {
            if let Some(record) = read_record(&layout.record) {
                record.kill();
                for _ in 0..250 {
                    if !record.alive() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if record.alive() {
                    return Err(ProvisionError::Internal(format!(
                        "the workspace's sandbox (pid {}) did not exit within 5 s of SIGKILL",
                        record.pid
                    )));
                }
            }
            cgroups.destroy(&workspace.to_string());
            let _ = std::fs::remove_file(&layout.record);
            disk::unmount(&layout.root);
            Ok(())
        })
        .await
    }

    /// Makes the home (from the template on the first start), a fresh /tmp, and the identity
    /// files, owned by the workspace's user.
    async fn prepare(
        &self,
        layout: &WorkspaceLayout,
        spec: &StartSpec,
        uid: u32,
    ) -> Result<Vec<String>, ProvisionError> {
        let layout = layout.clone();
        let archive = spec.archive.clone();
        let token = spec.agent_token.clone();
        let chown = matches!(self.mode, SandboxMode::Isolated { .. });
        let disk_bytes = spec.limits.disk_bytes;
        blocking(move || {
            let io = |what: &str, e: std::io::Error| ProvisionError::internal(what, e);
            std::fs::create_dir_all(&layout.root)
                .map_err(|e| io("cannot create the workspace directory", e))?;
            let mut notes = Vec::new();
            let on_disk = layout.home.starts_with(disk::mount_point(&layout.root));
            if on_disk {
                let size = disk_bytes.unwrap_or(DEFAULT_DISK_BYTES);
                if disk::ensure(&layout.root, size, uid)
                    .map_err(|e| io("cannot prepare the workspace's disk", e))?
                {
                    notes.push(format!(
                        "Made the workspace's disk ({} MiB for its home and /tmp).",
                        size >> 20
                    ));
                }
            }
            if !layout.home.exists() {
                // Extract next to the home and rename, so a failed copy never leaves a half home.
                let staging = layout.home.with_file_name("home.new");
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
                if chown {
                    chown_tree(&staging, uid)
                        .map_err(|e| io("cannot give the home to the workspace user", e))?;
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
            write_private(&layout.token, token.as_bytes())
                .map_err(|e| io("cannot write the agent's token", e))?;
            let (passwd, group) = sandbox::identity_files(uid);
            std::fs::write(&layout.passwd, passwd).map_err(|e| io("cannot write passwd", e))?;
            std::fs::write(&layout.group, group).map_err(|e| io("cannot write group", e))?;
            let _ = std::fs::remove_file(&layout.info);
            if chown {
                use std::os::unix::fs::PermissionsExt;
                chown_path(&layout.home, uid)
                    .map_err(|e| io("cannot give the home to the workspace user", e))?;
                chown_path(&layout.tmp, uid)
                    .map_err(|e| io("cannot give /tmp to the workspace user", e))?;
                chown_path(&layout.token, uid)
                    .map_err(|e| io("cannot give the token to the workspace user", e))?;
                std::fs::set_permissions(&layout.tmp, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|e| io("cannot set the workspace /tmp's mode", e))?;
            }
            Ok(notes)
        })
        .await
    }

    /// Starts the workspace's agent in its sandbox, held at the gate until its cgroups are
    /// attached, then released; the pid is the sandbox's outer process.
    async fn spawn_sandbox(
        &self,
        layout: &WorkspaceLayout,
        spec: &StartSpec,
        uid: u32,
    ) -> Result<u32, ProvisionError> {
        let agent_socket = &self.options.agent_socket;
        let socket_dir = agent_socket
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        let socket_name = agent_socket
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rlimits = Self::rlimits(&spec.limits);
        let launch = AgentLaunch {
            layout,
            hostname: &spec.workspace_name,
            uid,
            agent_binary: &self.options.agent_binary,
            socket_dir: &socket_dir,
            socket_name: &socket_name,
            host_network: spec.limits.host_network,
            agent_url: self.options.agent_url.as_ref(),
            rlimits: &rlimits,
        };
        let mut cmd = sandbox::agent_command(&self.mode, &launch);
        let log = std::fs::File::create(&layout.agent_log)
            .map_err(|e| ProvisionError::internal("cannot create the agent's log", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| ProvisionError::internal("cannot create the agent's log", e))?;
        cmd.stdout(log).stderr(log_err);
        let mut child = cmd
            .spawn()
            .map_err(|e| ProvisionError::internal("cannot start the workspace's sandbox", e))?;
        let pid = child.id().unwrap_or(0);
        if matches!(self.mode, SandboxMode::Isolated { .. }) {
            let limits = Limits {
                max_processes: spec.limits.max_processes,
                memory_bytes: spec.limits.memory_bytes,
                cpu_cores: spec.limits.cpu_cores,
            };
            let name = spec.workspace_id.to_string();
            let attached = self
                .cgroups
                .create(&name, &limits)
                .and_then(|()| self.cgroups.attach(&name, pid));
            if let Err(e) = attached {
                sandbox::kill(pid);
                return Err(ProvisionError::internal(
                    "cannot put the workspace into its cgroups",
                    e,
                ));
            }
        }
        // Now it may go on.
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(b"go\n")
                .await
                .map_err(|e| ProvisionError::internal("cannot start the workspace's sandbox", e))?;
        }
        // The sandbox lives on its own; the waiter only reaps it should it end while we run.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(pid)
    }

    /// What identifies the running sandbox for a later stop: bubblewrap's report of the
    /// process it started inside (waited for), or the agent itself when unsandboxed.
    async fn sandbox_record(
        &self,
        layout: &WorkspaceLayout,
        pid: u32,
    ) -> Result<SandboxRecord, ProvisionError> {
        let record = match &self.mode {
            SandboxMode::Isolated { .. } | SandboxMode::SameUser { .. } => {
                let deadline = tokio::time::Instant::now() + SANDBOX_REPORT_TIMEOUT;
                loop {
                    if let Some(init) = sandbox::child_pid(&layout.info) {
                        break SandboxRecord::of(init, false);
                    }
                    if tokio::time::Instant::now() > deadline || sandbox::start_time(pid).is_none()
                    {
                        let log = std::fs::read_to_string(&layout.agent_log).unwrap_or_default();
                        sandbox::kill(pid);
                        return Err(ProvisionError::Internal(format!(
                            "bubblewrap did not start the workspace's sandbox: {}",
                            log.trim()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            _ => SandboxRecord::of(pid, true),
        };
        record.ok_or_else(|| {
            ProvisionError::Internal(
                "the workspace's sandbox exited at once; see agent.log in its directory".into(),
            )
        })
    }

    fn rlimits(l: &WorkspaceLimits) -> Vec<String> {
        let mut out = vec!["--core=0".to_owned()];
        if let Some(n) = l.max_processes {
            out.push(format!("--nproc={n}"));
        }
        if let Some(bytes) = l.max_file_bytes {
            out.push(format!("--fsize={bytes}"));
        }
        out
    }
}

/// Writes a file only its owner can read, replacing any earlier one.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    file.write_all(data)
}

/// Claims `uid` for the workspace at `owner`: true when it is now (or already was) its own. A
/// claim whose workspace directory no longer exists is taken over, but never while a process
/// still runs as that uid: a workspace whose directory was deleted under it (or whose server
/// died without stopping it) would otherwise share its uid, signals, and process limit with
/// the newcomer.
fn claim(registry: &Path, uid: u32, owner: &str, running: &HashSet<u32>) -> std::io::Result<bool> {
    let path = registry.join(uid.to_string());
    let held_by_owner = std::fs::read_to_string(&path).is_ok_and(|holder| holder == owner);
    if !held_by_owner && running.contains(&uid) {
        return Ok(false);
    }
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(owner.as_bytes())?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                if holder == owner {
                    return Ok(true);
                }
                if !holder.is_empty() && Path::new(&holder).exists() {
                    return Ok(false);
                }
                // Its workspace is gone: the uid is free again.
                std::fs::remove_file(&path)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The uids that processes on this host run as (the owners of the `/proc/<pid>` directories).
fn uids_with_processes() -> HashSet<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| entry.metadata().ok().map(|meta| meta.uid()))
        .collect()
}

/// Gives the workspace's uid back.
fn release_uid(root: &Path) {
    if let Some(uid) = read_uid(&root.join("uid")) {
        let path = Path::new(UID_REGISTRY).join(uid.to_string());
        if std::fs::read_to_string(&path).is_ok_and(|holder| Path::new(&holder) == root) {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn read_uid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn read_record(file: &Path) -> Option<SandboxRecord> {
    serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
) -> Result<T, ProvisionError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ProvisionError::internal("a provisioning task failed", e))?
}

fn chown_path(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
}

fn chown_tree(path: &Path, uid: u32) -> std::io::Result<()> {
    chown_path(path, uid)?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
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

/// Kills the sandboxes of every workspace under `data_dir`; for tests and tools that must
/// leave nothing running behind them (a server never does this on its own: workspaces
/// outlive it).
pub fn kill_all_sandboxes(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("workspaces")) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(record) = read_record(&entry.path().join("sandbox.json")) {
            record.kill();
        }
        disk::unmount(&entry.path());
        release_uid(&entry.path());
        if let Some(name) = entry.file_name().to_str() {
            Cgroups::detect().destroy(name);
        }
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    fn name(&self) -> &'static str {
        "local"
    }

    fn unavailable(&self) -> Option<String> {
        match &self.mode {
            SandboxMode::Missing(why) => Some(why.clone()),
            _ => None,
        }
    }

    async fn start(&self, spec: StartSpec) -> Result<Vec<String>, ProvisionError> {
        if let Some(why) = self.unavailable() {
            return Err(ProvisionError::Unavailable(why));
        }
        let workspace = spec.workspace_id;
        self.kill_sandbox(workspace).await?;
        let layout = self.layout(workspace, Some(&spec.limits));
        std::fs::create_dir_all(&layout.root)
            .map_err(|e| ProvisionError::internal("cannot create the workspace directory", e))?;
        let uid = self.uid_for(&layout)?;
        let mut notes = self.prepare(&layout, &spec, uid).await?;
        let pid = self.spawn_sandbox(&layout, &spec, uid).await?;
        let record = self.sandbox_record(&layout, pid).await?;
        let text = serde_json::to_string(&record)
            .map_err(|e| ProvisionError::internal("cannot record the sandbox", e))?;
        std::fs::write(&layout.record, text)
            .map_err(|e| ProvisionError::internal("cannot record the sandbox", e))?;
        notes.push(match &self.mode {
            SandboxMode::Isolated { .. } => {
                format!("Started the agent in a sandbox as uid {uid}, with its own network, process and memory limits.")
            }
            SandboxMode::SameUser { .. } => {
                "Started the agent in a sandbox (under the server's uid: the server is not root).".into()
            }
            _ => "Started the agent WITHOUT a sandbox (--allow-unsandboxed-workspaces).".into(),
        });
        Ok(notes)
    }
    async fn stop(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.kill_sandbox(workspace).await
    }

    async fn delete(&self, workspace: WorkspaceId) -> Result<(), ProvisionError> {
        self.kill_sandbox(workspace).await?;
        let root = self.layout(workspace, None).root;
        blocking(move || {
            release_uid(&root);
            remove_tree(&root)
                .map_err(|e| ProvisionError::internal("cannot remove the workspace directory", e))
        })
        .await
    }

    async fn inventory(&self) -> Result<Vec<Held>, ProvisionError> {
        let dir = self.workspaces_dir.clone();
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(ProvisionError::internal("cannot list workspaces", e)),
            };
            Ok(entries
                .flatten()
                .filter_map(|entry| {
                    let id = uuid::Uuid::parse_str(entry.file_name().to_str()?).ok()?;
                    let running =
                        read_record(&entry.path().join("sandbox.json")).is_some_and(|r| r.alive());
                    Some(Held {
                        workspace: WorkspaceId(id),
                        running,
                    })
                })
                .collect())
        })
        .await
    }
}
