//! Tools for background processes in a workspace: list them, read their output, signal them.
//! Long jobs start with `coder_workspace_bash` and `background: true`, which returns the
//! process id these tools take.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, object, string};
use super::{ALL, Hints, READ_ONLY, ToolContext, ToolDef, ToolOutput, ToolResult, parse_args};
use crate::domain::Scope;
use crate::domain::agent::PROCESS_SIGNALS;
use crate::service::AgentTarget;

fn process_id() -> Value {
    string("The process id coder_workspace_bash returned for a background command, e.g. \"p1\".")
}

pub const PROCESS_LIST: ToolDef = ToolDef {
    name: "coder_workspace_process_list",
    title: "List background processes in a workspace",
    description: "Lists the workspace's background processes (started by coder_workspace_bash \
                  with background=true): id, command, whether each still runs, exit code, and \
                  how much output it has written.",
    scope: Scope::WorkspacesExec,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || object(&[("workspace", args::workspace())], &["workspace"]),
};

pub const PROCESS_OUTPUT: ToolDef = ToolDef {
    name: "coder_workspace_process_output",
    title: "Read a background process's output",
    description: "Reads a background process's output (stdout and stderr) from offset (bytes) \
                  for up to limit bytes (default 65536); has_more says whether more follows, and \
                  the process record says whether it still runs.",
    scope: Scope::WorkspacesExec,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                ("process_id", process_id()),
                (
                    "offset",
                    json!({"type": "integer", "minimum": 0, "description": "Byte offset to start at (default 0)."}),
                ),
                (
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": 1048576, "description": "Most bytes to return (default 65536)."}),
                ),
            ],
            &["workspace", "process_id"],
        )
    },
};

pub const PROCESS_SIGNAL: ToolDef = ToolDef {
    name: "coder_workspace_process_signal",
    title: "Signal a background process",
    description: "Sends a signal to a background process and everything it started (SIGTERM to \
                  ask it to stop, SIGKILL to end it at once).",
    scope: Scope::WorkspacesExec,
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    },
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                ("process_id", process_id()),
                (
                    "signal",
                    json!({"type": "string", "enum": PROCESS_SIGNALS, "description": "The signal to send."}),
                ),
            ],
            &["workspace", "process_id", "signal"],
        )
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceArg {
    workspace: String,
}

pub async fn list(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: WorkspaceArg = parse_args(tool, raw)?;
    let processes = ctx
        .state
        .services
        .agent_list_processes(&ctx.principal, &AgentTarget::Workspace(a.workspace))
        .await?;
    ToolOutput::of(&json!({ "processes": processes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputArgs {
    workspace: String,
    process_id: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: u64,
}

pub async fn output(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: OutputArgs = parse_args(tool, raw)?;
    let out = ctx
        .state
        .services
        .agent_process_output(
            &ctx.principal,
            &AgentTarget::Workspace(a.workspace),
            &a.process_id,
            a.offset,
            a.limit,
        )
        .await?;
    ToolOutput::of(&out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalArgs {
    workspace: String,
    process_id: String,
    signal: String,
}

pub async fn signal(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: SignalArgs = parse_args(tool, raw)?;
    let process = ctx
        .state
        .services
        .agent_signal_process(
            &ctx.principal,
            &AgentTarget::Workspace(a.workspace),
            &a.process_id,
            &a.signal,
        )
        .await?;
    ToolOutput::of(
        &json!({ "message": format!("Sent {} to {}.", a.signal, a.process_id), "process": process }),
    )
}
