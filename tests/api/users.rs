//! First user, sign-in, user management.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, json_body};

both_backends!(first_user_is_created_once_and_becomes_owner);

async fn first_user_is_created_once_and_becomes_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/api/v2/users/first", None).await.status(), StatusCode::NOT_FOUND);
    let token = app.create_owner().await;
    assert_eq!(app.get("/api/v2/users/first", None).await.status(), StatusCode::OK);

    let again = app
        .post_json(
            "/api/v2/users/first",
            None,
            &json!({"email": "other@example.com", "username": "other", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let me = json_body(app.get("/api/v2/users/me", Some(&token)).await).await;
    assert_eq!(me["username"], "owner");
    assert_eq!(me["roles"], json!([{"name": "owner", "display_name": "Owner"}]));
}
