//! `GET /api/v2/audit`: the audit log, for owners, with Coder's query style
//! (`?q=username:alice action:mcp.tool.call&limit=50&offset=0`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{ApiQuery, CurrentUser};
use crate::service::audit::AuditLogPage;
use crate::web::{ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v2/audit", get(list_audit_logs))
}

#[derive(Deserialize)]
struct AuditParams {
    #[serde(default)]
    q: String,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_audit_logs(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditLogPage>> {
    // What was recorded up to this request is shown, not what is still on its way to the table
    // (unless the writer is waiting out a database outage: then the list fails by itself).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), state.audit.flush()).await;
    Ok(Json(
        state
            .services
            .list_audit_logs(&actor, &params.q, params.limit, params.offset)
            .await?,
    ))
}
