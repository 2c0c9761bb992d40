//! The bubblewrap sandbox a local workspace's agent, and everything it starts, runs in.
//!
//! Inside, the workspace sees a minimal read-only system (`/usr`, `/bin`, `/lib*`, the parts of
//! `/etc` programs need, with a `passwd` of its own), its own `/proc`, `/dev`, `/tmp` and home,
//! the agent binary, and a directory holding the server's agent socket: no `/run`, no host
//! sockets, no data directory. It has its own PID, IPC, UTS and (by default) network namespace,
//! so only loopback exists and neither the database nor another workspace's ports are
//! reachable; the agent talks to the server over the socket.
//!
//! When the server runs as root, bwrap runs as root (no user namespace) and the agent is
//! started through `prlimit` and `setpriv`: it runs as the workspace's own host uid, with no
//! capabilities, `no_new_privs`, and resource limits, in the workspace's cgroups. A server that
//! is not root can only use an unprivileged user namespace: the workspace then runs under the
//! server's own host uid (still without seeing the server's files), which the server warns
//! about at start.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::Command;

use crate::domain::WORKSPACE_HOME;

/// Where the agent binary appears inside the sandbox.
pub const AGENT_BINARY_INSIDE: &str = "/.coder/bin/coder";
/// Where the directory holding the server's agent socket appears inside the sandbox.
pub const SOCKET_DIR_INSIDE: &str = "/.coder/run";
/// Where the agent's token file appears inside the sandbox. A file, not an argument or a
/// variable on bwrap's command line, which every user of the host can read in `ps`.
pub const TOKEN_FILE_INSIDE: &str = "/.coder/agent-token";

/// The PATH inside workspaces.
const PATH: &str =
    "/home/coder/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The top-level directories of a minimal system, bound read-only when they exist (or recreated
/// as the same symlink on merged-/usr systems).
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of `/etc` programs need: name resolution, certificates, Debian's alternatives, the
/// dynamic loader's cache, time zones, shell start-up files. Never `shadow`, `ssh`, or the
/// server's own configuration.
const ETC_FILES: [&str; 24] = [
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "shells",
    "ssl",
    "timezone",
];

/// How workspace processes are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxMode {
    /// bwrap as root; the workspace runs as its own uid, with limits (see the module doc).
    Isolated { bwrap: PathBuf },
    /// bwrap in an unprivileged user namespace, as the server's uid.
    SameUser { bwrap: PathBuf },
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
    /// The generated `/etc/passwd` and `/etc/group` of the sandbox.
    pub passwd: PathBuf,
    pub group: PathBuf,
    /// Where the running sandbox is recorded (`SandboxRecord`).
    pub record: PathBuf,
    /// bwrap's report of the sandbox it made (`--info-fd`).
    pub info: PathBuf,
    /// The agent's own log (its stderr), for when it cannot reach the server.
    pub agent_log: PathBuf,
    /// The agent's token, readable only by the workspace's user.
    pub token: PathBuf,
}

impl WorkspaceLayout {
    /// The same workspace with its home and `/tmp` on its own capped disk (`disk.rs`).
    pub fn on_disk(mut self) -> Self {
        let disk = super::disk::mount_point(&self.root);
        self.home = disk.join("home");
        self.tmp = disk.join("tmp");
        self
    }

    pub fn new(workspaces_dir: &Path, id: &str) -> Self {
        let root = workspaces_dir.join(id);
        WorkspaceLayout {
            home: root.join("home"),
            tmp: root.join("tmp"),
            passwd: root.join("passwd"),
            group: root.join("group"),
            record: root.join("sandbox.json"),
            info: root.join("bwrap-info.json"),
            agent_log: root.join("agent.log"),
            token: root.join("agent-token"),
            root,
        }
    }
}

/// Everything the sandbox of one start needs.
#[derive(Debug, Clone)]
pub struct AgentLaunch<'a> {
    pub layout: &'a WorkspaceLayout,
    pub hostname: &'a str,
    /// The host uid (and gid) the workspace runs as, in `Isolated` mode.
    pub uid: u32,
    pub agent_binary: &'a Path,
    pub socket_dir: &'a Path,
    pub socket_name: &'a str,
    /// Share the host's network namespace (outbound access; loses network isolation).
    pub host_network: bool,
    /// The server's URL when the socket only forwards to it (the agent speaks TLS itself).
    pub agent_url: Option<&'a url::Url>,
    /// `prlimit` options for the agent and everything it starts.
    pub rlimits: &'a [String],
}

/// Finds bubblewrap and checks that it can build a sandbox on this host.
pub async fn detect(allow_unsandboxed: bool) -> SandboxMode {
    let Some(bwrap) = find_in_path("bwrap") else {
        return if allow_unsandboxed {
            SandboxMode::Unsandboxed
        } else {
            SandboxMode::Missing(
                "Workspaces run in a bubblewrap sandbox, but `bwrap` is not installed on this server. \
                 Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap) and restart \
                 the server, or start it with --allow-unsandboxed-workspaces to run workspaces without \
                 isolation (not recommended)."
                    .into(),
            )
        };
    };
    let root = rustix::process::getuid().is_root();
    if root {
        for tool in ["setpriv", "prlimit"] {
            if find_in_path(tool).is_none() {
                return SandboxMode::Missing(format!(
                    "Workspaces started by a root server switch to their own user with `{tool}` (Debian package util-linux), which is not installed. Install it and restart the server."
                ));
            }
        }
    }
    match smoke_test(&bwrap, root).await {
        Ok(()) if root => SandboxMode::Isolated { bwrap },
        Ok(()) => SandboxMode::SameUser { bwrap },
        Err(why) if allow_unsandboxed => {
            tracing::warn!(reason = %why, "bubblewrap cannot create a sandbox here; running workspaces UNSANDBOXED as allowed");
            SandboxMode::Unsandboxed
        }
        Err(why) => SandboxMode::Missing(format!(
            "Workspaces run in a bubblewrap sandbox, but bwrap cannot create one on this server: {why}. \
             Run the server as root, or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), \
             or run it with --allow-unsandboxed-workspaces to accept running workspaces without isolation."
        )),
    }
}

/// The command that starts the agent. It waits for one line on stdin before it does anything,
/// so that the caller can put it into the workspace's cgroups first; with bwrap, its sandbox
/// report goes to `layout.info`.
pub fn agent_command(mode: &SandboxMode, launch: &AgentLaunch<'_>) -> Command {
    let layout = launch.layout;
    let (program, args): (PathBuf, Vec<String>) = match mode {
        SandboxMode::Isolated { bwrap } => (bwrap.clone(), bwrap_args(launch, true)),
        SandboxMode::SameUser { bwrap } => (bwrap.clone(), bwrap_args(launch, false)),
        SandboxMode::Unsandboxed | SandboxMode::Missing(_) => {
            (launch.agent_binary.to_path_buf(), vec!["agent".to_owned()])
        }
    };
    // `read` holds the start until the caller has attached the cgroups; fd 3 takes bwrap's
    // sandbox report. Both happen in a shell so no pre-exec hook is needed.
    let script = "read -r _ || exit 1; exec \"$@\" 3>\"$CODER_SANDBOX_INFO\"";
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg("coder-sandbox")
        .arg(&program)
        .args(&args);
    cmd.env_clear()
        .env("CODER_SANDBOX_INFO", &layout.info)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        // Its own session: a signal to the server's process group does not reach it, and it
        // outlives the server.
        .process_group(0)
        .kill_on_drop(false);
    if matches!(mode, SandboxMode::Unsandboxed) {
        let home = layout.home.to_string_lossy();
        let socket = launch.socket_dir.join(launch.socket_name);
        let token = layout.token.to_string_lossy();
        for (k, v) in agent_env(&home, launch.agent_url, &socket.to_string_lossy(), &token) {
            cmd.env(k, v);
        }
        cmd.env("TMPDIR", &layout.tmp).current_dir(&layout.home);
    }
    cmd
}

/// bwrap's arguments: the workspace's file system, namespaces and environment, then (as root,
/// `isolated`) the limits and the drop to the workspace's own uid, then the agent.
fn bwrap_args(launch: &AgentLaunch<'_>, isolated: bool) -> Vec<String> {
    let mut a: Vec<String> = system_args();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    workspace_mounts(launch, &mut push);
    push(&[
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        launch.hostname,
        "--new-session",
        "--chdir",
        WORKSPACE_HOME,
        "--info-fd",
        "3",
        "--clearenv",
    ]);
    if !launch.host_network {
        push(&["--unshare-net"]);
    }
    if !isolated {
        // Unprivileged: a user namespace maps the server's uid to the workspace user.
        let id = launch.uid.to_string();
        push(&[
            "--unshare-user",
            "--uid",
            &id,
            "--gid",
            &id,
            "--cap-drop",
            "ALL",
        ]);
    }
    let socket_inside = format!("{SOCKET_DIR_INSIDE}/{}", launch.socket_name);
    for (k, v) in agent_env(
        WORKSPACE_HOME,
        launch.agent_url,
        &socket_inside,
        TOKEN_FILE_INSIDE,
    ) {
        push(&["--setenv", &k, &v]);
    }
    push(&["--"]);
    if isolated {
        drop_to_workspace_user(launch, &mut push);
    }
    push(&[AGENT_BINARY_INSIDE, "agent"]);
    a
}

/// What the workspace sees of the file system besides the read-only system: its own passwd,
/// /proc, /dev, home, /tmp, the agent binary, the agent socket's directory and its token.
fn workspace_mounts(launch: &AgentLaunch<'_>, push: &mut impl FnMut(&[&str])) {
    let layout = launch.layout;
    // Directories bwrap makes for mount points are private (0700) unless told otherwise, and
    // the workspace user must be able to walk them.
    for dir in [
        "/etc",
        "/home",
        "/var",
        "/.coder",
        "/.coder/bin",
        SOCKET_DIR_INSIDE,
    ] {
        push(&["--perms", "0755", "--dir", dir]);
    }
    for name in ETC_FILES {
        let path = format!("/etc/{name}");
        push(&["--ro-bind-try", &path, &path]);
    }
    push(&[
        "--ro-bind",
        &layout.passwd.to_string_lossy(),
        "/etc/passwd",
        "--ro-bind",
        &layout.group.to_string_lossy(),
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        &layout.home.to_string_lossy(),
        WORKSPACE_HOME,
        "--bind",
        &layout.tmp.to_string_lossy(),
        "/tmp",
        "--symlink",
        "../tmp",
        "/var/tmp",
        "--ro-bind",
        &launch.agent_binary.to_string_lossy(),
        AGENT_BINARY_INSIDE,
        "--ro-bind",
        &launch.socket_dir.to_string_lossy(),
        SOCKET_DIR_INSIDE,
        "--ro-bind",
        &layout.token.to_string_lossy(),
        TOKEN_FILE_INSIDE,
    ]);
}

/// A root server's last step before the agent: the workspace's rlimits, then its own uid and
/// gid with no supplementary groups, no capabilities (bounding set included) and
/// no_new_privs.
fn drop_to_workspace_user(launch: &AgentLaunch<'_>, push: &mut impl FnMut(&[&str])) {
    push(&["/usr/bin/prlimit"]);
    for limit in launch.rlimits {
        push(&[limit]);
    }
    let id = launch.uid.to_string();
    push(&[
        "--",
        "/usr/bin/setpriv",
        "--reuid",
        &id,
        "--regid",
        &id,
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]);
}

/// The minimal system, read-only: each top-level directory bound, or on merged-/usr systems
/// recreated as the same symlink.
fn system_args() -> Vec<String> {
    let mut args = Vec::new();
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match std::fs::read_link(path) {
            Ok(target) => {
                args.extend([
                    "--symlink".to_owned(),
                    target.to_string_lossy().into_owned(),
                ]);
                args.push(dir.to_owned());
            }
            Err(_) if path.is_dir() => {
                args.extend(["--ro-bind", dir, dir].map(str::to_owned));
            }
            Err(_) => {}
        }
    }
    args
}

/// The agent's variables: where the server is (the socket itself, or a URL reached through
/// the socket) and where its token is.
fn agent_env(
    home: &str,
    agent_url: Option<&url::Url>,
    socket: &str,
    token_file: &str,
) -> Vec<(String, String)> {
    let (url, via) = match agent_url {
        Some(url) => (url.as_str().trim_end_matches('/').to_owned(), Some(socket)),
        None => (format!("unix://{socket}"), None),
    };
    let mut env: Vec<(String, String)> = [
        ("HOME", home),
        ("PATH", PATH),
        ("USER", "coder"),
        ("LOGNAME", "coder"),
        ("SHELL", "/bin/bash"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("CODER_AGENT_URL", &url),
        ("CODER_AGENT_TOKEN_FILE", token_file),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(socket) = via {
        env.push(("CODER_AGENT_SOCKET".to_owned(), socket.to_owned()));
    }
    env
}

/// Binds the agent socket that sandboxes' agents dial (its directory is bound into each),
/// replacing one a previous run left behind. It is open to every local user: sandboxes run as
/// their own uids, and an agent still needs its token.
pub fn bind_agent_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().context("the agent socket has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on the agent socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// The `/etc/passwd` and `/etc/group` of a workspace whose user is `uid`.
pub fn identity_files(uid: u32) -> (String, String) {
    (
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\ncoder:x:{uid}:{uid}:coder:{WORKSPACE_HOME}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        format!("root:x:0:\ncoder:x:{uid}:\nnogroup:x:65534:\n"),
    )
}

/// A running sandbox, as recorded on disk so that a restarted server can still stop it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxRecord {
    /// The host pid of the sandbox's init (its PID namespace dies with it), or of the agent
    /// when unsandboxed.
    pub pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22), so a reused pid is never killed.
    pub start_time: u64,
    /// Whether `pid` leads a process group to kill (unsandboxed agents).
    pub group: bool,
}

impl SandboxRecord {
    pub fn of(pid: u32, group: bool) -> Option<SandboxRecord> {
        Some(SandboxRecord {
            pid,
            start_time: start_time(pid)?,
            group,
        })
    }

    /// Whether the recorded process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Kills it (and with a PID namespace's init, everything in the namespace).
    pub fn kill(&self) {
        if !self.alive() {
            return;
        }
        if self.group
            && let Some(pid) = pid_of(self.pid)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        kill(self.pid);
    }
}

fn pid_of(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// SIGKILL to one process; a process already gone is fine.
pub fn kill(pid: u32) {
    if let Some(pid) = pid_of(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The host pid of the sandbox's init, from bwrap's `--info-fd` report.
pub fn child_pid(info: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(info).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("child-pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Builds a throwaway sandbox with the namespaces the real ones use.
async fn smoke_test(bwrap: &Path, root: bool) -> Result<(), String> {
    let mut cmd = Command::new(bwrap);
    cmd.args(system_args()).args([
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--die-with-parent",
        "--new-session",
    ]);
    if !root {
        cmd.args(["--unshare-user", "--cap-drop", "ALL"]);
    }
    let output = cmd
        .args(["--", "/usr/bin/true"])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_are_read_past_a_command_name_with_spaces() {
        let own = std::process::id();
        assert!(start_time(own).is_some());
        assert_eq!(start_time(u32::MAX), None);
        let record = SandboxRecord::of(own, false);
        assert!(record.is_some_and(|r| r.alive()));
    }

    #[test]
    fn the_workspace_user_is_coder_with_its_own_uid() {
        let (passwd, group) = identity_files(1_000_123);
        assert!(passwd.contains("coder:x:1000123:1000123:coder:/home/coder:/bin/bash"));
        assert!(group.contains("coder:x:1000123:"));
    }
}
