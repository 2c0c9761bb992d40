//! The rmcp `ServerHandler`: server info, `tools/list` filtered by toolset and scopes, and
//! `tools/call` with auditing.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, ErrorData, Implementation, ListToolsResult,
    MetaObject, PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;

use super::rendered::RenderSlot;
use super::result;
use super::tools::{self, ToolContext, ToolDef, ToolError};
use super::toolset::Toolset;
use crate::audit::AuditEvent;
use crate::domain::Principal;
use crate::web::AppState;

const INSTRUCTIONS: &str = "Coder MCP server: list, create, start and stop Coder workspaces, run \
commands and read and edit files inside them, and manage templates. Tools act as the signed-in \
user with the permissions they granted. Workspaces are named [owner/]name.";

/// What the HTTP layer learned about the request, handed to the handler in the request parts.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub toolset: Toolset,
    pub ip: String,
    /// What the handler tells the endpoint about the call it served.
    pub report: Arc<CallReport>,
}

/// How a `tools/call` went, for the endpoint's status code and metrics.
#[derive(Debug, Default)]
pub struct CallReport {
    /// Seconds to wait, when the call failed because the database is unreachable (the
    /// endpoint then answers 503 with `Retry-After`).
    pub retry_after_secs: AtomicU64,
    /// The tool ran and failed (an `isError` result).
    pub tool_error: AtomicBool,
    /// The call was refused with a JSON-RPC error (an unknown tool).
    pub refused: AtomicBool,
}

/// The JSON-RPC error for a call that failed only because the database is unreachable: an
/// implementation-defined server error (JSON-RPC 2.0 §5.1 reserves -32000 to -32099), with the
/// wait in `data.retryAfterSeconds`. The HTTP answer is 503 with `Retry-After`.
pub const UNAVAILABLE: i32 = -32000;

/// Built per request (the service is stateless); what never changes is built once, in
/// `Constants`.
#[derive(Clone)]
pub struct CoderMcp {
    state: AppState,
}

impl CoderMcp {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// What every request's handler shares.
struct Constants {
    versions: Vec<ProtocolVersion>,
    /// `_meta` for the tools/list and tools/call results of 2026-07-28 requests: servers
    /// SHOULD name themselves in every result (2026-07-28 basic/index.mdx, mcp-requirements
    /// §2.2); rmcp does it for server/discover.
    server_info_meta: MetaObject,
}

fn constants() -> &'static Constants {
    static CONSTANTS: OnceLock<Constants> = OnceLock::new();
    CONSTANTS.get_or_init(|| {
        let versions = super::SUPPORTED_VERSIONS
            .iter()
            .filter_map(|v| serde_json::from_value(json!(v)).ok())
            .collect();
        let mut server_info_meta = MetaObject::new();
        if let Ok(info) = serde_json::to_value(server_info()) {
            server_info_meta
                .0
                .insert("io.modelcontextprotocol/serverInfo".to_owned(), info);
        }
        Constants {
            versions,
            server_info_meta,
        }
    })
}

fn server_info() -> Implementation {
    Implementation::new("coder", env!("CARGO_PKG_VERSION"))
        .with_title("Coder")
        .with_description("Coder workspaces for AI agents")
}

/// The result `_meta` for this request: the server's name for 2026-07-28 requests (they carry
/// their version in `_meta`), nothing for the handshake era.
fn result_meta(context: &RequestContext<RoleServer>) -> Option<MetaObject> {
    context
        .meta
        .protocol_version()
        .map(|_| constants().server_info_meta.clone())
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    http_extension::<Caller>(context).ok_or_else(|| {
        ErrorData::internal_error("request reached the MCP handler unauthenticated", None)
    })
}

/// Something the endpoint put in the HTTP request (rmcp hands the request's parts on).
fn http_extension<T: Clone + Send + Sync + 'static>(
    context: &RequestContext<RoleServer>,
) -> Option<T> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<T>())
        .cloned()
}

/// The MCP view of one of our tool definitions, built once per tool: the definitions are
/// constant, and building the schemas on every request was about a third of `tools/list`'s CPU
/// (docs/benchmarks.md).
fn mcp_tool(def: &ToolDef) -> Tool {
    static BUILT: OnceLock<Vec<Tool>> = OnceLock::new();
    let built = BUILT.get_or_init(|| tools::catalog().iter().map(to_mcp_tool).collect());
    tools::catalog()
        .iter()
        .position(|d| d.name == def.name)
        .and_then(|i| built.get(i))
        .cloned()
        .unwrap_or_else(|| to_mcp_tool(def))
}

/// The MCP view of one of our tool definitions.
pub fn to_mcp_tool(def: &ToolDef) -> Tool {
    let schema = match (def.input_schema)() {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let annotations = ToolAnnotations::with_title(def.title)
        .read_only(def.hints.read_only)
        .destructive(def.hints.destructive)
        .idempotent(def.hints.idempotent)
        .open_world(def.hints.open_world);
    Tool::new(def.name, def.description, Arc::new(schema))
        .with_title(def.title)
        .with_annotations(annotations)
}

impl ServerHandler for CoderMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(server_info())
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&constants().versions)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name).map(mcp_tool)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context)?;
        let listed = tools::visible(caller.toolset, &caller.principal)
            .map(mcp_tool)
            .collect();
        let mut result = ListToolsResult::with_all_items(listed);
        result.meta = result_meta(&context);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        let name = request.name.as_ref();
        // Unknown here includes tools of another toolset and tools the scopes hide: the client
        // could not have seen them in tools/list (MCP: unknown tool is -32602).
        let Some(tool) = tools::visible(caller.toolset, &caller.principal).find(|t| t.name == name)
        else {
            caller.report.refused.store(true, Ordering::Relaxed);
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}"),
                None,
            ));
        };
        let started = Instant::now();
        let ctx = ToolContext {
            state: self.state.clone(),
            principal: caller.principal.clone(),
        };
        // rmcp runs this handler on a task of its own, outside the request's audit scope: the
        // entries the tool's use cases record get the caller's IP from here.
        let call = crate::audit::with_request_ip(
            caller.ip.clone(),
            tools::call(&ctx, tool, request.arguments.unwrap_or_default()),
        );
        let (outcome, notified) = match context.meta.get_progress_token() {
            Some(token) => with_progress(call, &context, token).await,
            None => (call.await, false),
        };
        let mut event = AuditEvent::new("mcp.tool.call", "mcp_tool", tool.name)
            .by(caller.principal.user.id)
            .from_ip(&caller.ip)
            .details(json!({
                "outcome": if outcome.is_ok() { "success" } else { "error" },
                "duration_ms": started.elapsed().as_millis() as u64,
            }));
        if let Some(client) = caller.principal.client_id() {
            event = event.client(client);
        }
        self.state.audit.record(event).await;
        if let Err(ToolError {
            message,
            retry_after_secs: Some(secs),
            ..
        }) = &outcome
        {
            caller
                .report
                .retry_after_secs
                .store(*secs, Ordering::Relaxed);
            return Err(ErrorData::new(
                ErrorCode(UNAVAILABLE),
                message.clone(),
                Some(json!({ "retryAfterSeconds": secs })),
            ));
        }
        // After a progress notification rmcp answers with an event stream, which the endpoint
        // does not rewrite: the result then goes through rmcp's model.
        let slot = http_extension::<RenderSlot>(&context).filter(|_| !notified);
        let mut result = match outcome {
            Ok(output) => result::success(output, slot.as_ref()),
            Err(err) => {
                caller.report.tool_error.store(true, Ordering::Relaxed);
                result::failure(err)
            }
        };
        result.meta = result_meta(&context);
        Ok(result.into())
    }
}

/// How often a long tool call reports that it is still running.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a tool call, sending `notifications/progress` every few seconds while it lasts, so a
/// client that asked for progress (a `progressToken`) knows a long command is alive. Also
/// tells whether it sent any.
async fn with_progress(
    call: impl std::future::Future<Output = tools::ToolResult>,
    context: &RequestContext<RoleServer>,
    token: ProgressToken,
) -> (tools::ToolResult, bool) {
    tokio::pin!(call);
    let mut notified = false;
    let started = Instant::now();
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + PROGRESS_INTERVAL,
        PROGRESS_INTERVAL,
    );
    loop {
        tokio::select! {
            outcome = &mut call => return (outcome, notified),
            _ = ticker.tick() => {
                let secs = started.elapsed().as_secs();
                let note = ProgressNotificationParam::new(token.clone(), secs as f64)
                    .with_message(format!("still running after {secs} s"));
                // A client that went away just misses the note; the call goes on.
                let _ = context.peer.notify_progress(note).await;
                notified = true;
            }
        }
    }
}
