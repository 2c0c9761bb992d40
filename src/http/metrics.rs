//! The Prometheus listener's only page: `GET /metrics`, in the OpenMetrics text format. It is
//! served on `--prometheus-address`, never beside the API (docs/metrics.md).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics_page))
}

async fn metrics_page(State(state): State<AppState>) -> Response {
    let sample = state.services.metrics_sample().await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(sample),
    )
        .into_response()
}
