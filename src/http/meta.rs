//! Deployment basics: health, build info, experiments.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::CurrentUser;
use crate::domain::Experiment;
use crate::web::{ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v2/buildinfo", get(buildinfo))
        .route("/api/v2/experiments", get(enabled_experiments))
        .route("/api/v2/experiments/available", get(available_experiments))
}

/// Liveness and database reachability: `OK`, or 503 with `Retry-After` saying the database is
/// unavailable (a load balancer takes the replica out; it answers again once the database is).
async fn healthz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state
        .services
        .store()
        .ping()
        .await
        .map_err(crate::domain::DomainError::from)?;
    Ok("OK")
}

async fn buildinfo(State(state): State<AppState>) -> Json<Value> {
    let url = state.settings.access_url_str();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "external_url": url,
        "dashboard_url": url,
        "deployment_id": state.settings.deployment_id,
    }))
}

async fn enabled_experiments(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> Json<Vec<&'static str>> {
    Json(state.settings.experiments.names())
}

async fn available_experiments(_user: CurrentUser) -> Json<Value> {
    let safe: Vec<&str> = Experiment::ALL.iter().map(|e| e.name()).collect();
    Json(json!({ "safe": safe }))
}
