//! JSON-RPC and transport checks made before a message reaches rmcp, where rmcp 3.11 would
//! answer with a plain-text 406/415/400 or the wrong error code (mcp-requirements §7.2).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{META_PROTOCOL_VERSION, SUPPORTED_VERSIONS};

/// The first version whose requests carry `_meta` and need no handshake.
const MODERN: &str = "2026-07-28";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Methods we serve. rmcp reads one of them with params it cannot parse as an unknown method
/// (-32601); for these the right answer is invalid params (-32602).
const SERVED_METHODS: [&str; 5] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
];

/// A JSON-RPC error answered without running the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: StatusCode,
    pub id: Value,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl Rejection {
    pub fn new(status: StatusCode, id: Value, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The JSON-RPC error object, as a response or as one element of a batch reply.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({ "jsonrpc": "2.0", "id": self.id, "error": error })
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// 503 with `Retry-After` and a JSON-RPC error a client can retry, for a request that needs
/// the database while it is unreachable.
pub(super) fn unavailable(message: &str, retry_after_secs: u64) -> Response {
    let mut rejection = Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Value::Null,
        i64::from(super::handler::UNAVAILABLE),
        message,
    );
    rejection.data = Some(json!({ "retryAfterSeconds": retry_after_secs }));
    let mut response = rejection.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// 500 with a JSON-RPC error, for a failure the client cannot fix (the cause is logged).
pub(super) fn internal_error() -> Response {
    Rejection::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Value::Null,
        -32603,
        "The server failed to handle the request. Try again; if it keeps failing, tell an owner.",
    )
    .into_response()
}

/// `Accept` must name both `application/json` and `text/event-stream` (406), and the body must
/// be `application/json` (415): mcp-requirements P2, with the TS reference server's -32000.
pub fn check_media_types(headers: &HeaderMap) -> Option<Rejection> {
    let accepted: Vec<String> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|entry| !has_zero_quality(entry))
        .map(|entry| essence(entry).to_ascii_lowercase())
        .collect();
    let accepts = |mime: &str| accepted.iter().any(|a| a == mime);
    if !accepts("application/json") || !accepts("text/event-stream") {
        return Some(Rejection::new(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            -32000,
            "Not Acceptable: the client must accept both application/json and text/event-stream.",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence);
    if !content_type.is_some_and(|c| c.eq_ignore_ascii_case("application/json")) {
        return Some(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Value::Null,
            -32000,
            "Unsupported Media Type: Content-Type must be application/json.",
        ));
    }
    None
}

fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

fn has_zero_quality(entry: &str) -> bool {
    entry.split(';').skip(1).any(|param| {
        param.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("q")
                && value.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        })
    })
}

/// The body as JSON, or the JSON-RPC parse error: HTTP 400, -32700, `id: null` (JSON-RPC 2.0
/// §5.1, mcp-requirements §7.2). A key repeated within one object is an Invalid Request
/// (-32600): RFC 8259 §4 leaves such a body's meaning to each reader, and the checks here and
/// rmcp would read it differently (rmcp answered it with a plain-text 415).
pub fn parse(body: &[u8]) -> Result<Value, Rejection> {
    match serde_json::from_slice::<UniqueKeys>(body) {
        Ok(UniqueKeys(value)) => Ok(value),
        Err(e) if e.is_data() => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            format!("Invalid Request: {e}; send each key of an object once."),
        )),
        Err(e) => Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32700,
            format!("Parse error: the body is not valid JSON ({e})."),
        )),
    }
}

/// A JSON value whose objects repeat no key; read in one pass, within serde_json's nesting
/// limit (128).
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Checks one message of a POST body (or of a 2025-03-26 batch) before rmcp serves it.
pub fn check_message(message: &Value, headers: &HeaderMap) -> Option<Rejection> {
    let Ok(parsed) = ClientJsonRpcMessage::deserialize(message) else {
        // Valid JSON that is no JSON-RPC 2.0 message (JSON-RPC 2.0 §4-§5; id unknown, so null).
        return Some(Rejection::new(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "Invalid Request: the body is not a JSON-RPC 2.0 request, notification or response.",
        ));
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let header = headers
        .get("mcp-protocol-version")
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let meta = message.pointer("/params/_meta");
    let meta_version = meta.and_then(|m| m.get(META_PROTOCOL_VERSION));
    let method = message.get("method").and_then(Value::as_str);

    // MCP 2025-06-18 transports §Protocol Version Header: an invalid or unsupported version is
    // a 400. Modern requests name their version in `_meta` and get rmcp's -32022 instead; an
    // `initialize` must only agree with its own params, which rmcp checks.
    if let Some(header) = header
        && meta_version.is_none()
        && method != Some("initialize")
        && !SUPPORTED_VERSIONS.contains(&header)
    {
        let mut rejection = Rejection::new(
            StatusCode::BAD_REQUEST,
            id,
            -32000,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version {header}; supported: {}.",
                SUPPORTED_VERSIONS.join(", ")
            ),
        );
        rejection.data = Some(json!({ "supported": SUPPORTED_VERSIONS, "requested": header }));
        return Some(rejection);
    }

    if let ClientJsonRpcMessage::Request(request) = &parsed
        && let ClientRequest::CustomRequest(custom) = &request.request
        && SERVED_METHODS.contains(&custom.method.as_str())
    {
        // A method we serve whose params rmcp could not read: invalid params, HTTP 200 for a
        // legacy request (2025-11-25 server/tools §Error Handling), 400 when the modern `_meta`
        // itself is missing (2026-07-28 basic/index §Error Codes).
        let modern = custom.method == "server/discover" || header.is_some_and(|h| h >= MODERN);
        let meta_complete = meta.is_some_and(|m| {
            m.get(META_PROTOCOL_VERSION).is_some_and(Value::is_string)
                && m.get(META_CAPABILITIES).is_some_and(Value::is_object)
        });
        let (status, message) = if modern && !meta_complete {
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "Invalid params: {} needs params._meta with {META_PROTOCOL_VERSION} and {META_CAPABILITIES}.",
                    custom.method
                ),
            )
        } else {
            (
                StatusCode::OK,
                format!(
                    "Invalid params: the params of {} do not follow the MCP schema.",
                    custom.method
                ),
            )
        };
        return Some(Rejection::new(status, id, -32602, message));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn media_types_follow_the_streamable_http_rules() {
        let ok = headers(&[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        assert_eq!(check_media_types(&ok), None);
        let zero = headers(&[
            ("accept", "application/json, text/event-stream;q=0"),
            ("content-type", "application/json"),
        ]);
        assert_eq!(
            check_media_types(&zero).map(|r| r.status),
            Some(StatusCode::NOT_ACCEPTABLE)
        );
        let text = headers(&[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(
            check_media_types(&text).map(|r| r.status),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
    }

    #[test]
    fn messages_get_the_json_rpc_error_they_deserve() {
        let none = HeaderMap::new();
        let code = |m: Value, h: &HeaderMap| check_message(&m, h).map(|r| (r.status, r.code));
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":1,"method":"ping"}), &none),
            None
        );
        assert_eq!(
            code(json!({"hello":"world"}), &none),
            Some((StatusCode::BAD_REQUEST, -32600))
        );
        assert_eq!(
            code(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}),
                &none
            ),
            Some((StatusCode::OK, -32602))
        );
        assert_eq!(
            code(
                json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}),
                &none
            ),
            Some((StatusCode::BAD_REQUEST, -32602))
        );
        assert_eq!(
            code(
                json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
                &headers(&[("mcp-protocol-version", "banana")])
            ),
            Some((StatusCode::BAD_REQUEST, -32000))
        );
        assert_eq!(
            code(json!({"jsonrpc":"2.0","id":1,"method":"foo/bar"}), &none),
            None,
            "unknown methods are rmcp's -32601"
        );
    }

    #[test]
    fn a_repeated_key_is_an_invalid_request_at_any_depth() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"[{"a":1,"a":1}]"#,
        ] {
            let rejection = parse(body.as_bytes()).err();
            assert_eq!(
                rejection.as_ref().map(|r| (r.status, r.code)),
                Some((StatusCode::BAD_REQUEST, -32600)),
                "{body}"
            );
            assert!(
                rejection.is_some_and(|r| r.message.contains("appears twice")),
                "{body}"
            );
        }
        assert_eq!(
            parse(br#"{"a":{"b":1},"b":{"a":[1,{"a":2}]}}"#).ok(),
            Some(json!({"a":{"b":1},"b":{"a":[1,{"a":2}]}}))
        );
        assert_eq!(parse(b"{").err().map(|r| r.code), Some(-32700));
    }
}

/// Property tests: any body and any JSON message. `parse` agrees with serde_json wherever keys
/// are unique, and every refusal is a JSON-RPC error with a code the spec names.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            hostile_text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "jsonrpc",
                        "id",
                        "method",
                        "params",
                        "name",
                        "arguments",
                        "_meta",
                        "protocolVersion",
                        "result",
                        "error",
                    ]),
                    inner,
                    0..5,
                )
                .prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    /// Messages shaped like JSON-RPC: known methods, odd ids and params.
    fn message() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec![
                "initialize", "ping", "server/discover", "tools/list", "tools/call",
                "notifications/initialized", "no/such",
            ]),
            json(),
            json(),
        )
            .prop_map(|(method, id, params)| {
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            })
    }

    fn headers() -> impl Strategy<Value = HeaderMap> {
        prop::option::of(prop::sample::select(vec![
            "2024-11-05",
            "2025-06-18",
            "2026-07-28",
            "banana",
            "",
        ]))
        .prop_map(|version| {
            let mut map = HeaderMap::new();
            if let Some(v) = version {
                map.insert(
                    "mcp-protocol-version",
                    axum::http::HeaderValue::from_static(v),
                );
            }
            map
        })
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_body_is_json_or_a_json_rpc_error(body in prop::collection::vec(any::<u8>(), 0..512)) {
            match timed("parse", || parse(&body))? {
                Ok(value) => prop_assert_eq!(serde_json::from_slice::<Value>(&body).ok(), Some(value)),
                Err(r) => {
                    prop_assert_eq!(r.status, StatusCode::BAD_REQUEST);
                    prop_assert!(r.code == -32700 || r.code == -32600);
                    prop_assert_eq!(r.id, Value::Null);
                }
            }
        }

        #[test]
        fn json_round_trips_through_parse(value in json()) {
            let text = value.to_string();
            prop_assert_eq!(parse(text.as_bytes()).ok(), Some(value));
        }

        #[test]
        fn deep_nesting_is_a_parse_error(depth in 129usize..20_000) {
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let r = timed("parse", || parse(body.as_bytes()))?;
            prop_assert_eq!(r.err().map(|r| r.code), Some(-32700));
        }

        #[test]
        fn messages_pass_or_get_a_spec_error(message in message(), headers in headers()) {
            if let Some(r) = timed("check_message", || check_message(&message, &headers))? {
                prop_assert!(r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST);
                prop_assert!([-32000, -32600, -32602].contains(&r.code), "{:?}", r);
                let body = r.body();
                prop_assert_eq!(&body["jsonrpc"], "2.0");
                prop_assert!(body["error"]["message"].is_string());
            }
        }
    }
}
