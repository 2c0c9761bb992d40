//! Health, build info, experiments, unknown routes, graceful shutdown.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};

both_backends!(
    healthz_and_buildinfo,
    unknown_routes_are_json_404,
    experiments_need_a_session_and_list_enabled
);

async fn healthz_and_buildinfo(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), StatusCode::OK);

    let info = json_body(app.get("/api/v2/buildinfo", None).await).await;
    assert_eq!(info["external_url"], json!(app.url));
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
    app.stop().await.unwrap();
}

async fn unknown_routes_are_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/api/v2/nope", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(res).await, json!({"message": "Route not found."}));
}

async fn experiments_need_a_session_and_list_enabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.get("/api/v2/experiments", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let token = app.create_owner().await;
    let enabled = json_body(app.get("/api/v2/experiments", Some(&token)).await).await;
    assert_eq!(enabled, json!(["mcp-server-http", "oauth2"]));
    let available = json_body(app.get("/api/v2/experiments/available", Some(&token)).await).await;
    assert_eq!(available, json!({"safe": ["mcp-server-http", "oauth2"]}));
}
