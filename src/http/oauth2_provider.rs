//! `/api/v2/oauth2-provider`: owners manage OAuth2 applications, their secrets and the
//! registration switch; users list and revoke the applications they authorized.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::set_header::SetResponseHeaderLayer;

use super::extract::{ApiJson, ApiQuery, ClientIp, CurrentUser};
use crate::domain::oauth::CimdPolicy;
use crate::domain::{AppSecret, DomainError, Experiment, FieldError, OAuthApp, ScopeSet};
use crate::service::UserSelector;
use crate::service::{AppInput, AppRequest, AuthorizedApp};
use crate::web::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/oauth2-provider/apps",
            get(list_apps).post(create_app),
        )
        .route(
            "/api/v2/oauth2-provider/apps/{app}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route(
            "/api/v2/oauth2-provider/apps/{app}/secrets",
            get(list_secrets).post(create_secret),
        )
        .route(
            "/api/v2/oauth2-provider/apps/{app}/secrets/{secret}",
            delete(delete_secret),
        )
        .route(
            "/api/v2/oauth2-provider/settings",
            get(get_settings).put(put_settings),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// After authentication, refuses with a message naming the experiment (Coder's wording).
fn require_oauth2(state: &AppState) -> ApiResult<()> {
    if state.experiment_enabled(Experiment::OAuth2) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "OAuth2 Provider functionality requires enabling the 'oauth2' experiment.",
        )
        .with_detail("Start the server with --experiments=oauth2 (or CODER_EXPERIMENTS=oauth2)."))
    }
}

/// Coder's `codersdk.OAuth2ProviderApp`, plus what we know about the client.
pub fn app_json(state: &AppState, app: &OAuthApp) -> Value {
    let base = state.oauth.issuer();
    json!({
        "id": app.id.0,
        "name": app.name,
        "callback_url": app.redirect_uris.first().cloned().unwrap_or_default(),
        "redirect_uris": app.redirect_uris,
        "icon": app.icon,
        "scope": app.scope,
        "grant_types": app.grant_types,
        "builtin": app.is_builtin(),
        "client_type": app.client_type.as_str(),
        "token_endpoint_auth_method": app.token_endpoint_auth_method.as_str(),
        "dynamically_registered": app.dynamically_registered,
        "client_id": app.wire_client_id(),
        "client_id_metadata_document": app.metadata_document_url.is_some(),
        "created_at": app.created_at,
        "last_used_at": app.last_used_at,
        "endpoints": {
            "authorization": format!("{base}/oauth2/authorize"),
            "token": format!("{base}/oauth2/tokens"),
            "token_revoke": format!("{base}/oauth2/revoke"),
            "device_authorization": format!("{base}/oauth2/device"),
        },
    })
}

fn authorized_json(state: &AppState, entry: &AuthorizedApp) -> Value {
    let mut app = app_json(state, &entry.app);
    app["authorization"] = json!({
        "scope": entry.scopes.to_wire(),
        "scopes": entry.scopes.iter().map(|s| json!({"name": s.name(), "description": s.description()})).collect::<Vec<_>>(),
        "grants": entry.grants,
        "authorized_at": entry.authorized_at,
        "last_used_at": entry.last_used_at,
    });
    app
}

#[derive(Deserialize, Default)]
struct ListQuery {
    user_id: Option<String>,
}

/// Without `user_id`: every application (owners). With it: the applications that user has
/// authorized (the user themself, or an owner).
async fn list_apps(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    require_oauth2(&state)?;
    if let Some(user) = q.user_id.filter(|u| !u.is_empty()) {
        let apps = state
            .services
            .list_authorized_apps(&me, &UserSelector::parse(&user))
            .await?;
        return Ok(Json(
            apps.iter().map(|a| authorized_json(&state, a)).collect(),
        ));
    }
    let apps = state.services.list_oauth_apps(&me).await?;
    Ok(Json(apps.iter().map(|a| app_json(&state, a)).collect()))
}

#[derive(Deserialize)]
struct AppBody {
    #[serde(default)]
    name: String,
    callback_url: Option<String>,
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    icon: String,
    scope: Option<String>,
    /// Absent keeps the application's grant types (a new one: authorization_code and
    /// refresh_token).
    grant_types: Option<Vec<String>>,
}

impl From<AppBody> for AppRequest {
    fn from(b: AppBody) -> Self {
        AppRequest {
            input: AppInput {
                name: b.name,
                callback_url: b.callback_url,
                redirect_uris: b.redirect_uris,
                icon: b.icon,
                scope: b.scope,
            },
            grant_types: b.grant_types,
        }
    }
}

async fn create_app(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<AppBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_oauth2(&state)?;
    let app = state
        .services
        .create_oauth_app(&me, AppRequest::from(body), &ip.to_string())
        .await?;
    Ok((StatusCode::CREATED, Json(app_json(&state, &app))))
}

async fn get_app(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(app): Path<String>,
) -> ApiResult<Json<Value>> {
    require_oauth2(&state)?;
    let app = state.services.get_oauth_app(&me, &app).await?;
    Ok(Json(app_json(&state, &app)))
}

async fn update_app(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<AppBody>,
) -> ApiResult<Json<Value>> {
    require_oauth2(&state)?;
    let app = state
        .services
        .update_oauth_app(&me, &app, AppRequest::from(body), &ip.to_string())
        .await?;
    Ok(Json(app_json(&state, &app)))
}

async fn delete_app(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
) -> ApiResult<StatusCode> {
    require_oauth2(&state)?;
    state
        .services
        .delete_oauth_app(&me, &app, &ip.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn secret_json(secret: &AppSecret) -> Value {
    json!({
        "id": secret.id,
        "client_secret_truncated": secret.display_secret,
        "last_used_at": secret.last_used_at,
        "created_at": secret.created_at,
    })
}

async fn list_secrets(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    require_oauth2(&state)?;
    let secrets = state.services.list_oauth_app_secrets(&me, &app).await?;
    Ok(Json(secrets.iter().map(secret_json).collect()))
}

async fn create_secret(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    require_oauth2(&state)?;
    let (secret, full) = state
        .services
        .create_oauth_app_secret(&me, &app, &ip.to_string())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": secret.id, "client_secret_full": full.expose() })),
    ))
}

async fn delete_secret(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    Path((app, secret)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_oauth2(&state)?;
    state
        .services
        .delete_oauth_app_secret(&me, &app, &secret, &ip.to_string())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct SettingsBody {
    dynamic_client_registration_enabled: Option<bool>,
    client_id_metadata_document_policy: Option<String>,
    client_id_metadata_document_hosts: Option<Vec<String>>,
}

async fn get_settings(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> ApiResult<Json<Value>> {
    require_oauth2(&state)?;
    let enabled = state.services.get_dynamic_registration(&me).await?;
    let (policy, hosts) = state.services.get_metadata_document_policy(&me).await?;
    Ok(Json(json!({
        "dynamic_client_registration_enabled": enabled,
        "client_id_metadata_document_policy": policy.as_str(),
        "client_id_metadata_document_hosts": hosts,
        "client_id_metadata_document_enabled": metadata_documents_on(&state).await?,
        "scopes": ScopeSet::all().to_wire(),
    })))
}

/// Whether clients may identify themselves by a metadata document now: the server flag and
/// the owners' policy.
async fn metadata_documents_on(state: &AppState) -> ApiResult<bool> {
    state
        .oauth
        .metadata_documents_enabled()
        .await
        .map_err(|e| DomainError::from(e).into())
}

async fn put_settings(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SettingsBody>,
) -> ApiResult<Json<Value>> {
    require_oauth2(&state)?;
    let ip = ip.to_string();
    let policy = match body.client_id_metadata_document_policy.as_deref() {
        None => None,
        Some(raw) => Some(CimdPolicy::parse(raw).ok_or_else(|| {
            DomainError::invalid_fields(
                "Invalid metadata document policy.",
                vec![FieldError::new(
                    "client_id_metadata_document_policy",
                    "must be any, listed_hosts or none",
                )],
            )
        })?),
    };
    if policy.is_some() || body.client_id_metadata_document_hosts.is_some() {
        let policy = match policy {
            Some(p) => p,
            None => state.services.get_metadata_document_policy(&me).await?.0,
        };
        state
            .services
            .set_metadata_document_policy(&me, policy, body.client_id_metadata_document_hosts, &ip)
            .await?;
    }
    if let Some(enabled) = body.dynamic_client_registration_enabled {
        state
            .services
            .set_dynamic_registration(&me, enabled, &ip)
            .await?;
    }
    get_settings(State(state), CurrentUser(me)).await
}
