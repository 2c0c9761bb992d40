//! The contract between the server and `coder agent`: what the server asks an agent to do, what
//! the agent answers, and what the agent reports. Shared by both sides, so it is plain data.
//!
//! The server sends `AgentCall`s over the agent's WebSocket (`/api/v2/workspaceagents/me/rpc`)
//! and the agent answers each with an `AgentReply` carrying the same id; the agent reports its
//! lifecycle and startup logs over plain HTTP, so those land in the database whichever replica
//! receives them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::LogLevel;

/// The version of this contract; an agent and a server with different versions refuse each
/// other with a message naming both, instead of misreading messages.
pub const AGENT_API_VERSION: &str = "1.0";

/// The header every agent request carries its token in, as Coder's agents do.
pub const TOKEN_HEADER: &str = "Coder-Session-Token";
/// The header carrying the agent's contract version.
pub const VERSION_HEADER: &str = "Coder-Agent-Api-Version";
/// The path of the agent's WebSocket (Coder's).
pub const RPC_PATH: &str = "/api/v2/workspaceagents/me/rpc";
/// The largest message either side sends: a file read is capped at 1 MiB, which JSON escaping
/// can at most multiply by six.
pub const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// Why an operation inside the workspace failed; each says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum AgentOpError {
    /// The request cannot work (a path outside the workspace, a failed edit).
    #[error("{0}")]
    Invalid(String),
    /// A file, directory or process does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Too many processes, or the workspace is not ready for this.
    #[error("{0}")]
    Busy(String),
    /// The agent failed (I/O, spawning); the agent logs the cause.
    #[error("{0}")]
    Internal(String),
}

impl AgentOpError {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        AgentOpError::Internal(format!("{context}: {err}"))
    }
}

/// A command to run in the workspace's shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub command: String,
    pub timeout_ms: u64,
    /// Start it as a background process and answer at once with its id.
    #[serde(default)]
    pub background: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// stdout and stderr, interleaved as written.
    pub output: String,
    pub exit_code: i32,
    pub timed_out: bool,
    pub truncated: bool,
    /// The background process's id, when the command was started in the background.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub absolute_path_string: String,
    pub is_dir: bool,
    pub is_symlink: bool,
    pub size: u64,
}

/// Coder's `LSResponse` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    pub absolute_path_string: String,
    pub contents: Vec<DirEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    pub absolute_path_string: String,
    pub content: String,
    pub mime_type: String,
    /// The file's whole size in bytes.
    pub size: u64,
    pub offset: u64,
    /// Bytes returned.
    pub length: u64,
    /// More of the file follows what was returned.
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEdit {
    pub search: String,
    pub replace: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    pub replace_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEdits {
    pub path: String,
    pub edits: Vec<FileEdit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditResult {
    pub absolute_path_string: String,
    pub replacements: usize,
}

/// A background process the agent started, running or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The agent's id for it (`p1`, `p2`, ...), stable for the agent's life.
    pub id: String,
    /// Its process id inside the workspace.
    pub pid: u32,
    pub command: String,
    pub running: bool,
    /// Set once it has ended: its exit code, or 128 + the signal that ended it.
    pub exit_code: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Bytes of output it has written so far.
    pub output_size: u64,
    /// Where its output is kept inside the workspace.
    pub log_path: String,
}

/// A slice of a background process's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessOutput {
    pub process: ProcessInfo,
    pub output: String,
    pub offset: u64,
    pub length: u64,
    /// More output follows what was returned (read again from `offset + length`).
    pub has_more: bool,
}

/// The signals a caller may send a background process (to its whole process group).
pub const PROCESS_SIGNALS: [&str; 6] = [
    "SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1",
];

/// What the server asks an agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum AgentRequest {
    Execute(ExecRequest),
    ListDir {
        path: String,
    },
    ReadFile {
        path: String,
        offset: u64,
        limit: u64,
    },
    WriteFile {
        path: String,
        content: String,
    },
    EditFiles {
        files: Vec<FileEdits>,
    },
    ListProcesses,
    ProcessOutput {
        process_id: String,
        offset: u64,
        limit: u64,
    },
    SignalProcess {
        process_id: String,
        signal: String,
    },
}

impl AgentRequest {
    /// How long the server waits for the answer: a command's own timeout plus slack for
    /// collecting its output; file operations are bounded by their size caps.
    pub fn reply_timeout(&self) -> std::time::Duration {
        match self {
            AgentRequest::Execute(e) if !e.background => {
                std::time::Duration::from_millis(e.timeout_ms) + std::time::Duration::from_secs(15)
            }
            _ => std::time::Duration::from_secs(60),
        }
    }
}

/// One request on the wire, server to agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCall {
    pub id: u64,
    #[serde(flatten)]
    pub request: AgentRequest,
}

/// One answer on the wire, agent to server: `result` holds the operation's own result type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReply {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: AgentOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    Result(Value),
    Error(AgentOpError),
}

/// What an agent needs to set its workspace up: `GET /api/v2/workspaceagents/me/manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentManifest {
    pub agent_id: uuid::Uuid,
    pub agent_name: String,
    pub workspace_id: uuid::Uuid,
    pub workspace_name: String,
    pub owner_name: String,
    /// The working directory, as an absolute path inside the workspace.
    pub directory: String,
    /// Variables every process in the workspace gets.
    pub environment_variables: std::collections::BTreeMap<String, String>,
    pub startup_script: String,
    pub startup_script_timeout_seconds: u64,
    pub api_version: String,
}

/// One line of startup output: `PATCH /api/v2/workspaceagents/me/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLogLine {
    pub created_at: DateTime<Utc>,
    pub level: LogLevel,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchAgentLogs {
    pub logs: Vec<AgentLogLine>,
}

/// `POST /api/v2/workspaceagents/me/report-lifecycle`, Coder's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLifecycle {
    pub state: String,
    pub changed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_replies_have_a_flat_wire_form() {
        let call = AgentCall {
            id: 7,
            request: AgentRequest::ListDir { path: "src".into() },
        };
        let wire = serde_json::to_value(&call).unwrap_or_default();
        assert_eq!(
            wire,
            serde_json::json!({"id": 7, "method": "list_dir", "params": {"path": "src"}})
        );
        let unit = serde_json::to_value(AgentCall {
            id: 8,
            request: AgentRequest::ListProcesses,
        })
        .unwrap_or_default();
        assert_eq!(
            unit,
            serde_json::json!({"id": 8, "method": "list_processes"})
        );
        let reply: AgentReply = serde_json::from_value(
            serde_json::json!({"id": 7, "error": {"kind": "not_found", "message": "gone"}}),
        )
        .unwrap_or(AgentReply {
            id: 0,
            outcome: AgentOutcome::Result(Value::Null),
        });
        assert_eq!(
            reply.outcome,
            AgentOutcome::Error(AgentOpError::NotFound("gone".into()))
        );
    }
}
