//! Relays one stdio MCP message to the server's `/api/experimental/mcp/http` and turns the
//! answer back into the JSON-RPC messages the stdio client must see. `ping` and refusals from
//! `--allowed-tools` are answered here; every other request gets exactly one response, an
//! error (-32603) when the server cannot give one.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use crate::cli::client::{TOKEN_HEADER, describe, display_url, error_message};
use crate::mcp::META_PROTOCOL_VERSION;
use crate::oauth::resource::MCP_PATH;

/// `tools/call` may run a workspace command for up to 300 s on the server; a little more here.
pub const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(310);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const INVALID_REQUEST: i64 = -32600;

pub struct Relay {
    http: reqwest::Client,
    endpoint: String,
    server: String,
    token: String,
    allowed: Option<Vec<String>>,
    /// The version `initialize` negotiated, sent as `MCP-Protocol-Version` on later requests
    /// (MCP 2025-06-18 transports §Protocol Version Header).
    version: Mutex<Option<String>>,
}

impl Relay {
    pub fn new(
        http: reqwest::Client,
        base: &url::Url,
        token: String,
        toolset: Option<&str>,
        allowed: Option<Vec<String>>,
    ) -> Relay {
        let mut endpoint = format!("{}{MCP_PATH}", display_url(base));
        if let Some(toolset) = toolset {
            endpoint.push_str("?toolset=");
            endpoint.push_str(toolset);
        }
        Relay {
            http,
            endpoint,
            server: display_url(base),
            token,
            allowed,
            version: Mutex::new(None),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Everything to write to stdout in answer to one message from the client.
    pub async fn handle(&self, message: Value) -> Vec<Value> {
        match classify(&message) {
            Kind::Request { id, method } => self.request(&message, id, &method).await,
            Kind::Notification { method } => {
                // Cancellation is the stdio loop's job: the stateless server has nothing to cancel.
                if method != "notifications/cancelled" {
                    self.notify(&message, &method).await;
                }
                Vec::new()
            }
            // An answer to a server-initiated request; the stateless server sends none.
            Kind::Response => Vec::new(),
            Kind::Invalid { id } => vec![error(
                id,
                INVALID_REQUEST,
                "Invalid Request: not a JSON-RPC 2.0 request, notification or response.",
                None,
            )],
        }
    }

    /// A 2025-03-26 batch: each message relayed on its own, the responses answered together.
    pub async fn handle_batch(&self, batch: Vec<Value>) -> Vec<Value> {
        if batch.is_empty() {
            return vec![error(
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: an empty batch.",
                None,
            )];
        }
        let answers =
            futures_util::future::join_all(batch.into_iter().map(|m| self.handle(m))).await;
        let (responses, mut out): (Vec<Value>, Vec<Value>) = answers
            .into_iter()
            .flatten()
            .partition(|m| m.get("method").is_none());
        if !responses.is_empty() {
            out.push(Value::Array(responses));
        }
        out
    }

    async fn request(&self, message: &Value, id: Value, method: &str) -> Vec<Value> {
        if method == "ping" {
            return vec![json!({ "jsonrpc": "2.0", "id": id, "result": {} })];
        }
        if method == "tools/call"
            && let Some(refusal) = self.refuse_tool(message, &id)
        {
            return vec![refusal];
        }
        let timeout = if method == "tools/call" {
            TOOL_CALL_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        };
        let mut reply = match self.post(message, method, timeout).await {
            Ok(reply) => reply,
            Err(text) => return vec![error(id, INTERNAL_ERROR, text, None)],
        };
        let mut out = Vec::new();
        let mut response = None;
        let mut anonymous_error = None;
        for m in std::mem::take(&mut reply.messages) {
            match classify(&m) {
                Kind::Response if m.get("id") == Some(&id) => response = Some(m),
                // A transport-level rejection names no id (JSON-RPC 2.0 §5); it is still ours.
                Kind::Response if m.get("id") == Some(&Value::Null) => anonymous_error = Some(m),
                Kind::Notification { .. } => out.push(m),
                Kind::Request { method, .. } => eprintln!(
                    "coder: the server sent a {method} request, which a stateless relay cannot carry; ignored"
                ),
                Kind::Response | Kind::Invalid { .. } => {}
            }
        }
        let response = response.or_else(|| {
            anonymous_error.map(|mut m| {
                m["id"] = id.clone();
                m
            })
        });
        match response {
            Some(r) => out.push(self.adjust(method, r)),
            None => out.push(error(id, INTERNAL_ERROR, self.failure(&reply), None)),
        }
        out
    }

    /// Notifications are fire-and-forget: the server answers 202 and a failure is only logged.
    async fn notify(&self, message: &Value, method: &str) {
        match self.post(message, method, REQUEST_TIMEOUT).await {
            Ok(reply) if reply.status.is_success() => {}
            Ok(reply) => eprintln!(
                "coder: {method} was not delivered: {}",
                self.failure(&reply)
            ),
            Err(text) => eprintln!("coder: {method} was not delivered: {text}"),
        }
    }

    /// `--allowed-tools` refuses other tools without asking the server.
    fn refuse_tool(&self, message: &Value, id: &Value) -> Option<Value> {
        let allowed = self.allowed.as_ref()?;
        let name = message.pointer("/params/name")?.as_str()?;
        if allowed.iter().any(|a| a == name) {
            return None;
        }
        Some(error(
            id.clone(),
            INVALID_PARAMS,
            format!(
                "Tool {name} is not allowed here; this MCP server allows only: {}.",
                allowed.join(", ")
            ),
            Some(json!({ "tool": name, "allowed": allowed })),
        ))
    }

    /// Local changes to a successful response: remember the negotiated version, hide tools
    /// outside `--allowed-tools`.
    fn adjust(&self, method: &str, mut response: Value) -> Value {
        match method {
            "initialize" => {
                if let Some(v) = response
                    .pointer("/result/protocolVersion")
                    .and_then(Value::as_str)
                    && let Ok(mut version) = self.version.lock()
                {
                    *version = Some(v.to_owned());
                }
            }
            "tools/list" => {
                if let Some(allowed) = &self.allowed
                    && let Some(tools) = response
                        .pointer_mut("/result/tools")
                        .and_then(Value::as_array_mut)
                {
                    tools.retain(|t| {
                        t.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| allowed.iter().any(|a| a == n))
                    });
                }
            }
            _ => {}
        }
        response
    }

    async fn post(
        &self,
        message: &Value,
        method: &str,
        timeout: Duration,
    ) -> Result<Reply, String> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .timeout(timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .header(TOKEN_HEADER, &self.token);
        let meta_version = message
            .pointer("/params/_meta")
            .and_then(|m| m.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        let header = |v: &str| HeaderValue::from_str(v).ok();
        if let Some(version) = meta_version {
            // A 2026-07-28 request carries its version, method and name in headers too
            // (mcp-requirements §1, `Mcp-Method`, `Mcp-Name`).
            let name = message
                .pointer("/params/name")
                .or_else(|| message.pointer("/params/uri"))
                .and_then(Value::as_str);
            for (key, value) in [
                ("MCP-Protocol-Version", Some(version)),
                ("Mcp-Method", Some(method)),
                ("Mcp-Name", name),
            ] {
                if let Some(value) = value.and_then(header) {
                    request = request.header(key, value);
                }
            }
        } else if method != "initialize" {
            let negotiated = self.version.lock().ok().and_then(|v| v.clone());
            if let Some(value) = negotiated.as_deref().and_then(header) {
                request = request.header("MCP-Protocol-Version", value);
            }
        }
        let response = request
            .body(message.to_string())
            .send()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        let status = response.status();
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        let messages = if sse {
            sse_messages(&String::from_utf8_lossy(&body))
        } else {
            json_messages(&body)
        };
        Ok(Reply {
            status,
            messages,
            body: body.to_vec(),
        })
    }

    fn unreachable(&self, err: &reqwest::Error, timeout: Duration) -> String {
        if err.is_timeout() {
            format!(
                "The Coder server at {} did not answer within {} s.",
                self.server,
                timeout.as_secs()
            )
        } else {
            format!(
                "The Coder server at {} could not be reached: {}.",
                self.server,
                describe(err)
            )
        }
    }

    /// Why an HTTP answer holds no JSON-RPC response, in words for the person behind the agent.
    fn failure(&self, reply: &Reply) -> String {
        if reply.status.is_success() {
            return format!(
                "The Coder server at {} sent no JSON-RPC response (HTTP {}).",
                self.server, reply.status
            );
        }
        let mut text = format!(
            "The Coder server at {} answered HTTP {}: {}",
            self.server,
            reply.status,
            error_message(&reply.body, None)
        );
        if reply.status == StatusCode::UNAUTHORIZED {
            text.push_str(&format!(
                "; the session has ended: run `coder login {}` again",
                self.server
            ));
        }
        text
    }
}

struct Reply {
    status: StatusCode,
    messages: Vec<Value>,
    body: Vec<u8>,
}

enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response,
    Invalid { id: Value },
}

fn classify(message: &Value) -> Kind {
    let Some(object) = message.as_object() else {
        return Kind::Invalid { id: Value::Null };
    };
    let id = object.get("id").cloned();
    match (object.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => Kind::Request {
            id,
            method: method.to_owned(),
        },
        (Some(method), None) => Kind::Notification {
            method: method.to_owned(),
        },
        (None, Some(_)) if object.contains_key("result") || object.contains_key("error") => {
            Kind::Response
        }
        (None, id) => Kind::Invalid {
            id: id.unwrap_or(Value::Null),
        },
    }
}

pub fn error(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message.into() });
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// The messages of a JSON body: one object, or a batch.
fn json_messages(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(value @ Value::Object(_)) => vec![value],
        _ => Vec::new(),
    }
}

/// The JSON-RPC messages of an SSE body: each event's `data:` lines joined (SSE §9.2.6);
/// other fields and comments are transport detail.
fn sse_messages(body: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut data = String::new();
    let mut flush = |data: &mut String| {
        if !data.trim().is_empty() {
            out.extend(json_messages(data.as_bytes()));
        }
        data.clear();
    };
    for line in body.lines() {
        if line.is_empty() {
            flush(&mut data);
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    flush(&mut data);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn relay(allowed: Option<&[&str]>) -> Relay {
        Relay::new(
            reqwest::Client::new(),
            &url::Url::parse("http://127.0.0.1:9").unwrap(),
            "t".to_owned(),
            Some("workspace"),
            allowed.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        )
    }

    #[test]
    fn sse_bodies_yield_every_message() {
        let body = "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n: comment\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":1,\"result\":{}}\n\n";
        let messages = sse_messages(body);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["method"], "notifications/progress");
        assert_eq!(messages[1]["id"], 1);
        assert!(sse_messages("data:\n\n").is_empty());
    }

    #[test]
    fn messages_are_classified_as_json_rpc_does() {
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Kind::Request { .. }
        ));
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Kind::Notification { .. }
        ));
        assert!(matches!(
            classify(&json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Kind::Response
        ));
        assert!(matches!(classify(&json!({"id":1})), Kind::Invalid { .. }));
        assert!(matches!(classify(&json!(3)), Kind::Invalid { .. }));
    }

    #[tokio::test]
    async fn ping_and_refusals_are_answered_locally() {
        let relay = relay(Some(&["coder_get_authenticated_user"]));
        assert_eq!(
            relay.endpoint(),
            "http://127.0.0.1:9/api/experimental/mcp/http?toolset=workspace"
        );
        let pong = relay
            .handle(json!({"jsonrpc":"2.0","id":"p","method":"ping"}))
            .await;
        assert_eq!(pong, vec![json!({"jsonrpc":"2.0","id":"p","result":{}})]);
        let refused = relay
            .handle(json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"coder_workspace_bash","arguments":{}}}))
            .await;
        assert_eq!(refused[0]["error"]["code"], -32602);
        assert_eq!(refused[0]["id"], 7);
        assert_eq!(refused[0]["error"]["data"]["tool"], "coder_workspace_bash");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_internal_error_for_that_request() {
        let relay = relay(None);
        let answer = relay
            .handle(json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}))
            .await;
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0]["id"], 3);
        assert_eq!(answer[0]["error"]["code"], -32603);
        let text = answer[0]["error"]["message"].as_str().unwrap();
        assert!(text.contains("could not be reached"), "{text}");
        // Notifications get no answer, whatever happens to them.
        assert!(
            relay
                .handle(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
                .await
                .is_empty()
        );
    }

    #[test]
    fn tools_outside_the_allowlist_are_hidden() {
        let relay = relay(Some(&["a"]));
        let listed = relay.adjust(
            "tools/list",
            json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}),
        );
        assert_eq!(listed["result"]["tools"], json!([{"name":"a"}]));
        relay.adjust(
            "initialize",
            json!({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}),
        );
        assert_eq!(relay.version.lock().unwrap().as_deref(), Some("2025-06-18"));
    }
}
