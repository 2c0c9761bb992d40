//! `coder_get_authenticated_user`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ALL, READ_ONLY, ToolContext, ToolDef, ToolResult, parse_args, to_value};
use crate::domain::Scope;
use crate::service::views::UserResponse;

pub const GET_AUTHENTICATED_USER: ToolDef = ToolDef {
    name: "coder_get_authenticated_user",
    title: "Get the signed-in user",
    description: "Returns the Coder user these tools act as: id, username, name, email, roles and \
                  status. Call it first to learn whose workspaces the other tools see.",
    scope: Scope::UserRead,
    hints: READ_ONLY,
    toolsets: ALL,
    waits_on_workspace: false,
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
    let mut user = to_value(&UserResponse::from(ctx.principal.user.clone()))?;
    // What this connection may do: the token's scopes within the user's role.
    user["scopes"] = json!(ctx.principal.scopes().to_wire());
    Ok(user.into())
}
