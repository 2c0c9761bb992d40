//! Workspaces and workspace builds under `/api/v2`, with Coder's paths and fields. Build logs can
//! be followed as newline-delimited JSON until the build ends.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{ApiJson, ApiQuery, CurrentUser};
use super::files::parse_uuid;
use crate::domain::{
    BuildId, Page, ParameterValue, Principal, TemplateId, TemplateVersionId, Transition, ZeroLimit,
};
use crate::service::views::{WorkspaceBuildView, WorkspaceView, WorkspacesView};
use crate::service::{CreateBuildRequest, CreateWorkspaceRequest, Services, UserSelector};
use crate::web::{ApiError, ApiResult, AppState};

/// How often a followed log is re-read, and how long a follower may stay.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
const FOLLOW_MAX: Duration = Duration::from_secs(600);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/users/{user}/workspaces", post(create_workspace))
        .route(
            "/api/v2/users/{user}/workspace/{name}",
            get(get_workspace_by_name),
        )
        .route("/api/v2/workspaces", get(list_workspaces))
        .route("/api/v2/workspaces/{id}", get(get_workspace))
        .route(
            "/api/v2/workspaces/{id}/builds",
            get(list_builds).post(create_build),
        )
        .route("/api/v2/workspacebuilds/{id}", get(get_build))
        .route("/api/v2/workspacebuilds/{id}/logs", get(build_logs))
        .route(
            "/api/v2/workspacebuilds/{id}/parameters",
            get(build_parameters),
        )
        .route("/api/v2/workspacebuilds/{id}/cancel", patch(cancel_build))
}

fn build_id(raw: &str) -> Result<BuildId, ApiError> {
    parse_uuid(raw, "workspace build id").map(BuildId)
}

/// Coder's `CreateWorkspaceRequest` (the fields this server uses).
#[derive(Deserialize)]
struct CreateWorkspaceBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template_id: Option<Uuid>,
    #[serde(default)]
    template_version_id: Option<Uuid>,
    #[serde(default)]
    rich_parameter_values: Vec<ParameterValue>,
}

async fn create_workspace(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<CreateWorkspaceBody>,
) -> ApiResult<Response> {
    let workspace = state
        .services
        .create_workspace(
            &me,
            &UserSelector::parse(&user),
            CreateWorkspaceRequest {
                name: body.name,
                template_id: body.template_id.map(TemplateId),
                template_version_id: body.template_version_id.map(TemplateVersionId),
                rich_parameter_values: body.rich_parameter_values,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(workspace)).into_response())
}

async fn get_workspace_by_name(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(
        state
            .services
            .get_workspace_by_owner_and_name(&me, &UserSelector::parse(&user), &name)
            .await?,
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

async fn list_workspaces(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<WorkspacesView>> {
    let page = Page::requested(q.limit, q.offset, ZeroLimit::MeansMax)?;
    Ok(Json(state.services.list_workspaces(&me, &q.q, page).await?))
}

async fn get_workspace(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    let id = parse_uuid(&id, "workspace id")?;
    Ok(Json(
        state.services.get_workspace(&me, &id.to_string()).await?,
    ))
}

/// Coder's `CreateWorkspaceBuildRequest` (the fields this server uses).
#[derive(Deserialize)]
struct CreateBuildBody {
    transition: Transition,
    #[serde(default)]
    template_version_id: Option<Uuid>,
    #[serde(default)]
    rich_parameter_values: Option<Vec<ParameterValue>>,
}

async fn create_build(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBuildBody>,
) -> ApiResult<Response> {
    let id = parse_uuid(&id, "workspace id")?;
    let build = state
        .services
        .create_workspace_build(
            &me,
            &id.to_string(),
            CreateBuildRequest {
                transition: body.transition,
                template_version_id: body.template_version_id.map(TemplateVersionId),
                rich_parameter_values: body.rich_parameter_values,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(build)).into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

async fn list_builds(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Vec<WorkspaceBuildView>>> {
    let id = parse_uuid(&id, "workspace id")?;
    let page = Page::requested(q.limit, q.offset, ZeroLimit::MeansMax)?;
    Ok(Json(
        state
            .services
            .list_workspace_builds(&me, &id.to_string(), page)
            .await?,
    ))
}

async fn get_build(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceBuildView>> {
    Ok(Json(
        state
            .services
            .get_workspace_build(&me, build_id(&id)?)
            .await?,
    ))
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    follow: bool,
}

/// The build's log lines; with `follow=true`, a stream of one JSON line per log line that ends
/// when the build does.
async fn build_parameters(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ParameterValue>>> {
    Ok(Json(
        state
            .services
            .workspace_build_parameters(&me, build_id(&id)?)
            .await?,
    ))
}

async fn build_logs(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Response> {
    let id = build_id(&id)?;
    let (logs, complete) = state
        .services
        .workspace_build_logs(&me, id, q.after)
        .await?;
    if !q.follow {
        return Ok(Json(logs).into_response());
    }
    let after = logs.last().map_or(q.after, |l| l.id);
    let first = ndjson(&logs);
    let follower = Follower {
        services: state.services.clone(),
        principal: me,
        build: id,
        after,
        done: complete,
        deadline: tokio::time::Instant::now() + FOLLOW_MAX,
    };
    let stream = futures_util::stream::unfold(
        (Some(first), follower),
        |(first, mut follower)| async move {
            if let Some(chunk) = first {
                return Some((Ok::<Bytes, std::io::Error>(chunk), (None, follower)));
            }
            let chunk = follower.next().await?;
            Some((Ok(chunk), (None, follower)))
        },
    );
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn ndjson<T: serde::Serialize>(items: &[T]) -> Bytes {
    let mut out = Vec::new();
    for item in items {
        if serde_json::to_writer(&mut out, item).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

/// Polls a build's log for new lines until the build has ended and every line was sent.
struct Follower {
    services: Services,
    principal: Principal,
    build: BuildId,
    after: i64,
    done: bool,
    deadline: tokio::time::Instant,
}

impl Follower {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done || tokio::time::Instant::now() >= self.deadline {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            let (logs, complete) = self
                .services
                .workspace_build_logs(&self.principal, self.build, self.after)
                .await
                .ok()?;
            self.done = complete;
            if let Some(last) = logs.last() {
                self.after = last.id;
                return Some(ndjson(&logs));
            }
        }
    }
}

async fn cancel_build(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let status = state
        .services
        .cancel_workspace_build(&me, build_id(&id)?)
        .await?;
    Ok(Json(json!({
        "message": "Job has been marked as canceled.",
        "status": status.as_str(),
    })))
}
