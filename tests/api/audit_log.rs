//! `GET /api/v2/audit`: what tool calls and OAuth events recorded, read back by an owner with
//! Coder's search syntax and pagination; members are refused; old entries expire.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::rpc;

both_backends!(
    owners_read_the_audit_log_with_coders_search,
    members_cannot_read_the_audit_log,
    bad_searches_say_what_is_wrong,
    entries_past_their_retention_are_deleted,
);

async fn audit(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app
        .request(reqwest::Method::GET, "/api/v2/audit", Some(token))
        .query(&[("q", query)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await
}

/// An owner's OAuth grant and two tool calls, and a member's tool call.
async fn some_history(app: &TestApp) -> (String, String) {
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    for _ in 0..2 {
        let (status, _) = rpc(
            app,
            access,
            "tools/call",
            json!({"name": "coder_get_authenticated_user", "arguments": {}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // Two days later (sessions last a day: sign in again).
    app.clock.advance(Duration::days(2));
    let owner = app
        .login("owner@example.com", crate::helpers::PASSWORD)
        .await;
    let member = app.create_member(&owner, "alice").await;
    let (status, _) = rpc(
        app,
        &member,
        "tools/call",
        json!({"name": "coder_get_authenticated_user", "arguments": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    (owner, member)
}

async fn owners_read_the_audit_log_with_coders_search(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _) = some_history(&app).await;

    let all = audit(&app, &owner, "").await;
    let logs = all["audit_logs"].as_array().unwrap();
    assert_eq!(all["count"], logs.len());
    let actions: Vec<&str> = logs.iter().map(|l| l["action"].as_str().unwrap()).collect();
    // Newest first: the member's call, then the owner's, then the grant's events.
    assert_eq!(actions[0], "mcp.tool.call", "{actions:?}");
    for expected in [
        "oauth2.client.register",
        "oauth2.consent.allow",
        "oauth2.token.issue",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let newest = &logs[0];
    assert_eq!(newest["user"]["username"], "alice");
    assert_eq!(newest["resource_type"], "mcp_tool");
    assert_eq!(newest["resource_target"], "coder_get_authenticated_user");
    assert_eq!(newest["additional_fields"]["outcome"], "success");
    let times: Vec<&str> = logs.iter().map(|l| l["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    let calls = audit(&app, &owner, "action:mcp.tool.call").await;
    assert_eq!(calls["count"], 3);
    let owners_calls = audit(&app, &owner, "action:mcp.tool.call username:owner").await;
    assert_eq!(owners_calls["count"], 2);
    assert!(
        owners_calls["audit_logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["user"]["username"] == "owner" && l["client_id"].is_string())
    );
    // Alice's own entries: her sign-in and her call.
    let by_email = audit(&app, &owner, "email:alice@example.com").await;
    assert_eq!(by_email["count"], 2);
    // A bare word is a resource type, as in Coder.
    let tools = audit(&app, &owner, "mcp_tool").await;
    assert_eq!(tools["count"], 3);
    let grants = audit(&app, &owner, "resource_type:oauth2_provider_app").await;
    assert!(grants["count"].as_i64().unwrap() >= 3, "{grants}");
    // The test clock starts on 2026-01-01; the member's call came two days later.
    let early = audit(&app, &owner, "action:mcp.tool.call date_to:2026-01-02").await;
    assert_eq!(early["count"], 2);
    let late = audit(&app, &owner, "action:mcp.tool.call date_from:2026-01-03").await;
    assert_eq!(late["count"], 1);
    assert_eq!(audit(&app, &owner, "username:nobody").await["count"], 0);

    // Pages: Coder's limit and offset, with the total in `count`.
    let res = app
        .request(reqwest::Method::GET, "/api/v2/audit", Some(&owner))
        .query(&[
            ("q", "action:mcp.tool.call"),
            ("limit", "1"),
            ("offset", "1"),
        ])
        .send()
        .await
        .unwrap();
    let page = json_body(res).await;
    assert_eq!(page["count"], 3);
    assert_eq!(page["audit_logs"].as_array().unwrap().len(), 1);
    assert_eq!(page["audit_logs"][0]["id"], calls["audit_logs"][1]["id"]);
}

async fn members_cannot_read_the_audit_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, member) = some_history(&app).await;
    let res = app.get("/api/v2/audit", Some(&member)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.get("/api/v2/audit", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn bad_searches_say_what_is_wrong(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for (query, words) in [
        ("color:blue", "Unknown filter"),
        ("date_from:yesterday", "2026-01-31"),
        ("action:", "needs a value"),
    ] {
        let res = app
            .request(reqwest::Method::GET, "/api/v2/audit", Some(&owner))
            .query(&[("q", query)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        let body = json_body(res).await;
        assert!(body.to_string().contains(words), "{query}: {body}");
    }
    let res = app.get("/api/v2/audit?limit=100000", Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn entries_past_their_retention_are_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _) = some_history(&app).await;
    let before = audit(&app, &owner, "").await["count"].as_i64().unwrap();
    // Everything but what happened two days later (the owner's second sign-in, the member's
    // creation, sign-in and call) is older than a day.
    let recent = audit(&app, &owner, "date_from:2026-01-03").await["count"]
        .as_i64()
        .unwrap();
    assert!(recent >= 2 && recent < before, "{recent} of {before}");
    let deleted = app
        .state
        .services
        .delete_old_audit_logs(Duration::days(1))
        .await
        .unwrap();
    assert_eq!(deleted as i64, before - recent);
    let left = audit(&app, &owner, "").await;
    assert_eq!(left["count"], recent);
    assert_eq!(left["audit_logs"][0]["user"]["username"], "alice");
    assert_eq!(left["audit_logs"][0]["action"], "mcp.tool.call");
}
