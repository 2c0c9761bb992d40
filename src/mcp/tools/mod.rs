//! The MCP tools: each one's name, schema, scope and hints, and dispatch into the services.
//! Names and parameters are Coder's (`codersdk/toolsdk`).

mod agent;
mod args;
mod chatgpt;
mod processes;
mod templates;
mod user;
mod workspaces;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::rendered::ResultJson;
use super::toolset::Toolset;
use crate::domain::{DomainError, Principal, Scope, ScopeSet};
use crate::web::AppState;

/// MCP tool annotations (2025-03-26 `ToolAnnotations`).
#[derive(Debug, Clone, Copy)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

/// Reads and changes nothing outside the server's own view.
pub const READ_ONLY: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};

pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub scope: Scope,
    pub hints: Hints,
    pub toolsets: &'static [Toolset],
    /// Whether a call waits on a workspace (its agent runs a command or touches files, or the
    /// tool waits for it to become ready): such calls do not take one of the endpoint's slots
    /// for the server's own work (`mcp::admission`), so a few slow commands cannot hold up
    /// everyone else's calls.
    pub waits_on_workspace: bool,
    pub input_schema: fn() -> Value,
}

/// Who is calling, with what.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub state: AppState,
    pub principal: Principal,
}

/// A failure the caller can fix; it becomes an `isError` result. One with `retry_after_secs`
/// (the database is unreachable) becomes a JSON-RPC error instead, answered with 503, since the
/// same call is likely to work later and nothing about the call is wrong.
#[derive(Debug, Clone)]
pub struct ToolError {
    pub message: String,
    /// For argument errors: the schema the arguments must follow.
    pub expected_schema: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            expected_schema: None,
            retry_after_secs: None,
        }
    }
}

impl From<DomainError> for ToolError {
    fn from(err: DomainError) -> Self {
        let message = match err {
            DomainError::Invalid { message, fields } if !fields.is_empty() => {
                let details: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.detail))
                    .collect();
                format!("{message} {}", details.join("; "))
            }
            DomainError::Internal(cause) => {
                tracing::error!(error = %cause, "MCP tool failed");
                "The server failed to complete the tool call. Try again; if it keeps failing, tell an owner.".into()
            }
            DomainError::Unavailable {
                message,
                retry_after_secs,
            } => {
                return ToolError {
                    retry_after_secs: Some(retry_after_secs),
                    ..ToolError::new(message)
                };
            }
            other => other.to_string(),
        };
        ToolError::new(message)
    }
}

pub type ToolResult = Result<ToolOutput, ToolError>;

/// The longest result a tool returns whole: claude.ai drops tool results longer than this
/// (mcp-requirements §6.1). Tools with long output budget for it; `result` cuts the rest.
pub const MAX_RESULT_CHARS: usize = 150_000;

/// A tool's result: its compact JSON text, which is both the `structuredContent` and the text
/// block of the MCP result, and, when the tool wrote it alongside (`TwinJson`), that text
/// already escaped as a JSON string; possibly shared with a list cache (`shared`).
#[derive(Debug)]
pub struct ToolOutput(Arc<ResultJson>);

impl ToolOutput {
    /// Straight from a typed view: serializing a struct is two to three times cheaper than
    /// building a `Value` tree and serializing that (docs/benchmarks.md).
    pub fn of<T: serde::Serialize>(view: &T) -> Result<Self, ToolError> {
        let json = serde_json::to_string(view)
            .map_err(|e| ToolError::from(crate::domain::DomainError::internal(e)))?;
        Ok(Self::owned(json, None))
    }

    /// A result rendered before and kept (a current workspace list), sent again as it is.
    pub fn shared(result: Arc<ResultJson>) -> Self {
        Self(result)
    }

    fn owned(json: String, text: Option<Vec<u8>>) -> Self {
        Self(Arc::new(ResultJson { json, text }))
    }

    /// The JSON text, compact as serde_json writes it, and its string form if already written.
    pub fn into_result(self) -> Arc<ResultJson> {
        self.0
    }
}

impl From<Value> for ToolOutput {
    fn from(value: Value) -> Self {
        // Not `value.to_string()`: `Display` writes through `fmt::Write` piece by piece, about
        // 2.5 times slower than serializing into a buffer.
        let json = serde_json::to_string(&value).unwrap_or_default();
        Self::owned(json, None)
    }
}

/// Workspace operations and discovery: in the standard and the workspace toolsets.
const ALL: &[Toolset] = &[Toolset::Standard, Toolset::Workspace];
/// Template administration: standard toolset only.
const ADMIN: &[Toolset] = &[Toolset::Standard];

static TOOLS: &[ToolDef] = &[
    user::GET_AUTHENTICATED_USER,
    workspaces::LIST_WORKSPACES,
    workspaces::GET_WORKSPACE,
    workspaces::CREATE_WORKSPACE,
    workspaces::CREATE_WORKSPACE_BUILD,
    workspaces::READINESS,
    workspaces::BUILD_LOGS,
    agent::AGENT_LOGS,
    templates::LIST_TEMPLATES,
    templates::VERSION_PARAMETERS,
    templates::UPLOAD_TAR_FILE,
    templates::CREATE_TEMPLATE_VERSION,
    templates::VERSION_LOGS,
    templates::CREATE_TEMPLATE,
    templates::UPDATE_ACTIVE_VERSION,
    templates::DELETE_TEMPLATE,
    agent::BASH,
    agent::LS,
    agent::READ_FILE,
    agent::WRITE_FILE,
    agent::EDIT_FILE,
    agent::EDIT_FILES,
    agent::LIST_APPS,
    processes::PROCESS_LIST,
    processes::PROCESS_OUTPUT,
    processes::PROCESS_SIGNAL,
    chatgpt::SEARCH,
    chatgpt::FETCH,
];

/// Every tool, in the stable order `tools/list` uses.
pub fn catalog() -> &'static [ToolDef] {
    TOOLS
}

pub fn find(name: &str) -> Option<&'static ToolDef> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The tools of `toolset` that `principal`'s scopes allow.
pub fn visible<'a>(
    toolset: Toolset,
    principal: &'a Principal,
) -> impl Iterator<Item = &'static ToolDef> + 'a {
    TOOLS
        .iter()
        .filter(move |t| t.toolsets.contains(&toolset) && principal.has_scope(t.scope))
}

/// Every scope the toolset's tools need: what a 401 challenge asks for.
pub fn scopes_for(toolset: Toolset) -> ScopeSet {
    TOOLS
        .iter()
        .filter(|t| t.toolsets.contains(&toolset))
        .map(|t| t.scope)
        .collect()
}

/// Runs the tool.
pub async fn call(ctx: &ToolContext, tool: &ToolDef, args: Map<String, Value>) -> ToolResult {
    match tool.name {
        "coder_get_authenticated_user" => user::get_authenticated_user(ctx, tool, args).await,
        "coder_list_workspaces" => workspaces::list(ctx, tool, args).await,
        "coder_get_workspace" => workspaces::get(ctx, tool, args).await,
        "coder_create_workspace" => workspaces::create(ctx, tool, args).await,
        "coder_create_workspace_build" => workspaces::build(ctx, tool, args).await,
        "coder_workspace_readiness" => workspaces::readiness(ctx, tool, args).await,
        "coder_get_workspace_build_logs" => workspaces::build_logs(ctx, tool, args).await,
        "coder_get_workspace_agent_logs" => agent::agent_logs(ctx, tool, args).await,
        "coder_list_templates" => templates::list(ctx, tool, args).await,
        "coder_template_version_parameters" => templates::parameters(ctx, tool, args).await,
        "coder_upload_tar_file" => templates::upload(ctx, tool, args).await,
        "coder_create_template_version" => templates::create_version(ctx, tool, args).await,
        "coder_get_template_version_logs" => templates::version_logs(ctx, tool, args).await,
        "coder_create_template" => templates::create_template(ctx, tool, args).await,
        "coder_update_template_active_version" => {
            templates::update_active_version(ctx, tool, args).await
        }
        "coder_delete_template" => templates::delete(ctx, tool, args).await,
        "coder_workspace_bash" => agent::bash(ctx, tool, args).await,
        "coder_workspace_ls" => agent::ls(ctx, tool, args).await,
        "coder_workspace_read_file" => agent::read_file(ctx, tool, args).await,
        "coder_workspace_write_file" => agent::write_file(ctx, tool, args).await,
        "coder_workspace_edit_file" => agent::edit_file(ctx, tool, args).await,
        "coder_workspace_edit_files" => agent::edit_files(ctx, tool, args).await,
        "coder_workspace_list_apps" => agent::list_apps(ctx, tool, args).await,
        "coder_workspace_process_list" => processes::list(ctx, tool, args).await,
        "coder_workspace_process_output" => processes::output(ctx, tool, args).await,
        "coder_workspace_process_signal" => processes::signal(ctx, tool, args).await,
        "search" => chatgpt::search(ctx, tool, args).await,
        "fetch" => chatgpt::fetch(ctx, tool, args).await,
        other => Err(ToolError::new(format!(
            "The tool {other} is not available."
        ))),
    }
}

/// Serializes a view for a part of a result; views always serialize, so a failure is an
/// internal error.
pub fn to_value<T: serde::Serialize>(view: &T) -> Result<Value, ToolError> {
    serde_json::to_value(view).map_err(|e| ToolError::from(crate::domain::DomainError::internal(e)))
}

/// Reads the arguments into `T`; a mismatch names the problem and returns the expected schema.
pub fn parse_args<T: DeserializeOwned>(
    tool: &ToolDef,
    args: Map<String, Value>,
) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| ToolError {
        expected_schema: Some((tool.input_schema)()),
        ..ToolError::new(format!("Invalid arguments for {}: {e}", tool.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_well_formed() {
        for tool in catalog() {
            assert!(
                tool.name.len() <= 64
                    && tool
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            );
            assert!(!tool.title.is_empty() && !tool.description.is_empty());
            let schema = (tool.input_schema)();
            assert_eq!(schema["type"], "object", "{}", tool.name);
            assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
            if let Some(props) = schema["properties"].as_object() {
                for (name, prop) in props {
                    assert!(
                        prop["description"].is_string(),
                        "{}.{name} needs a description",
                        tool.name
                    );
                }
            }
        }
        let names: std::collections::HashSet<_> = catalog().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), catalog().len(), "tool names are unique");
    }
}
