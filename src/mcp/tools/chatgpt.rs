//! `search` and `fetch`: the two tools ChatGPT connectors require (Coder's `?toolset=chatgpt`
//! contract, coder-behaviour §11.5). Ids are `workspace:<uuid>` and `template:<uuid>`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{object, string};
use super::{READ_ONLY, ToolContext, ToolDef, ToolError, ToolResult, parse_args, to_value};
use crate::domain::{Page, Scope, TemplateId};
use crate::mcp::toolset::Toolset;
use crate::service::views::TemplateView;

const CHATGPT: &[Toolset] = &[Toolset::ChatGpt];

pub const SEARCH: ToolDef = ToolDef {
    name: "search",
    title: "Search workspaces and templates",
    description: "Searches Coder. The query is \"workspaces\" or \"templates\", optionally followed \
                  by \"/\" and a filter in Coder's search syntax, e.g. \"workspaces/owner:me \
                  status:running\" or \"templates/python\". Returns ids to pass to fetch.",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: CHATGPT,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[(
                "query",
                string("workspaces[/filter] or templates[/filter]."),
            )],
            &["query"],
        )
    },
};

pub const FETCH: ToolDef = ToolDef {
    name: "fetch",
    title: "Fetch a workspace or template",
    description: "Returns a workspace or template in full, by an id from search \
                  (workspace:<uuid> or template:<uuid>).",
    scope: Scope::WorkspacesRead,
    hints: READ_ONLY,
    toolsets: CHATGPT,
    waits_on_workspace: false,
    input_schema: || {
        object(
            &[(
                "id",
                string("An id returned by search, e.g. workspace:0a1b2c3d-...."),
            )],
            &["id"],
        )
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
}

pub async fn search(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: SearchArgs = parse_args(tool, raw)?;
    let (kind, filter) = match a.query.trim().split_once('/') {
        Some((kind, filter)) => (kind.trim(), filter.trim()),
        None => (a.query.trim(), ""),
    };
    let base = ctx.state.oauth.issuer();
    let results: Vec<Value> = match kind {
        "workspaces" => {
            let filter = if filter.is_empty() {
                "owner:me"
            } else {
                filter
            };
            let (found, _) = ctx
                .state
                .services
                .list_workspace_summaries(
                    &ctx.principal,
                    filter,
                    Page {
                        limit: 100,
                        offset: 0,
                    },
                )
                .await?;
            found
                .iter()
                .map(|w| {
                    json!({
                        "id": format!("workspace:{}", w.id),
                        "title": format!("{}/{}", w.owner_name, w.name),
                        "text": format!("Workspace {} owned by {}, template {}, status {}.", w.name, w.owner_name, w.template_name, w.status().as_str()),
                        "url": workspace_url(base, &w.owner_name, &w.name),
                    })
                })
                .collect()
        }
        "templates" => {
            let needle = filter.to_lowercase();
            let templates = ctx
                .state
                .services
                .list_templates(&ctx.principal, None)
                .await?;
            templates
                .iter()
                .filter(|t| {
                    needle.is_empty()
                        || t.name.to_lowercase().contains(&needle)
                        || t.display_name.to_lowercase().contains(&needle)
                        || t.description.to_lowercase().contains(&needle)
                })
                .map(|t| {
                    json!({
                        "id": format!("template:{}", t.id),
                        "title": if t.display_name.is_empty() { t.name.clone() } else { t.display_name.clone() },
                        "text": t.description,
                        "url": template_url(base, t),
                    })
                })
                .collect()
        }
        _ => {
            return Err(ToolError::new(
                "query must start with \"workspaces\" or \"templates\", e.g. \"workspaces/owner:me\".",
            ));
        }
    };
    Ok(json!({ "results": results }).into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    id: String,
}

pub async fn fetch(ctx: &ToolContext, tool: &ToolDef, raw: Map<String, Value>) -> ToolResult {
    let a: FetchArgs = parse_args(tool, raw)?;
    let base = ctx.state.oauth.issuer();
    let bad_id =
        || ToolError::new("id must be workspace:<uuid> or template:<uuid>, as search returns.");
    let (kind, raw_id) = a.id.trim().split_once(':').ok_or_else(bad_id)?;
    let uuid = uuid::Uuid::parse_str(raw_id).map_err(|_| bad_id())?;
    match kind {
        "workspace" => {
            let w = ctx
                .state
                .services
                .get_workspace(&ctx.principal, &uuid.to_string())
                .await?;
            Ok(json!({
                "id": a.id,
                "title": format!("{}/{}", w.owner_name, w.name),
                "text": to_value(&w)?.to_string(),
                "url": workspace_url(base, &w.owner_name, &w.name),
                "metadata": { "type": "workspace", "status": w.latest_build.status, "template": w.template_name },
            }).into())
        }
        "template" => {
            let t = ctx
                .state
                .services
                .get_template(&ctx.principal, TemplateId(uuid))
                .await?;
            Ok(json!({
                "id": a.id,
                "title": if t.display_name.is_empty() { t.name.clone() } else { t.display_name.clone() },
                "text": to_value(&t)?.to_string(),
                "url": template_url(base, &t),
                "metadata": { "type": "template", "active_version_id": t.active_version_id },
            }).into())
        }
        _ => Err(bad_id()),
    }
}

/// Coder's dashboard URLs, as the connector contract uses them.
fn workspace_url(base: &str, owner: &str, name: &str) -> String {
    format!("{base}/@{owner}/{name}")
}

fn template_url(base: &str, t: &TemplateView) -> String {
    format!("{base}/templates/{}/{}", t.organization_name, t.name)
}
