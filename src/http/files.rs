//! `/api/v2/files`: uploading template archives and downloading them again.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::extract::CurrentUser;
use crate::domain::FileId;
use crate::service::templates::MAX_FILE_SIZE;
use crate::web::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/files", post(upload))
        .route("/api/v2/files/{id}", get(download))
}

/// Parses a UUID path segment, as Coder does, into a 400 naming the segment.
pub(super) fn parse_uuid(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request(format!("Invalid {what} {raw:?}: expected a UUID.")))
}

/// Coder answers 201 `{"hash": <file id>}`, or 200 when the same user uploaded the same bytes.
async fn upload(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    request: Request,
) -> ApiResult<Response> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The global JSON cap does not apply to this raw body: templates get their own limit.
    let data = axum::body::to_bytes(request.into_body(), MAX_FILE_SIZE)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "The file is larger than {} MiB; keep large data out of templates.",
                    MAX_FILE_SIZE / 1024 / 1024
                ),
            )
        })?;
    let (file, created) = state
        .services
        .upload_file(&me, &content_type, data.to_vec())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "hash": file.id.0 }))).into_response())
}

async fn download(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = FileId(parse_uuid(&id, "file id")?);
    let file = state.services.get_file(&me, id).await?;
    let mut response = Body::from(file.data).into_response();
    if let Ok(v) = HeaderValue::from_str(&file.mimetype) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}
