//! Organizations, templates and template versions under `/api/v2`, with Coder's paths and fields.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{ApiJson, ApiQuery, CurrentUser};
use super::files::parse_uuid;
use crate::domain::{FileId, TemplateId, TemplateVersionId};
use crate::service::views::{
    OrganizationView, ProvisionerJobLogView, TemplateVersionParameterView, TemplateVersionView,
    TemplateView,
};
use crate::service::{CreateTemplateRequest, CreateTemplateVersionRequest};
use crate::web::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/organizations/{org}", get(get_organization))
        .route(
            "/api/v2/organizations/{org}/templateversions",
            post(create_version),
        )
        .route(
            "/api/v2/organizations/{org}/templates",
            get(list_org_templates).post(create_template),
        )
        .route(
            "/api/v2/organizations/{org}/templates/{name}",
            get(get_template_by_name),
        )
        .route("/api/v2/templateversions/{id}", get(get_version))
        .route(
            "/api/v2/templateversions/{id}/rich-parameters",
            get(version_parameters),
        )
        .route("/api/v2/templateversions/{id}/logs", get(version_logs))
        .route("/api/v2/templates", get(list_templates))
        .route(
            "/api/v2/templates/{id}",
            get(get_template).delete(delete_template),
        )
        .route(
            "/api/v2/templates/{id}/versions",
            get(list_versions).patch(set_active_version),
        )
}

fn template_id(raw: &str) -> Result<TemplateId, ApiError> {
    parse_uuid(raw, "template id").map(TemplateId)
}

fn version_id(raw: &str) -> Result<TemplateVersionId, ApiError> {
    parse_uuid(raw, "template version id").map(TemplateVersionId)
}

async fn get_organization(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
) -> ApiResult<Json<OrganizationView>> {
    Ok(Json(state.services.organization_view(&me, &org).await?))
}

/// Coder's `CreateTemplateVersionRequest`; `storage_method` and `provisioner` have one value
/// here and are ignored.
#[derive(Deserialize)]
struct CreateVersionBody {
    #[serde(default)]
    file_id: Option<Uuid>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    template_id: Option<Uuid>,
    /// Which provisioners build its workspaces.
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
}

async fn create_version(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<CreateVersionBody>,
) -> ApiResult<Response> {
    let version = state
        .services
        .create_template_version(
            &me,
            &org,
            CreateTemplateVersionRequest {
                file_id: body.file_id.map(FileId),
                name: body.name,
                message: body.message,
                template_id: body.template_id.map(TemplateId),
                provisioner_tags: body.tags,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(version)).into_response())
}

async fn get_version(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateVersionView>> {
    Ok(Json(
        state
            .services
            .get_template_version(&me, version_id(&id)?)
            .await?,
    ))
}

async fn version_parameters(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TemplateVersionParameterView>>> {
    Ok(Json(
        state
            .services
            .template_version_parameters(&me, version_id(&id)?)
            .await?,
    ))
}

#[derive(Deserialize)]
struct AfterQuery {
    #[serde(default)]
    after: i64,
}

async fn version_logs(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AfterQuery>,
) -> ApiResult<Json<Vec<ProvisionerJobLogView>>> {
    Ok(Json(
        state
            .services
            .template_version_logs(&me, version_id(&id)?, q.after)
            .await?,
    ))
}

/// Coder's `CreateTemplateRequest` (the fields this server uses).
#[derive(Deserialize)]
struct CreateTemplateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    template_version_id: Option<Uuid>,
}

async fn create_template(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<CreateTemplateBody>,
) -> ApiResult<Response> {
    let template = state
        .services
        .create_template(
            &me,
            &org,
            CreateTemplateRequest {
                name: body.name,
                display_name: body.display_name,
                description: body.description,
                icon: body.icon,
                template_version_id: body.template_version_id.map(TemplateVersionId),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(template)).into_response())
}

async fn list_org_templates(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<TemplateView>>> {
    Ok(Json(state.services.list_templates(&me, Some(&org)).await?))
}

async fn list_templates(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> ApiResult<Json<Vec<TemplateView>>> {
    Ok(Json(state.services.list_templates(&me, None).await?))
}

async fn get_template_by_name(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(
        state
            .services
            .get_template_by_name(&me, &org, &name)
            .await?,
    ))
}

async fn get_template(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(
        state.services.get_template(&me, template_id(&id)?).await?,
    ))
}

async fn list_versions(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TemplateVersionView>>> {
    Ok(Json(
        state
            .services
            .list_template_versions(&me, template_id(&id)?)
            .await?,
    ))
}

/// Coder's `UpdateActiveTemplateVersion`.
#[derive(Deserialize)]
struct ActiveVersionBody {
    id: Uuid,
}

async fn set_active_version(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ActiveVersionBody>,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .services
        .update_template_active_version(&me, template_id(&id)?, TemplateVersionId(body.id))
        .await?;
    Ok(Json(json!({"message": "Updated the active version."})))
}

async fn delete_template(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .services
        .delete_template(&me, template_id(&id)?)
        .await?;
    Ok(Json(json!({"message": "Template has been deleted!"})))
}
