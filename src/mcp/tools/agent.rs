//! Tools that act inside a running workspace: commands, files, apps and agent logs.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::MAX_RESULT_CHARS;
use super::args::{self, object, string};
use super::{
    ALL, Hints, READ_ONLY, ToolContext, ToolDef, ToolError, ToolOutput, ToolResult, parse_args,
    to_value,
};
use crate::domain::agent::{FileEdit, FileEdits};
use crate::domain::{AgentId, Scope};
use crate::service::{AgentTarget, ExecuteRequest};

/// Commands default to 60 s and never run longer than 300 s from MCP (claude.ai's tool timeout).
const DEFAULT_TIMEOUT_MS: u64 = 60_000;
const MAX_TIMEOUT_MS: u64 = 300_000;
/// Room left in a result for the fields around a command's output.
const OUTPUT_BUDGET: usize = MAX_RESULT_CHARS - 2_000;
/// Default bytes returned by one read.
const DEFAULT_READ_LIMIT: u64 = 64 * 1024;

const EDITS: Hints = Hints {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: false,
};

pub const BASH: ToolDef = ToolDef {
    name: "coder_workspace_bash",
    title: "Run a command in a workspace",
    description: "Runs a bash command in the workspace's home directory and returns its output \
                  (stdout and stderr) and exit code. Default timeout 60 s, at most 300 s; with \
                  background=true it starts the command and returns at once with a process_id \
                  (read its output with coder_workspace_process_output). The workspace must \
                  be running (see coder_workspace_readiness).",
    scope: Scope::WorkspacesExec,
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
    },
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "command",
                    string("The bash command to run, e.g. \"ls -la && git status\"."),
                ),
                (
                    "timeout_ms",
                    json!({"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS, "description": "Stop the command after this many milliseconds (default 60000, at most 300000)."}),
                ),
                (
                    "background",
                    json!({"type": "boolean", "description": "Start the command and return at once, leaving it running (for servers and long jobs)."}),
                ),
            ],
            &["workspace", "command"],
        )
    },
};

pub const LS: ToolDef = ToolDef {
    name: "coder_workspace_ls",
    title: "List a directory in a workspace",
    description: "Lists a directory in the workspace: names, whether each is a directory or a \
                  symlink, and sizes. Paths are relative to the home directory or absolute under it.",
    scope: Scope::WorkspacesExec,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "path",
                    string("The directory, e.g. \".\" or \"/home/coder/src\"."),
                ),
            ],
            &["workspace", "path"],
        )
    },
};

pub const READ_FILE: ToolDef = ToolDef {
    name: "coder_workspace_read_file",
    title: "Read a file in a workspace",
    description: "Reads a text file from the workspace, from offset (bytes) for up to limit bytes \
                  (default 65536); has_more says whether the file continues.",
    scope: Scope::WorkspacesExec,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "path",
                    string("The file, relative to the home directory or absolute under it."),
                ),
                (
                    "offset",
                    json!({"type": "integer", "minimum": 0, "description": "Byte offset to start at (default 0)."}),
                ),
                (
                    "limit",
                    json!({"type": "integer", "minimum": 1, "maximum": OUTPUT_BUDGET, "description": "Most bytes to return (default 65536)."}),
                ),
            ],
            &["workspace", "path"],
        )
    },
};

pub const WRITE_FILE: ToolDef = ToolDef {
    name: "coder_workspace_write_file",
    title: "Write a file in a workspace",
    description: "Writes content to a file in the workspace, creating parent directories and \
                  replacing any existing file.",
    scope: Scope::WorkspacesExec,
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    },
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "path",
                    string("The file, relative to the home directory or absolute under it."),
                ),
                ("content", string("The whole new content of the file.")),
            ],
            &["workspace", "path", "content"],
        )
    },
};

fn edits_schema() -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "description": "Search/replace edits applied in order. Each search must match exactly once unless replace_all is true.",
        "items": {
            "type": "object",
            "properties": {
                "search": { "type": "string", "description": "The exact text to find." },
                "replace": { "type": "string", "description": "The text to put in its place." },
                "replace_all": { "type": "boolean", "description": "Replace every occurrence." }
            },
            "required": ["search", "replace"],
            "additionalProperties": false
        }
    })
}

pub const EDIT_FILE: ToolDef = ToolDef {
    name: "coder_workspace_edit_file",
    title: "Edit a file in a workspace",
    description: "Applies search/replace edits to one file. Nothing is written unless every edit applies.",
    scope: Scope::WorkspacesExec,
    hints: EDITS,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                ("path", string("The file to edit.")),
                ("edits", edits_schema()),
            ],
            &["workspace", "path", "edits"],
        )
    },
};

pub const EDIT_FILES: ToolDef = ToolDef {
    name: "coder_workspace_edit_files",
    title: "Edit several files in a workspace",
    description: "Applies search/replace edits to several files at once. Nothing is written \
                  unless every edit of every file applies.",
    scope: Scope::WorkspacesExec,
    hints: EDITS,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "files",
                    json!({
                        "type": "array",
                        "minItems": 1,
                        "description": "The files and the edits for each.",
                        "items": {
                            "type": "object",
                            "properties": { "path": { "type": "string", "description": "The file to edit." }, "edits": edits_schema() },
                            "required": ["path", "edits"],
                            "additionalProperties": false
                        }
                    }),
                ),
            ],
            &["workspace", "files"],
        )
    },
};

pub const LIST_APPS: ToolDef = ToolDef {
    name: "coder_workspace_list_apps",
    title: "List a workspace's apps",
    description: "Lists the apps a workspace's template declares (slug, name, URL or port), with their health.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || object(&[("workspace", args::workspace())], &["workspace"]),
};

pub const AGENT_LOGS: ToolDef = ToolDef {
    name: "coder_get_workspace_agent_logs",
    title: "Get workspace agent logs",
    description: "Returns the agent's log: the startup script's output. Pass the agent id from \
                  coder_get_workspace, or the workspace name.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[(
                "workspace_agent_id",
                string("The agent's id, or a workspace as [owner/]name."),
            )],
            &["workspace_agent_id"],
        )
    },
};

fn target(raw: &str) -> AgentTarget {
    AgentTarget::Workspace(raw.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BashArgs {
    workspace: String,
    command: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    background: bool,
}

pub async fn bash(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: BashArgs = parse_args(tool, raw)?;
    if a.command.trim().is_empty() {
        return Err(ToolError::new("command must not be empty."));
    }
    let timeout_ms = a.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(ToolError::new(format!(
            "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}."
        )));
    }
    let result = ctx
        .state
        .services
        .agent_execute(
            &ctx.principal,
            &target(&a.workspace),
            ExecuteRequest {
                command: a.command,
                timeout_ms: Some(timeout_ms),
                background: a.background,
            },
        )
        .await?;
    let (output, cut) = fit(&result.output, OUTPUT_BUDGET);
    let mut value = json!({
        "output": output,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "truncated": result.truncated || cut,
    });
    if let Some(id) = &result.process_id {
        value["process_id"] = json!(id);
    }
    if result.timed_out {
        value["hint"] = json!(format!(
            "The command was stopped after {timeout_ms} ms. Raise timeout_ms (at most {MAX_TIMEOUT_MS}) or run it with background=true, then follow it with coder_workspace_process_output."
        ));
    }
    Ok(value.into())
}

/// Keeps the end of long output (where errors usually are), marking what was dropped.
fn fit(output: &str, budget: usize) -> (String, bool) {
    if output.len() <= budget {
        return (output.to_owned(), false);
    }
    let mut start = output.len() - budget;
    while !output.is_char_boundary(start) {
        start += 1;
    }
    (
        format!(
            "[... {start} bytes of output omitted ...]\n{}",
            &output[start..]
        ),
        true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    workspace: String,
    path: String,
}

pub async fn ls(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: PathArgs = parse_args(tool, raw)?;
    let listing = ctx
        .state
        .services
        .agent_list_dir(&ctx.principal, &target(&a.workspace), &a.path)
        .await?;
    ToolOutput::of(&listing)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    workspace: String,
    path: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: Option<u64>,
}

pub async fn read_file(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: ReadArgs = parse_args(tool, raw)?;
    let limit = a
        .limit
        .unwrap_or(DEFAULT_READ_LIMIT)
        .clamp(1, OUTPUT_BUDGET as u64);
    let content = ctx
        .state
        .services
        .agent_read_file(
            &ctx.principal,
            &target(&a.workspace),
            &a.path,
            a.offset,
            limit,
        )
        .await?;
    ToolOutput::of(&content)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    workspace: String,
    path: String,
    content: String,
}

pub async fn write_file(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: WriteArgs = parse_args(tool, raw)?;
    let path = ctx
        .state
        .services
        .agent_write_file(&ctx.principal, &target(&a.workspace), &a.path, &a.content)
        .await?;
    Ok(json!({ "absolute_path_string": path, "bytes_written": a.content.len() }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    workspace: String,
    path: String,
    edits: Vec<FileEdit>,
}

pub async fn edit_file(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: EditArgs = parse_args(tool, raw)?;
    let results = ctx
        .state
        .services
        .agent_edit_files(
            &ctx.principal,
            &target(&a.workspace),
            vec![FileEdits {
                path: a.path,
                edits: a.edits,
            }],
        )
        .await?;
    Ok(json!({ "files": to_value(&results)? }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditFilesArgs {
    workspace: String,
    files: Vec<FileEdits>,
}

pub async fn edit_files(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: EditFilesArgs = parse_args(tool, raw)?;
    let results = ctx
        .state
        .services
        .agent_edit_files(&ctx.principal, &target(&a.workspace), a.files)
        .await?;
    Ok(json!({ "files": to_value(&results)? }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceOnly {
    workspace: String,
}

pub async fn list_apps(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: WorkspaceOnly = parse_args(tool, raw)?;
    let apps = ctx
        .state
        .services
        .agent_apps(&ctx.principal, &target(&a.workspace))
        .await?;
    Ok(json!({ "apps": to_value(&apps)? }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentArg {
    workspace_agent_id: String,
}

pub async fn agent_logs(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: AgentArg = parse_args(tool, raw)?;
    let target = match uuid::Uuid::parse_str(a.workspace_agent_id.trim()) {
        // A UUID may name an agent or a workspace; agents are what Coder's tool takes.
        Ok(id) => AgentTarget::Agent(AgentId(id)),
        Err(_) => target(&a.workspace_agent_id),
    };
    let logs = match ctx
        .state
        .services
        .agent_logs(&ctx.principal, &target, 0)
        .await
    {
        Err(crate::domain::DomainError::NotFound(_)) if matches!(target, AgentTarget::Agent(_)) => {
            ctx.state
                .services
                .agent_logs(
                    &ctx.principal,
                    &AgentTarget::Workspace(a.workspace_agent_id.clone()),
                    0,
                )
                .await?
        }
        other => other?,
    };
    Ok(json!({ "logs": to_value(&logs)? }).into())
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn long_output_keeps_its_end() {
        let output = format!("{}END", "x".repeat(100));
        let (kept, cut) = fit(&output, 10);
        assert!(cut && kept.ends_with("END") && kept.starts_with("[... 93 bytes"));
        assert_eq!(fit("short", 10), ("short".to_owned(), false));
    }
}
