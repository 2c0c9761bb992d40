//! The routes workspace agents call (`/api/v2/workspaceagents/me/...`, Coder's paths), served on
//! the main listener and on the agent socket, and the route other replicas relay agent requests
//! through.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};

use super::extract::ApiJson;
use super::files::parse_uuid;
use crate::domain::AgentId;
use crate::domain::agent::{
    AgentManifest, AgentRequest, MAX_MESSAGE, PatchAgentLogs, RPC_PATH, ReportLifecycle,
    TOKEN_HEADER, VERSION_HEADER,
};
use crate::service::agent_api::AgentIdentity;
use crate::service::agent_links::RELAY_SECRET_HEADER;
use crate::service::rpc_link::LinkSession;
use crate::web::{ApiError, ApiResult, AppState};

/// How often the server pings an agent, and how long it waits to hear anything back.
const PING_INTERVAL: Duration = Duration::from_secs(15);
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// The first read buffer of an agent's WebSocket. tungstenite's default, 128 KiB, is zeroed on
/// the first read and kept for the connection's life: 12.5 MiB of RSS for 100 running
/// workspaces that mostly send heartbeats. It grows for a larger message (up to
/// `MAX_MESSAGE`) as before (docs/benchmarks.md, issue 19).
const READ_BUFFER: usize = 16 * 1024;

/// The routes an agent uses; the agent socket serves only these.
pub fn agent_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/workspaceagents/me/manifest", get(manifest))
        .route("/api/v2/workspaceagents/me/logs", patch(patch_logs))
        .route(
            "/api/v2/workspaceagents/me/report-lifecycle",
            post(report_lifecycle),
        )
        .route(RPC_PATH, get(rpc))
}

/// The agent routes plus the relay between replicas.
pub fn routes() -> Router<AppState> {
    agent_routes().route("/api/v2/replicas/relay/agents/{id}", post(relay))
}

/// The agent a request's token belongs to.
pub struct CurrentAgent(pub AgentIdentity);

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        state.services.check_agent_version(header(VERSION_HEADER))?;
        let token = header(TOKEN_HEADER).unwrap_or_default();
        Ok(CurrentAgent(
            state.services.authenticate_agent(token).await?,
        ))
    }
}

async fn manifest(
    State(state): State<AppState>,
    CurrentAgent(me): CurrentAgent,
) -> ApiResult<Json<AgentManifest>> {
    Ok(Json(state.services.agent_manifest(&me).await?))
}

async fn patch_logs(
    State(state): State<AppState>,
    CurrentAgent(me): CurrentAgent,
    ApiJson(body): ApiJson<PatchAgentLogs>,
) -> ApiResult<StatusCode> {
    state.services.agent_patch_logs(&me, body).await?;
    Ok(StatusCode::OK)
}

async fn report_lifecycle(
    State(state): State<AppState>,
    CurrentAgent(me): CurrentAgent,
    ApiJson(body): ApiJson<ReportLifecycle>,
) -> ApiResult<StatusCode> {
    state.services.agent_report_lifecycle(&me, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rpc(
    State(state): State<AppState>,
    CurrentAgent(me): CurrentAgent,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let session = state.services.open_agent_session(&me).await?;
    tracing::info!(agent = %me.agent.id, workspace = %me.workspace.id, "workspace agent connected");
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| pump(socket, session, "workspace agent")))
}

/// Moves requests to the peer (an agent, a provisioner daemon) and its answers back until
/// either side goes away.
pub(super) async fn pump(socket: WebSocket, mut session: LinkSession, peer: &'static str) {
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut heard = tokio::time::Instant::now();
    let reason = loop {
        tokio::select! {
            outgoing = session.next_outgoing() => {
                let Some(text) = outgoing else { break "replaced by a newer connection, or the server stops" };
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break "the connection failed while sending";
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    heard = tokio::time::Instant::now();
                    session.incoming(text.as_str());
                }
                Some(Ok(Message::Close(_))) | None => break "the peer closed the connection",
                Some(Err(_)) => break "the connection failed",
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE_LIMIT {
                    break "the peer stopped answering pings";
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break "the connection failed while pinging";
                }
            }
        }
    };
    tracing::info!(peer, reason, "disconnected");
    let _ = sink.close().await;
}

async fn relay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AgentRequest>,
) -> ApiResult<Response> {
    let agent = AgentId(parse_uuid(&id, "workspace agent id")?);
    let secret = headers
        .get(RELAY_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state
        .services
        .relay_agent_call(secret, agent, request)
        .await?
    {
        Some(answer) => Ok(Json(answer).into_response()),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Relayed agent requests must carry this deployment's relay secret.",
        )),
    }
}
