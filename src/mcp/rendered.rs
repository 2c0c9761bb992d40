//! Tool results rendered once and placed into rmcp's response.
//!
//! rmcp's `CallToolResult` holds `structuredContent` as a `serde_json::Value`, and the same JSON
//! must also travel as text (MCP 2025-06-18 "Structured Content"). For a large result, such as
//! `coder_list_workspaces` over 100 workspaces, building that tree, serializing it and escaping
//! the text inside rmcp's response cost about a third of the request (docs/benchmarks.md). So
//! the handler renders the result's JSON once, gives rmcp two placeholders instead (a one-key
//! object as the structured content, a string as the text), and the endpoint writes the JSON
//! (raw, and escaped as a string) where rmcp wrote them. rmcp still does all of the protocol:
//! versions, `_meta`, `resultType`, ids, errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::service::workspaces::ListRendering;

/// A result's compact JSON and, when the tool wrote it alongside (`TwinJson`), the same JSON
/// as a JSON string (quotes included). Shared, so that a workspace list rendered once can be
/// sent again while it is current (`service::list_cache`) without copying it first.
#[derive(Debug)]
pub struct ResultJson {
    pub json: String,
    pub text: Option<Vec<u8>>,
}

impl ListRendering for ResultJson {
    fn size(&self) -> usize {
        self.json.len() + self.text.as_ref().map_or(0, Vec::len)
    }
}

/// Where the handler leaves a rendered result for the endpoint, one per forwarded message.
#[derive(Debug, Clone, Default)]
pub struct RenderSlot(Arc<Mutex<Option<Rendered>>>);

/// A result's JSON and the placeholders rmcp serialized in its stead.
#[derive(Debug)]
pub struct Rendered {
    result: Arc<ResultJson>,
    value_marker: String,
    text_marker: String,
}

/// rmcp's response did not hold each placeholder exactly once: a bug, never the client's doing.
#[derive(Debug, thiserror::Error)]
#[error("the placeholder {0} is not in the MCP response exactly once")]
pub struct MissingPlaceholder(String);

impl RenderSlot {
    /// Keeps `result` (its JSON a compact JSON object) for the endpoint and returns the result
    /// rmcp serializes in its place: a text block and structured content that are placeholders.
    /// Anything but an object is refused (returned as is): rmcp moves structured content that
    /// is not an object out of the result for peers before 2026-07-28, and only its own model
    /// does that right.
    pub fn defer(&self, result: Arc<ResultJson>) -> Result<CallToolResult, Arc<ResultJson>> {
        if !result.json.starts_with('{') {
            return Err(result);
        }
        let id = next_marker();
        let rendered = Rendered {
            result,
            value_marker: format!("{id}-structured"),
            text_marker: format!("{id}-text"),
        };
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(rendered.text_marker.clone())]);
        let mut placeholder = serde_json::Map::new();
        placeholder.insert(rendered.value_marker.clone(), Value::Null);
        result.structured_content = Some(Value::Object(placeholder));
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(rendered);
        }
        Ok(result)
    }

    pub fn take(&self) -> Option<Rendered> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// A placeholder no client can guess or produce: a per-process random prefix and a counter.
/// Only rmcp's own output is searched, so a result's content can never be mistaken for one.
fn next_marker() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| format!("coderd-result-{}", uuid::Uuid::new_v4().simple()));
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl Rendered {
    /// rmcp's JSON response `body` with the placeholders replaced: the structured content by
    /// the JSON itself, the text by the JSON as a string.
    pub fn splice(&self, body: &[u8]) -> Result<Vec<u8>, MissingPlaceholder> {
        // serde_json writes the markers (letters, digits, hyphens) unescaped, and compactly.
        let value_at = find_once(body, &format!("{{\"{}\":null}}", self.value_marker))
            .ok_or_else(|| MissingPlaceholder(self.value_marker.clone()))?;
        let text_at = find_once(body, &format!("\"{}\"", self.text_marker))
            .ok_or_else(|| MissingPlaceholder(self.text_marker.clone()))?;
        let ResultJson { json, text } = &*self.result;
        let text_len = text.as_ref().map_or(json.len() + json.len() / 4, Vec::len);
        let mut out = Vec::with_capacity(body.len() + json.len() + text_len);
        let mut rest = 0;
        let mut places = [(value_at, false), (text_at, true)];
        places.sort_by_key(|(range, _)| range.start);
        for (range, as_text) in places {
            out.extend_from_slice(&body[rest..range.start]);
            if let (true, Some(text)) = (as_text, text) {
                out.extend_from_slice(text);
            } else if as_text {
                // A JSON string of the JSON text: the same escaping rmcp would have applied.
                serde_json::to_writer(&mut out, json.as_str())
                    .map_err(|_| MissingPlaceholder(self.text_marker.clone()))?;
            } else {
                out.extend_from_slice(json.as_bytes());
            }
            rest = range.end;
        }
        out.extend_from_slice(&body[rest..]);
        Ok(out)
    }
}

/// The byte range of `needle` in `body`, which must hold it exactly once.
fn find_once(body: &[u8], needle: &str) -> Option<std::ops::Range<usize>> {
    let needle = needle.as_bytes();
    let mut hits = body
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(at, _)| at);
    match (hits.next(), hits.next()) {
        (Some(at), None) => Some(at..at + needle.len()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use rmcp::model::{
        JsonRpcResponse, JsonRpcVersion2_0, NumberOrString, ServerJsonRpcMessage, ServerResult,
    };
    use serde_json::json;

    fn owned(json: String, text: Option<Vec<u8>>) -> Arc<ResultJson> {
        Arc::new(ResultJson { json, text })
    }

    fn response_bytes(result: CallToolResult) -> Vec<u8> {
        let message = ServerJsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id: NumberOrString::Number(7),
            result: ServerResult::CallToolResult(result),
        });
        serde_json::to_vec(&message).expect("serializable")
    }

    #[test]
    fn spliced_response_equals_the_one_rmcp_would_have_written() {
        let value = json!({
            "workspaces": [{ "name": "a\"b\\c", "note": "line\nbreak \u{1}", "ünï": "cödé" }],
            "count": 1
        });
        let json = serde_json::to_string(&value).expect("serializable");

        let mut direct = CallToolResult::success(vec![ContentBlock::text(json.clone())]);
        direct.structured_content = Some(value);
        let expected: Value = serde_json::from_slice(&response_bytes(direct)).expect("json");

        let slot = RenderSlot::default();
        let body = response_bytes(slot.defer(owned(json, None)).expect("an object"));
        let rendered = slot.take().expect("deferred");
        let spliced: Value =
            serde_json::from_slice(&rendered.splice(&body).expect("spliced")).expect("json");
        assert_eq!(spliced, expected);
        assert!(slot.take().is_none(), "a slot is emptied when taken");
    }

    #[test]
    fn a_text_written_alongside_is_spliced_as_given() {
        let mut twin = crate::mcp::twin::TwinJson::with_capacity(8);
        twin.raw("{");
        twin.key("name");
        twin.str("quote \" and \\");
        twin.raw("}");
        let (json, text) = twin.finish();
        let value: Value = serde_json::from_str(&json).expect("json");

        let mut direct = CallToolResult::success(vec![ContentBlock::text(json.clone())]);
        direct.structured_content = Some(value);
        let expected = response_bytes(direct);

        let slot = RenderSlot::default();
        let body = response_bytes(slot.defer(owned(json, Some(text))).expect("an object"));
        let spliced = slot
            .take()
            .expect("deferred")
            .splice(&body)
            .expect("spliced");
        let spliced: Value = serde_json::from_slice(&spliced).expect("json");
        assert_eq!(
            spliced,
            serde_json::from_slice::<Value>(&expected).expect("json")
        );
    }

    #[test]
    fn a_missing_or_repeated_placeholder_is_an_error() {
        let slot = RenderSlot::default();
        let body = response_bytes(slot.defer(owned("{}".into(), None)).expect("an object"));
        let rendered = slot.take().expect("deferred");
        assert!(rendered.splice(b"{\"result\":{}}").is_err());
        let twice = [body.as_slice(), body.as_slice()].concat();
        assert!(rendered.splice(&twice).is_err());
    }

    #[test]
    fn only_objects_are_deferred() {
        let slot = RenderSlot::default();
        assert_eq!(
            slot.defer(owned("[1,2]".into(), None))
                .err()
                .map(|r| r.json.clone())
                .as_deref(),
            Some("[1,2]")
        );
        assert!(slot.take().is_none());
    }

    #[test]
    fn markers_differ_between_results() {
        assert_ne!(next_marker(), next_marker());
    }
}
