//! `coder_get_authenticated_user`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ALL, READ_ONLY, ToolContext, ToolDef, ToolResult, parse_args};
use crate::oauth::scopes::Scope;

pub const GET_AUTHENTICATED_USER: ToolDef = ToolDef {
    name: "coder_get_authenticated_user",
    title: "Get the signed-in user",
    description: "Returns the Coder user these tools act as: id, username, name, email, roles and \
                  status. Call it first to learn whose workspaces the other tools see.",
    scope: Scope::UserRead,
    hints: READ_ONLY,
    toolsets: ALL,
    input_schema: || json!({ "type": "object", "properties": {}, "additionalProperties": false }),
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

pub async fn get_authenticated_user(
    ctx: &ToolContext,
    tool: &ToolDef,
    args: Map<String, Value>,
) -> ToolResult {
    let NoArgs {} = parse_args(tool, args)?;
    let user = &ctx.principal.user;
    let roles: Vec<Value> = match user.role {
        crate::domain::Role::Owner => vec![json!({"name": "owner", "display_name": "Owner"})],
        crate::domain::Role::Member => Vec::new(),
    };
    Ok(json!({
        "id": user.id.0,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "created_at": user.created_at,
        "last_seen_at": user.last_seen_at,
        "status": user.status.as_str(),
        "roles": roles,
        "scopes": ctx.principal.scopes().to_wire(),
    }))
}
