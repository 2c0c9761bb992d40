//! Template tools: discovery (list, parameters) and administration (upload, versions, create,
//! promote, delete).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, no_args, object, string};
use super::{
    ADMIN, ALL, Hints, READ_ONLY, ToolContext, ToolDef, ToolError, ToolOutput, ToolResult,
    parse_args, to_value,
};
use crate::domain::{FileId, Scope, TemplateId, TemplateVersionId};
use crate::service::{CreateTemplateRequest, CreateTemplateVersionRequest};

const WRITES: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};

pub const LIST_TEMPLATES: ToolDef = ToolDef {
    name: "coder_list_templates",
    title: "List templates",
    description: "Lists the templates workspaces can be created from, with each one's id, name, \
                  description and active_version_id (what coder_create_workspace needs).",
    scope: Scope::TemplatesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: no_args,
};

pub const VERSION_PARAMETERS: ToolDef = ToolDef {
    name: "coder_template_version_parameters",
    title: "Get a template version's parameters",
    description: "Lists the parameters a template version takes: name, type, default, options, \
                  validation, and whether it is required or mutable. Pass values to \
                  coder_create_workspace as rich_parameters.",
    scope: Scope::TemplatesRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[("template_version_id", string("The template version's id."))],
            &["template_version_id"],
        )
    },
};

pub const UPLOAD_TAR_FILE: ToolDef = ToolDef {
    name: "coder_upload_tar_file",
    title: "Upload template files",
    description: "Packs the given files into a tar archive and uploads it; returns the file id \
                  for coder_create_template_version. A template needs a coder.yaml manifest at \
                  its root (see docs/templates.md). Owners only.",
    scope: Scope::TemplatesWrite,
    hints: WRITES,
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[(
                "files",
                json!({
                    "type": "object",
                    "description": "File contents by relative path, e.g. {\"coder.yaml\": \"...\"}.",
                    "additionalProperties": { "type": "string" }
                }),
            )],
            &["files"],
        )
    },
};

pub const CREATE_TEMPLATE_VERSION: ToolDef = ToolDef {
    name: "coder_create_template_version",
    title: "Create a template version",
    description: "Imports an uploaded archive as a template version (a job that validates the \
                  manifest; check coder_get_template_version_logs). Owners only.",
    scope: Scope::TemplatesWrite,
    hints: WRITES,
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[
                ("file_id", string("The id coder_upload_tar_file returned.")),
                (
                    "template_id",
                    string("Add the version to this existing template."),
                ),
            ],
            &["file_id"],
        )
    },
};

pub const VERSION_LOGS: ToolDef = ToolDef {
    name: "coder_get_template_version_logs",
    title: "Get template version import logs",
    description: "Returns the import job's log lines for a template version, including manifest errors with their line.",
    scope: Scope::TemplatesRead,
    hints: READ_ONLY,
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[("template_version_id", string("The template version's id."))],
            &["template_version_id"],
        )
    },
};

pub const CREATE_TEMPLATE: ToolDef = ToolDef {
    name: "coder_create_template",
    title: "Create a template",
    description: "Creates a template whose active version is the given, successfully imported \
                  version. Owners only.",
    scope: Scope::TemplatesWrite,
    hints: WRITES,
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[
                (
                    "name",
                    string("The template name: letters, digits and single hyphens."),
                ),
                ("display_name", string("A human-friendly name.")),
                (
                    "description",
                    string("What workspaces from this template are for."),
                ),
                (
                    "version_id",
                    string("The imported template version to make active."),
                ),
                ("icon", string("An icon URL or path.")),
            ],
            &["name", "display_name", "description", "version_id"],
        )
    },
};

pub const UPDATE_ACTIVE_VERSION: ToolDef = ToolDef {
    name: "coder_update_template_active_version",
    title: "Promote a template version",
    description: "Makes a version the template's active version, used by new workspaces and updates. Owners only.",
    scope: Scope::TemplatesWrite,
    hints: Hints {
        read_only: false,
        destructive: false,
        idempotent: true,
        open_world: false,
    },
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[
                ("template_id", string("The template's id.")),
                ("template_version_id", string("The version to make active.")),
            ],
            &["template_id", "template_version_id"],
        )
    },
};

pub const DELETE_TEMPLATE: ToolDef = ToolDef {
    name: "coder_delete_template",
    title: "Delete a template",
    description: "Deletes a template. Refused while workspaces still use it. Owners only.",
    scope: Scope::TemplatesWrite,
    hints: Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    },
    toolsets: ADMIN,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[("template_id", string("The template's id."))],
            &["template_id"],
        )
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

pub async fn list(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let NoArgs {} = parse_args(tool, raw)?;
    let templates = ctx
        .state
        .services
        .list_templates(&ctx.principal, None)
        .await?;
    let minimal: Vec<Value> = templates
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "display_name": t.display_name,
                "description": t.description,
                "icon": t.icon,
                "active_version_id": t.active_version_id,
                "active_user_count": t.active_user_count,
            })
        })
        .collect();
    Ok(json!({ "templates": minimal }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionArg {
    template_version_id: String,
}

pub async fn parameters(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: VersionArg = parse_args(tool, raw)?;
    let id = TemplateVersionId(args::uuid("template_version_id", &a.template_version_id)?);
    let params = ctx
        .state
        .services
        .template_version_parameters(&ctx.principal, id)
        .await?;
    Ok(json!({ "parameters": to_value(&params)? }).into())
}

pub async fn version_logs(
    ctx: &ToolContext,
    tool: &ToolDef,
    raw: Map<String, Value>,
) -> ToolResult {
    let a: VersionArg = parse_args(tool, raw)?;
    let id = TemplateVersionId(args::uuid("template_version_id", &a.template_version_id)?);
    let logs = ctx
        .state
        .services
        .template_version_logs(&ctx.principal, id, 0)
        .await?;
    Ok(json!({ "logs": to_value(&logs)? }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadArgs {
    files: BTreeMap<String, String>,
}

pub async fn upload(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: UploadArgs = parse_args(tool, raw)?;
    if a.files.is_empty() {
        return Err(ToolError::new(
            "files must contain at least one file, e.g. coder.yaml.",
        ));
    }
    let archive = tar_archive(&a.files)?;
    let (file, _) = ctx
        .state
        .services
        .upload_file(&ctx.principal, "application/x-tar", archive)
        .await?;
    Ok(json!({ "hash": file.id.0, "id": file.id.0, "sha256": file.hash }).into())
}

/// A tar archive of the files, for the same upload path the REST API uses.
fn tar_archive(files: &BTreeMap<String, String>) -> Result<Vec<u8>, ToolError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        builder
            .append_data(&mut header, path, content.as_bytes())
            .map_err(|e| ToolError::new(format!("Cannot add {path:?} to the archive: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| ToolError::new(format!("Cannot build the archive: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVersionArgs {
    file_id: String,
    #[serde(default)]
    template_id: Option<String>,
}

pub async fn create_version(
    ctx: &ToolContext,
    tool: &ToolDef,
    raw: Map<String, Value>,
) -> ToolResult {
    let a: CreateVersionArgs = parse_args(tool, raw)?;
    let file = FileId(args::uuid("file_id", &a.file_id)?);
    let template = a
        .template_id
        .filter(|t| !t.is_empty())
        .map(|t| args::uuid("template_id", &t).map(TemplateId))
        .transpose()?;
    let version = ctx
        .state
        .services
        .create_template_version(
            &ctx.principal,
            "coder",
            CreateTemplateVersionRequest {
                file_id: Some(file),
                template_id: template,
                ..Default::default()
            },
        )
        .await?;
    ToolOutput::of(&version)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTemplateArgs {
    name: String,
    display_name: String,
    description: String,
    version_id: String,
    #[serde(default)]
    icon: String,
}

pub async fn create_template(
    ctx: &ToolContext,
    tool: &ToolDef,
    raw: Map<String, Value>,
) -> ToolResult {
    let a: CreateTemplateArgs = parse_args(tool, raw)?;
    let version = TemplateVersionId(args::uuid("version_id", &a.version_id)?);
    let template = ctx
        .state
        .services
        .create_template(
            &ctx.principal,
            "coder",
            CreateTemplateRequest {
                name: a.name,
                display_name: a.display_name,
                description: a.description,
                icon: a.icon,
                template_version_id: Some(version),
            },
        )
        .await?;
    ToolOutput::of(&template)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteArgs {
    template_id: String,
    template_version_id: String,
}

pub async fn update_active_version(
    ctx: &ToolContext,
    tool: &ToolDef,
    raw: Map<String, Value>,
) -> ToolResult {
    let a: PromoteArgs = parse_args(tool, raw)?;
    let template = TemplateId(args::uuid("template_id", &a.template_id)?);
    let version = TemplateVersionId(args::uuid("template_version_id", &a.template_version_id)?);
    ctx.state
        .services
        .update_template_active_version(&ctx.principal, template, version)
        .await?;
    Ok(json!({ "template_id": template.0, "active_version_id": version.0 }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateArg {
    template_id: String,
}

pub async fn delete(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: TemplateArg = parse_args(tool, raw)?;
    let template = TemplateId(args::uuid("template_id", &a.template_id)?);
    ctx.state
        .services
        .delete_template(&ctx.principal, template)
        .await?;
    Ok(json!({ "deleted": true, "template_id": template.0 }).into())
}
