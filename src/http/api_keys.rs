//! `/api/v2/users/{user}/keys`: API tokens a user creates for scripts and agents.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::extract::{ApiJson, CurrentUser};
use crate::domain::ApiKey;
use crate::service::{CreateTokenRequest, UserSelector};
use crate::web::{ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/users/{user}/keys/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/api/v2/users/{user}/keys/{id}", delete(delete_key))
}

/// Coder's `codersdk.APIKeyWithOwner`.
#[derive(Debug, Serialize)]
struct ApiKeyResponse {
    id: String,
    user_id: Uuid,
    username: String,
    token_name: String,
    login_type: &'static str,
    scope: &'static str,
    lifetime_seconds: i64,
    last_used: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn key_response(key: ApiKey, username: &str) -> ApiKeyResponse {
    ApiKeyResponse {
        id: key.id.0,
        user_id: key.user_id.0,
        username: username.to_owned(),
        token_name: key.token_name,
        login_type: key.login_type.as_str(),
        scope: "all",
        lifetime_seconds: key.lifetime_seconds,
        last_used: key.last_used,
        expires_at: key.expires_at,
        created_at: key.created_at,
        updated_at: key.updated_at,
    }
}

#[derive(Deserialize)]
struct CreateTokenBody {
    #[serde(default)]
    token_name: String,
    /// Nanoseconds, as Go encodes `time.Duration`.
    #[serde(default)]
    lifetime: i64,
}

async fn create_token(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<CreateTokenBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let issued = state
        .services
        .create_token(
            &me,
            &UserSelector::parse(&user),
            CreateTokenRequest {
                token_name: body.token_name,
                lifetime_ns: body.lifetime,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": issued.token.expose() })),
    ))
}

async fn list_tokens(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
) -> ApiResult<Json<Vec<ApiKeyResponse>>> {
    let (owner, keys) = state
        .services
        .list_tokens(&me, &UserSelector::parse(&user))
        .await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| key_response(k, &owner.username))
            .collect(),
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path((user, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_key(&me, &UserSelector::parse(&user), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
