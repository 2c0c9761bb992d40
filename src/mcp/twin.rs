//! A tool result's JSON and its text copy written side by side, in one pass.
//!
//! An MCP result carries the same JSON twice: as `structuredContent` and, escaped as a JSON
//! string, as its text block (MCP 2025-06-18 "Structured Content"). For the largest hot result,
//! `coder_list_workspaces` over 100 workspaces, serializing a typed view through serde and then
//! escaping the 33 KB it produced as a string were a fifth of the call's CPU
//! (docs/benchmarks.md). This writer appends each piece of the JSON to both buffers as it goes:
//! keys and structure are known in both forms up front, ids and numbers never need escaping,
//! and a string needs escaping (RFC 8259 §7) only when it holds `"`, `\` or a control
//! character, which names and icons rarely do. The bytes are exactly what serde_json writes
//! for the same value and what `serde_json::to_writer` makes of that text as a string.

use uuid::Uuid;

use super::rendered::ResultJson;

/// The JSON (`json`) and the same JSON as a JSON string, quotes included (`text`).
#[derive(Debug, Default)]
pub struct TwinJson {
    json: String,
    text: Vec<u8>,
}

impl TwinJson {
    /// Room for about `json_len` bytes of JSON; the text copy gets a quarter more for its
    /// escapes (every string's quotes are).
    pub fn with_capacity(json_len: usize) -> Self {
        let mut text = Vec::with_capacity(json_len + json_len / 4 + 2);
        text.push(b'"');
        Self {
            json: String::with_capacity(json_len),
            text,
        }
    }

    /// JSON punctuation and keys that hold neither `"` nor `\` (`{`, `,`, `[`): the same bytes
    /// in both copies.
    pub fn raw(&mut self, bytes: &str) {
        debug_assert!(!bytes.bytes().any(needs_escape), "{bytes}");
        self.json.push_str(bytes);
        self.text.extend_from_slice(bytes.as_bytes());
    }

    /// An object key and its colon: `"key":`. Keys are our own field names, which need no
    /// escaping.
    pub fn key(&mut self, key: &str) {
        debug_assert!(!key.bytes().any(needs_escape), "{key}");
        self.json.push('"');
        self.json.push_str(key);
        self.json.push_str("\":");
        self.text.extend_from_slice(b"\\\"");
        self.text.extend_from_slice(key.as_bytes());
        self.text.extend_from_slice(b"\\\":");
    }

    /// A string value, escaped as serde_json escapes it.
    pub fn str(&mut self, value: &str) {
        if !value.bytes().any(needs_escape) {
            self.str_unescaped(value);
            return;
        }
        let start = self.json.len();
        // Serializing a `str` cannot fail; the fallback keeps the two copies equal.
        self.json
            .push_str(&serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into()));
        // serde_json's output holds no control characters (it escapes them), so its string form
        // only escapes `"` and `\`.
        for &byte in &self.json.as_bytes()[start..] {
            if byte == b'"' || byte == b'\\' {
                self.text.push(b'\\');
            }
            self.text.push(byte);
        }
    }

    /// A UUID as serde writes it: the hyphenated lower-case form, as a string.
    pub fn uuid(&mut self, id: Uuid) {
        let mut buf = Uuid::encode_buffer();
        self.str_unescaped(id.hyphenated().encode_lower(&mut buf));
    }

    pub fn bool(&mut self, value: bool) {
        self.raw(if value { "true" } else { "false" });
    }

    pub fn i64(&mut self, value: i64) {
        self.raw(&value.to_string());
    }

    /// A string known to need no escaping (enum names, formatted ids).
    pub fn str_unescaped(&mut self, value: &str) {
        debug_assert!(!value.bytes().any(needs_escape), "{value}");
        self.json.push('"');
        self.json.push_str(value);
        self.json.push('"');
        self.text.extend_from_slice(b"\\\"");
        self.text.extend_from_slice(value.as_bytes());
        self.text.extend_from_slice(b"\\\"");
    }

    /// The JSON and its text copy (a complete JSON string, quotes included).
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.text.push(b'"');
        (self.json, self.text)
    }

    /// The JSON and its text copy as a tool result.
    pub fn into_result(self) -> ResultJson {
        let (json, text) = self.finish();
        ResultJson {
            json,
            text: Some(text),
        }
    }
}

/// A byte serde_json escapes in a string: a quote, a backslash or a control character
/// (RFC 8259 §7; serde_json leaves DEL and non-ASCII as they are).
fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(twin: TwinJson, expected: &serde_json::Value) {
        let (json, text) = twin.finish();
        let serde = serde_json::to_vec(expected).expect("serializable");
        assert_eq!(json, String::from_utf8_lossy(&serde));
        let serde_text =
            serde_json::to_vec(std::str::from_utf8(&serde).expect("utf-8")).expect("string");
        assert_eq!(
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(&serde_text)
        );
    }

    #[test]
    fn writes_what_serde_json_writes_and_its_string_form() {
        let id = Uuid::new_v4();
        let mut twin = TwinJson::with_capacity(16);
        twin.raw("{");
        twin.key("id");
        twin.uuid(id);
        twin.raw(",");
        twin.key("list");
        twin.raw("[");
        twin.bool(true);
        twin.raw(",");
        twin.bool(false);
        twin.raw(",");
        twin.i64(-42);
        twin.raw("],");
        twin.key("name");
        twin.str("a\"b\\c\nd\u{1}é\u{7f}");
        twin.raw(",");
        twin.key("plain");
        twin.str("plain-name_1");
        twin.raw("}");
        // Keys in alphabetical order: `json!` sorts them.
        check(
            twin,
            &json!({
                "id": id,
                "name": "a\"b\\c\nd\u{1}é\u{7f}",
                "list": [true, false, -42],
                "plain": "plain-name_1",
            }),
        );
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(value in any::<String>()) {
            let mut twin = TwinJson::with_capacity(0);
            twin.str(&value);
            check(twin, &json!(value));
        }
    }
}
