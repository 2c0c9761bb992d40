//! Provisioner keys (`/api/v2/organizations/{org}/provisionerkeys`, Coder's paths) and the
//! WebSocket external provisioner daemons serve jobs on.

use std::collections::BTreeMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;

use super::agent_api::pump;
use super::extract::{ApiJson, CurrentUser};
use crate::domain::provisioner::{DAEMON_KEY_HEADER, DAEMON_MAX_MESSAGE};
use crate::service::provisioner_keys::{
    CreatedProvisionerKey, ProvisionerDaemonView, ProvisionerKeyView,
};
use crate::web::{ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/organizations/{org}/provisionerkeys",
            get(list_keys).post(create_key),
        )
        .route(
            "/api/v2/organizations/{org}/provisionerkeys/{name}",
            delete(delete_key),
        )
        .route(
            "/api/v2/organizations/{org}/provisionerdaemons",
            get(list_daemons),
        )
        .route(
            "/api/v2/organizations/{org}/provisionerdaemons/serve",
            get(serve),
        )
}

#[derive(Deserialize)]
struct CreateKeyBody {
    name: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

async fn create_key(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> ApiResult<(StatusCode, Json<CreatedProvisionerKey>)> {
    let created = state
        .services
        .create_provisioner_key(&me, &org, &body.name, body.tags)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_keys(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<ProvisionerKeyView>>> {
    Ok(Json(state.services.list_provisioner_keys(&me, &org).await?))
}

async fn delete_key(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((org, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_provisioner_key(&me, &org, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's daemons, whichever replica holds them, with those that left as offline.
async fn list_daemons(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(org): Path<String>,
) -> ApiResult<Json<Vec<ProvisionerDaemonView>>> {
    Ok(Json(
        state.services.list_provisioner_daemons(&me, &org).await?,
    ))
}

#[derive(Deserialize)]
struct DaemonQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

async fn serve(
    State(state): State<AppState>,
    Path(_org): Path<String>,
    Query(daemon): Query<DaemonQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let key = headers
        .get(DAEMON_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let session = state
        .services
        .open_daemon_session(key, &daemon.id, &daemon.name, &daemon.version)
        .await?;
    Ok(upgrade
        .max_message_size(DAEMON_MAX_MESSAGE)
        .max_frame_size(DAEMON_MAX_MESSAGE)
        .on_upgrade(move |socket| pump(socket, session, "provisioner daemon"))
        .into_response())
}
