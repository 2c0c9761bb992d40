//! The server's open-file limit, raised at start. Every client connection, agent, provisioner
//! daemon and database connection is a file descriptor, and the soft limit most systems start
//! processes with (1024) ends a server at about a thousand MCP clients with `EMFILE`
//! ("Too many open files"). The hard limit is the administrator's ceiling; raising the soft
//! limit to it needs no privilege (setrlimit(2)), as Go's runtime does for Coder since Go 1.19.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Below this the server warns: a thousand client connections, plus agents, daemons, the
/// database pool and the server's own files, with room to spare.
pub const WANTED_OPEN_FILES: u64 = 8192;

/// Linux refuses a limit above `fs.nr_open`, whose default is 2^20; an unlimited hard limit is
/// raised to this.
const HIGHEST_OPEN_FILES: u64 = 1 << 20;

/// What `raise` did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFileLimit {
    /// The soft limit was raised from `from` to `to`.
    Raised { from: u64, to: u64 },
    /// The soft limit was already at least the hard limit's.
    Unchanged(u64),
    /// The system refused to raise it (kept at `soft`).
    Refused { soft: u64, error: String },
}

impl OpenFileLimit {
    /// The soft limit the server runs with.
    pub fn soft(&self) -> u64 {
        match self {
            OpenFileLimit::Raised { to, .. } => *to,
            OpenFileLimit::Unchanged(soft) | OpenFileLimit::Refused { soft, .. } => *soft,
        }
    }
}

/// Raises the process's soft `RLIMIT_NOFILE` to its hard limit.
pub fn raise() -> OpenFileLimit {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let soft = current.unwrap_or(u64::MAX);
    let target = maximum.unwrap_or(u64::MAX).min(HIGHEST_OPEN_FILES);
    if soft >= target {
        return OpenFileLimit::Unchanged(soft);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => OpenFileLimit::Raised {
            from: soft,
            to: target,
        },
        Err(err) => OpenFileLimit::Refused {
            soft,
            error: err.to_string(),
        },
    }
}

/// Raises the limit and says so in the log, warning (with what to do) when it stays low.
pub fn raise_and_log() {
    let limit = raise();
    if let OpenFileLimit::Raised { from, to } = &limit {
        tracing::debug!(from, to, "raised the open file limit");
    }
    if let OpenFileLimit::Refused { error, .. } = &limit {
        tracing::warn!(%error, "could not raise the open file limit");
    }
    let soft = limit.soft();
    if soft < WANTED_OPEN_FILES {
        tracing::warn!(
            open_file_limit = soft,
            wanted = WANTED_OPEN_FILES,
            "the open file limit is low: the server fails with \"Too many open files\" past about \
             {soft} connections; raise the hard limit (systemd: LimitNOFILE=65536; a shell: \
             ulimit -Hn 65536; Docker: --ulimit nofile=65536:65536) and restart"
        );
    }
}
