//! Argument helpers shared by the tools: ids, workspace names, schema fragments.

use serde_json::{Value, json};
use uuid::Uuid;

use super::ToolError;

/// Parses a UUID argument, naming the field when it is not one.
pub fn uuid(field: &str, raw: &str) -> Result<Uuid, ToolError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ToolError::new(format!(
            "{field} must be a UUID such as 0a1b2c3d-..., got {raw:?}."
        ))
    })
}

/// The schema of a no-argument tool (MCP: never a null schema).
pub fn no_args() -> Value {
    json!({ "type": "object", "properties": {}, "additionalProperties": false })
}

/// An object schema from (name, schema) pairs and the required names.
pub fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut schema =
        json!({ "type": "object", "properties": props, "additionalProperties": false });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

pub fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

pub fn workspace() -> Value {
    string(
        "The workspace: its id, or its name as [owner/]name (your own when no owner is given), e.g. \"dev\" or \"alice/dev\".",
    )
}
