//! Tool results as MCP content: the JSON result as `structuredContent` and as text, failures as
//! `isError` results, and the size cap.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use super::rendered::RenderSlot;
use super::tools::{MAX_RESULT_CHARS, ToolError, ToolOutput};

/// A successful result: the same JSON as structured content and as text (MCP 2025-06-18
/// "Structured Content" asks for both). With a `slot`, the JSON is left there for the endpoint
/// to write into rmcp's response (`rendered`); without one, it goes through rmcp's model.
pub fn success(output: ToolOutput, slot: Option<&RenderSlot>) -> CallToolResult {
    let mut output = output.into_result();
    if output.json.len() <= MAX_RESULT_CHARS {
        if let Some(slot) = slot {
            match slot.defer(output) {
                Ok(deferred) => return deferred,
                Err(not_deferred) => output = not_deferred,
            }
        }
        let structured = serde_json::from_str(&output.json).ok();
        // A kept result stays kept: this one gets a copy.
        let text = Arc::try_unwrap(output).map_or_else(|kept| kept.json.clone(), |own| own.json);
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = structured;
        return result;
    }
    let text = &output.json;
    // Structured content cannot be cut and stay valid; the text carries what fits.
    let mut cut = MAX_RESULT_CHARS;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let truncated = format!(
        "{}\n[truncated: the result had {} characters and at most {MAX_RESULT_CHARS} are returned; \
         ask for less, e.g. with offset and limit]",
        &text[..cut],
        text.len()
    );
    CallToolResult::success(vec![ContentBlock::text(truncated)])
}

/// A failure the caller can act on (MCP 2025-11-25: tool errors are results with `isError`).
pub fn failure(err: ToolError) -> CallToolResult {
    let text = match err.expected_schema {
        Some(schema) => json!({ "error": err.message, "expectedSchema": schema }).to_string(),
        None => err.message,
    };
    CallToolResult::error(vec![ContentBlock::text(text)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_results_are_truncated_with_a_marker() {
        let big = json!({ "output": "x".repeat(MAX_RESULT_CHARS * 2) });
        let slot = RenderSlot::default();
        let result = success(big.into(), Some(&slot));
        assert!(slot.take().is_none(), "a truncated result is not deferred");
        assert!(result.structured_content.is_none());
        let text = serde_json::to_value(&result.content)
            .unwrap_or_default()
            .to_string();
        assert!(text.contains("[truncated: the result had"));
    }

    #[test]
    fn small_results_carry_structured_content_and_text() {
        let result = success(json!({ "a": 1 }).into(), None);
        assert_eq!(result.structured_content, Some(json!({ "a": 1 })));
        assert_eq!(result.is_error, Some(false));
        let content = serde_json::to_value(&result.content).unwrap_or_default();
        assert_eq!(content, json!([{ "type": "text", "text": "{\"a\":1}" }]));
    }
}
