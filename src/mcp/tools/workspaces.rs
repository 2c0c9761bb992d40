//! Workspace tools: list, get, create, build (start/stop/delete), readiness, build logs.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, object, string};
use super::{
    ALL, Hints, READ_ONLY, ToolContext, ToolDef, ToolError, ToolOutput, ToolResult, parse_args,
};
use crate::domain::{
    BuildId, Page, ParameterValue, Scope, TemplateId, TemplateVersionId, Transition,
    WorkspaceSummary,
};
use crate::mcp::twin::TwinJson;
use crate::service::UserSelector;
use crate::service::builds::CreateBuildRequest;
use crate::service::views::WorkspaceView;
use crate::service::workspaces::CreateWorkspaceRequest;

const CHANGES: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

pub const LIST_WORKSPACES: ToolDef = ToolDef {
    name: "coder_list_workspaces",
    title: "List workspaces",
    description: "Lists workspaces with their id, name, owner, template and status. By default \
                  your own; an owner may pass another user's name.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[(
                "owner",
                string("Whose workspaces: a username, or \"me\" (the default)."),
            )],
            &[],
        )
    },
};

pub const GET_WORKSPACE: ToolDef = ToolDef {
    name: "coder_get_workspace",
    title: "Get a workspace",
    description: "Returns one workspace in full: status, latest build with its job, agent \
                  (lifecycle, apps) and template. Use it to find agent and build ids.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || object(&[("workspace_id", args::workspace())], &["workspace_id"]),
};

pub const CREATE_WORKSPACE: ToolDef = ToolDef {
    name: "coder_create_workspace",
    title: "Create a workspace",
    description: "Creates a workspace from a template version and starts it. Get version ids \
                  from coder_list_templates (active_version_id) and the parameters it needs \
                  from coder_template_version_parameters. Then wait with \
                  coder_workspace_readiness before running commands.",
    scope: Scope::WorkspacesWrite,
    hints: CHANGES,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[
                (
                    "user",
                    string("The owner: \"me\" (the default) or, for owners, another username."),
                ),
                (
                    "template_version_id",
                    string(
                        "The template version to build, usually a template's active_version_id.",
                    ),
                ),
                (
                    "name",
                    string(
                        "The workspace name: letters, digits and single hyphens, at most 32 characters.",
                    ),
                ),
                (
                    "rich_parameters",
                    json!({
                        "type": "object",
                        "description": "Template parameter values by name, as strings, e.g. {\"cpu\": \"2\"}.",
                        "additionalProperties": { "type": "string" }
                    }),
                ),
            ],
            &["template_version_id", "name"],
        )
    },
};

pub const CREATE_WORKSPACE_BUILD: ToolDef = ToolDef {
    name: "coder_create_workspace_build",
    title: "Start, stop or delete a workspace",
    description: "Queues a build that starts, stops or deletes a workspace (optionally moving it \
                  to another template version). Deleting removes the workspace and its files. \
                  One build runs at a time; poll coder_get_workspace or coder_workspace_readiness.",
    scope: Scope::WorkspacesWrite,
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
    },
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[
                ("workspace_id", args::workspace()),
                (
                    "transition",
                    json!({"type": "string", "enum": ["start", "stop", "delete"], "description": "What to do: start, stop or delete."}),
                ),
                (
                    "template_version_id",
                    string(
                        "Build with this template version instead of the current one (an update).",
                    ),
                ),
            ],
            &["workspace_id", "transition"],
        )
    },
};

pub const READINESS: ToolDef = ToolDef {
    name: "coder_workspace_readiness",
    title: "Check whether a workspace is ready",
    description: "Reports whether a workspace can run commands now: state, reason and ready. \
                  With wait_ms it waits up to that long (at most 30000) for readiness. It never \
                  starts a stopped workspace; use coder_create_workspace_build for that.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: true,
    input_schema: || {
        object(
            &[
                ("workspace", args::workspace()),
                (
                    "wait_ms",
                    json!({"type": "integer", "minimum": 0, "maximum": 30000, "description": "Wait up to this many milliseconds for the workspace to become ready (0: answer at once)."}),
                ),
            ],
            &["workspace"],
        )
    },
};

pub const BUILD_LOGS: ToolDef = ToolDef {
    name: "coder_get_workspace_build_logs",
    title: "Get workspace build logs",
    description: "Returns the log lines of a workspace build (find the id in coder_get_workspace's \
                  latest_build.id), to see why a start or stop failed.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[("workspace_build_id", string("The build's id."))],
            &["workspace_build_id"],
        )
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    owner: Option<String>,
}

pub async fn list(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: ListArgs = parse_args(tool, raw)?;
    let owner = a
        .owner
        .filter(|o| !o.trim().is_empty())
        .unwrap_or_else(|| "me".into());
    if owner.contains(char::is_whitespace) {
        return Err(ToolError::new("owner is a single username or \"me\"."));
    }
    // The rendered answer is kept while the database says the list is unchanged, and sent
    // again as it is: writing it was most of this tool's CPU (docs/benchmarks.md, issue 19).
    let rendered = ctx
        .state
        .services
        .render_workspace_summaries(
            &ctx.principal,
            &format!("owner:{owner}"),
            Page {
                limit: 1000,
                offset: 0,
            },
            |found, count| list_json(found, count).into_result(),
        )
        .await?;
    Ok(ToolOutput::shared(rendered))
}

/// About how many bytes of JSON one workspace of a list takes (three ids, names, an icon path).
const LIST_ENTRY_LEN: usize = 400;

/// `{"workspaces":[...],"count":N}` with the fields an agent needs to pick a workspace, as
/// Coder's tool returns them (`MinimalWorkspace` in codersdk/toolsdk), written with its text
/// copy in one pass (`TwinJson`, docs/benchmarks.md).
fn list_json(found: &[WorkspaceSummary], count: i64) -> TwinJson {
    let mut out = TwinJson::with_capacity(64 + found.len() * LIST_ENTRY_LEN);
    out.raw("{");
    out.key("workspaces");
    out.raw("[");
    for (i, w) in found.iter().enumerate() {
        out.raw(if i == 0 { "{" } else { ",{" });
        out.key("id");
        out.uuid(w.id.0);
        out.raw(",");
        out.key("name");
        out.str(&w.name);
        out.raw(",");
        out.key("owner_name");
        out.str(&w.owner_name);
        out.raw(",");
        out.key("template_id");
        out.uuid(w.template_id.0);
        out.raw(",");
        out.key("template_name");
        out.str(&w.template_name);
        out.raw(",");
        out.key("template_display_name");
        out.str(&w.template_display_name);
        out.raw(",");
        out.key("template_icon");
        out.str(&w.template_icon);
        out.raw(",");
        out.key("template_active_version_id");
        out.uuid(w.template_active_version_id.0);
        out.raw(",");
        out.key("outdated");
        out.bool(w.outdated());
        out.raw(",");
        out.key("status");
        out.str_unescaped(w.status().as_str());
        out.raw(",");
        out.key("transition");
        out.str_unescaped(w.transition.as_str());
        out.raw("}");
    }
    out.raw("],");
    out.key("count");
    out.i64(count);
    out.raw("}");
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceArg {
    workspace_id: String,
}

pub async fn get(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: WorkspaceArg = parse_args(tool, raw)?;
    let view = ctx
        .state
        .services
        .get_workspace(&ctx.principal, &a.workspace_id)
        .await?;
    ToolOutput::of(&view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    #[serde(default)]
    user: Option<String>,
    template_version_id: String,
    name: String,
    #[serde(default)]
    rich_parameters: Option<Map<String, Value>>,
}

pub async fn create(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: CreateArgs = parse_args(tool, raw)?;
    let version = TemplateVersionId(args::uuid("template_version_id", &a.template_version_id)?);
    let mut values = Vec::new();
    for (name, value) in a.rich_parameters.unwrap_or_default() {
        let value = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(ToolError::new(format!(
                    "Parameter {name} must be a string, got {other}."
                )));
            }
        };
        values.push(ParameterValue { name, value });
    }
    let owner = UserSelector::parse(a.user.as_deref().filter(|u| !u.is_empty()).unwrap_or("me"));
    let view = ctx
        .state
        .services
        .create_workspace(
            &ctx.principal,
            &owner,
            CreateWorkspaceRequest {
                name: a.name,
                template_id: None::<TemplateId>,
                template_version_id: Some(version),
                rich_parameter_values: values,
            },
        )
        .await?;
    ToolOutput::of(&view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildArgs {
    workspace_id: String,
    transition: String,
    #[serde(default)]
    template_version_id: Option<String>,
}

pub async fn build(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: BuildArgs = parse_args(tool, raw)?;
    let transition = Transition::parse(&a.transition)
        .ok_or_else(|| ToolError::new("transition must be start, stop or delete."))?;
    let version = a
        .template_version_id
        .filter(|v| !v.is_empty())
        .map(|v| args::uuid("template_version_id", &v).map(TemplateVersionId))
        .transpose()?;
    let view = ctx
        .state
        .services
        .create_workspace_build(
            &ctx.principal,
            &a.workspace_id,
            CreateBuildRequest {
                transition,
                template_version_id: version,
                rich_parameter_values: None,
            },
        )
        .await?;
    ToolOutput::of(&view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadinessArgs {
    workspace: String,
    #[serde(default)]
    wait_ms: Option<u64>,
}

const MAX_WAIT_MS: u64 = 30_000;
const POLL: Duration = Duration::from_millis(250);

pub async fn readiness(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: ReadinessArgs = parse_args(tool, raw)?;
    let wait = a.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ToolError::new(format!(
            "wait_ms must be between 0 and {MAX_WAIT_MS}."
        )));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
    loop {
        let view = ctx
            .state
            .services
            .get_workspace(&ctx.principal, &a.workspace)
            .await?;
        let (state, reason, ready, settled) = assess(&view);
        let expired = tokio::time::Instant::now() >= deadline;
        if ready || settled || expired {
            return Ok(json!({
                "workspace_id": view.id,
                "state": state,
                "reason": reason,
                "ready": ready,
                "wait_expired": wait > 0 && expired && !ready,
            })
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// (state, reason, ready, settled): settled states will not become ready without a new build.
fn assess(view: &WorkspaceView) -> (&'static str, String, bool, bool) {
    let build = &view.latest_build;
    let lifecycle = build
        .resources
        .iter()
        .flat_map(|r| r.agents.iter())
        .map(|a| a.lifecycle_state)
        .next()
        .unwrap_or("off");
    match (build.status, lifecycle) {
        ("running", "ready") => ("ready", "The workspace is running and its agent is ready.".into(), true, true),
        ("running", "start_error") => (
            "start_error",
            "The workspace runs but its startup script failed; commands work, see coder_get_workspace_agent_logs.".into(),
            false,
            true,
        ),
        ("running", "start_timeout") => (
            "start_timeout",
            "The startup script exceeded its timeout; commands work, see coder_get_workspace_agent_logs.".into(),
            false,
            true,
        ),
        ("running", _) => ("starting", "The agent is running the startup script.".into(), false, false),
        ("pending" | "starting", _) => ("starting", "The workspace is being built.".into(), false, false),
        ("stopping" | "deleting" | "canceling", s) => (
            "transitioning",
            format!("The workspace is {s} and will not become ready; start it again afterwards."),
            false,
            true,
        ),
        ("stopped" | "canceled", _) => (
            "stopped",
            "The workspace is stopped. Start it with coder_create_workspace_build transition=start.".into(),
            false,
            true,
        ),
        ("failed", _) => (
            "failed",
            "The last build failed; see coder_get_workspace_build_logs, then start it again.".into(),
            false,
            true,
        ),
        ("deleted", _) => ("deleted", "The workspace was deleted.".into(), false, true),
        (other, _) => ("unknown", format!("The workspace status is {other}."), false, true),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildLogArgs {
    workspace_build_id: String,
}

pub async fn build_logs(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: BuildLogArgs = parse_args(tool, raw)?;
    let id = BuildId(args::uuid("workspace_build_id", &a.workspace_build_id)?);
    let (logs, finished) = ctx
        .state
        .services
        .workspace_build_logs(&ctx.principal, id, 0)
        .await?;
    Ok(json!({ "logs": logs, "finished": finished }).into())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::domain::{JobStatus, WorkspaceId};
    use proptest::prelude::*;
    use serde::Serialize;

    /// The list as it was serialized through serde before `list_json`: the reference for its
    /// bytes.
    #[derive(Serialize)]
    struct WorkspaceList<'a> {
        workspaces: Vec<MinimalWorkspace<'a>>,
        count: i64,
    }

    #[derive(Serialize)]
    struct MinimalWorkspace<'a> {
        id: uuid::Uuid,
        name: &'a str,
        owner_name: &'a str,
        template_id: uuid::Uuid,
        template_name: &'a str,
        template_display_name: &'a str,
        template_icon: &'a str,
        template_active_version_id: uuid::Uuid,
        outdated: bool,
        status: &'static str,
        transition: &'static str,
    }

    fn summary(name: &str, display: &str, icon: &str, outdated: bool) -> WorkspaceSummary {
        let active = TemplateVersionId(uuid::Uuid::new_v4());
        WorkspaceSummary {
            id: WorkspaceId(uuid::Uuid::new_v4()),
            name: name.into(),
            owner_name: "alice".into(),
            template_id: TemplateId(uuid::Uuid::new_v4()),
            template_name: "docker".into(),
            template_display_name: display.into(),
            template_icon: icon.into(),
            template_active_version_id: active,
            build_template_version_id: if outdated {
                TemplateVersionId(uuid::Uuid::new_v4())
            } else {
                active
            },
            transition: Transition::Stop,
            job_status: JobStatus::Succeeded,
        }
    }

    fn check(found: &[WorkspaceSummary], count: i64) {
        let reference = WorkspaceList {
            workspaces: found
                .iter()
                .map(|w| MinimalWorkspace {
                    id: w.id.0,
                    name: &w.name,
                    owner_name: &w.owner_name,
                    template_id: w.template_id.0,
                    template_name: &w.template_name,
                    template_display_name: &w.template_display_name,
                    template_icon: &w.template_icon,
                    template_active_version_id: w.template_active_version_id.0,
                    outdated: w.outdated(),
                    status: w.status().as_str(),
                    transition: w.transition.as_str(),
                })
                .collect(),
            count,
        };
        let expected = serde_json::to_string(&reference).expect("serializable");
        let (json, text) = list_json(found, count).finish();
        assert_eq!(json, expected);
        let expected_text = serde_json::to_string(&expected).expect("serializable");
        assert_eq!(String::from_utf8(text).expect("utf-8"), expected_text);
    }

    #[test]
    fn the_list_is_written_byte_for_byte_as_serde_wrote_it() {
        check(&[], 0);
        check(
            &[
                summary("dev", "Docker \"dev\" \\ box\n", "/icon/docker.svg", false),
                summary("b", "Ünïcödé ☃", "", true),
            ],
            7,
        );
    }

    proptest! {
        #[test]
        fn any_names_are_written_as_serde_writes_them(
            name in any::<String>(), display in any::<String>(), icon in any::<String>(),
            outdated in any::<bool>(), count in any::<i64>(),
        ) {
            check(&[summary(&name, &display, &icon, outdated)], count);
        }
    }
}
