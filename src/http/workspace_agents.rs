//! `/api/v2/workspaceagents/{id}/...`: commands, files, logs and apps of a workspace's agent.
//! Documented in `docs/workspaces.md`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ApiJson, ApiQuery, CurrentUser};
use super::files::parse_uuid;
use crate::domain::AgentId;
use crate::domain::agent::{DirListing, FileContent, FileEdits, ProcessInfo, ProcessOutput};
use crate::service::views::{
    ExecResultView, WorkspaceAgentLogView, WorkspaceAgentView, WorkspaceAppView,
};
use crate::service::{AgentTarget, ExecuteRequest};
use crate::web::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/workspaceagents/{id}", get(get_agent))
        .route("/api/v2/workspaceagents/{id}/execute", post(execute))
        .route("/api/v2/workspaceagents/{id}/ls", get(list_dir))
        .route("/api/v2/workspaceagents/{id}/read-file", get(read_file))
        .route("/api/v2/workspaceagents/{id}/write-file", post(write_file))
        .route("/api/v2/workspaceagents/{id}/edit-files", post(edit_files))
        .route("/api/v2/workspaceagents/{id}/logs", get(logs))
        .route("/api/v2/workspaceagents/{id}/apps", get(apps))
        .route(
            "/api/v2/workspaceagents/{id}/processes",
            get(list_processes),
        )
        .route(
            "/api/v2/workspaceagents/{id}/processes/{process}/output",
            get(process_output),
        )
        .route(
            "/api/v2/workspaceagents/{id}/processes/{process}/signal",
            post(signal_process),
        )
}

fn target(raw: &str) -> Result<AgentTarget, ApiError> {
    Ok(AgentTarget::Agent(AgentId(parse_uuid(
        raw,
        "workspace agent id",
    )?)))
}

async fn get_agent(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceAgentView>> {
    Ok(Json(
        state
            .services
            .get_workspace_agent(&me, &target(&id)?)
            .await?,
    ))
}

#[derive(Deserialize)]
struct ExecuteBody {
    command: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    background: bool,
}

async fn execute(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> ApiResult<Json<ExecResultView>> {
    Ok(Json(
        state
            .services
            .agent_execute(
                &me,
                &target(&id)?,
                ExecuteRequest {
                    command: body.command,
                    timeout_ms: body.timeout_ms,
                    background: body.background,
                },
            )
            .await?,
    ))
}

#[derive(Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: String,
}

async fn list_dir(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> ApiResult<Json<DirListing>> {
    Ok(Json(
        state
            .services
            .agent_list_dir(&me, &target(&id)?, &q.path)
            .await?,
    ))
}

#[derive(Deserialize)]
struct ReadQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: u64,
}

async fn read_file(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ReadQuery>,
) -> ApiResult<Json<FileContent>> {
    Ok(Json(
        state
            .services
            .agent_read_file(&me, &target(&id)?, &q.path, q.offset, q.limit)
            .await?,
    ))
}

#[derive(Deserialize)]
struct WriteBody {
    path: String,
    content: String,
}

async fn write_file(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WriteBody>,
) -> ApiResult<Json<Value>> {
    let written = state
        .services
        .agent_write_file(&me, &target(&id)?, &body.path, &body.content)
        .await?;
    Ok(Json(json!({
        "message": "File written.",
        "absolute_path_string": written,
        "size": body.content.len(),
    })))
}

#[derive(Deserialize)]
struct EditBody {
    files: Vec<FileEdits>,
}

async fn edit_files(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditBody>,
) -> ApiResult<Json<Value>> {
    let results = state
        .services
        .agent_edit_files(&me, &target(&id)?, body.files)
        .await?;
    Ok(Json(json!({
        "message": "Edits applied.",
        "files": results,
    })))
}

#[derive(Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: i64,
}

async fn logs(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AfterQuery>,
) -> ApiResult<Json<Vec<WorkspaceAgentLogView>>> {
    Ok(Json(
        state
            .services
            .agent_logs(&me, &target(&id)?, q.after)
            .await?,
    ))
}

async fn apps(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WorkspaceAppView>>> {
    Ok(Json(state.services.agent_apps(&me, &target(&id)?).await?))
}

async fn list_processes(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ProcessInfo>>> {
    Ok(Json(
        state
            .services
            .agent_list_processes(&me, &target(&id)?)
            .await?,
    ))
}

#[derive(Deserialize)]
struct OutputQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    limit: u64,
}

async fn process_output(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((id, process)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<OutputQuery>,
) -> ApiResult<Json<ProcessOutput>> {
    Ok(Json(
        state
            .services
            .agent_process_output(&me, &target(&id)?, &process, q.offset, q.limit)
            .await?,
    ))
}

#[derive(Deserialize)]
struct SignalBody {
    signal: String,
}

async fn signal_process(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((id, process)): Path<(String, String)>,
    ApiJson(body): ApiJson<SignalBody>,
) -> ApiResult<Json<ProcessInfo>> {
    Ok(Json(
        state
            .services
            .agent_signal_process(&me, &target(&id)?, &process, &body.signal)
            .await?,
    ))
}
