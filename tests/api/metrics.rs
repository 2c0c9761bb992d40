//! `/metrics` on the Prometheus address after a scripted session: sign-in, an OAuth flow with a
//! refresh, a replayed refresh token and a revocation, MCP tool calls, a workspace build. Each
//! family shows the right counts, and no label holds a raw path or anything a caller sent.

use std::collections::HashMap;

use coderd::domain::{Experiment, Experiments};
use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::rpc;
use crate::oauth_client::AuthRequest;
use crate::workspace_support::{create_template, create_workspace};

both_backends!(metrics_count_a_scripted_session);

/// The samples of a page, by series (`name{labels}`).
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} among {:#?}", sorted(samples)))
}

fn sorted(samples: &HashMap<String, f64>) -> Vec<&String> {
    let mut keys: Vec<&String> = samples.keys().collect();
    keys.sort();
    keys
}

async fn metrics_count_a_scripted_session(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.prometheus_address = Some("127.0.0.1:0".into());
    })
    .await;
    let metrics_url = format!(
        "http://{}/metrics",
        app.metrics_addr.expect("metrics served")
    );

    // Sign-in: the first user, then two logins (one with a wrong password).
    let owner = app.create_owner().await;
    let wrong = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let user_id = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/v2/users/{user_id}"), Some(&owner))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/no/such/secret-path-42", None).await.status(),
        StatusCode::NOT_FOUND
    );

    // OAuth: a confidential client is allowed twice, refreshes once, then replays the rotated
    // refresh token (its grant is revoked); its second grant is revoked by the client. A public
    // client is denied.
    let claude = app.register_claude().await;
    let first = app.obtain_tokens(&owner, &claude).await;
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(
        app.refresh_tokens(&claude, refresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh_tokens(&claude, refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let second = app.obtain_tokens(&owner, &claude).await;
    let access = second["access_token"].as_str().unwrap().to_owned();
    let cursor = app.register_cursor().await;
    let denied = app
        .consent(&owner, &AuthRequest::for_client(&cursor), "deny")
        .await;
    assert_eq!(denied.status(), StatusCode::FOUND);

    // MCP: a tools/list, two calls of one tool, one of a tool that does not exist, and one
    // without a token.
    assert_eq!(
        rpc(&app, &access, "tools/list", json!({})).await.0,
        StatusCode::OK
    );
    for _ in 0..2 {
        let (status, body) = rpc(
            &app,
            &access,
            "tools/call",
            json!({"name": "coder_get_authenticated_user", "arguments": {}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, body) = rpc(
        &app,
        &access,
        "tools/call",
        json!({"name": "no_such_tool_x", "arguments": {}}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(
        rpc(&app, "", "tools/list", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let revoked = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("token", second["refresh_token"].as_str().unwrap()),
            ("client_id", claude.id.as_str()),
            ("client_secret", claude.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    // A workspace build, whose agent then stays connected.
    let template = create_template(
        &app,
        &owner,
        "metrics",
        "agent:\n  startup_script: echo started\n",
        &[],
    )
    .await;
    let ws = create_workspace(&app, &owner, "measured", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");

    let res = app.client.get(&metrics_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let page = res.text().await.unwrap();
    assert!(page.ends_with("# EOF\n"), "{page}");
    let s = samples(&page);

    // HTTP, by route pattern.
    assert_eq!(
        value(
            &s,
            r#"coderd_http_requests_total{route="/api/v2/users/login",method="POST",status="201"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"coderd_http_requests_total{route="/api/v2/users/login",method="POST",status="401"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"coderd_http_requests_total{route="/api/v2/users/{user}",method="GET",status="200"}"#
        ),
        2.0,
        "/api/v2/users/me and /api/v2/users/<id>: one route"
    );
    assert_eq!(
        value(
            &s,
            r#"coderd_http_requests_total{route="unmatched",method="GET",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"coderd_http_request_duration_seconds_count{route="/api/v2/users/login",method="POST"}"#
        ),
        2.0
    );
    // MCP, by method, tool and outcome.
    let mcp = |method: &str, tool: &str, outcome: &str| {
        value(
            &s,
            &format!(
                r#"coderd_mcp_requests_total{{method="{method}",tool="{tool}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(mcp("tools/list", "", "success"), 1.0);
    assert_eq!(
        mcp("tools/call", "coder_get_authenticated_user", "success"),
        2.0
    );
    assert_eq!(mcp("tools/call", "unknown", "error"), 1.0);
    assert_eq!(mcp("unknown", "", "unauthorized"), 1.0);
    assert_eq!(
        value(
            &s,
            r#"coderd_mcp_request_duration_seconds_count{method="tools/call",tool="coder_get_authenticated_user"}"#
        ),
        2.0
    );
    // OAuth, by client type.
    let oauth = |series: &str| value(&s, &format!("coderd_oauth2_{series}"));
    assert_eq!(
        oauth(r#"authorizations_total{client_type="confidential",decision="allow"}"#),
        2.0
    );
    assert_eq!(
        oauth(r#"authorizations_total{client_type="public",decision="deny"}"#),
        1.0
    );
    assert_eq!(
        oauth(r#"tokens_issued_total{client_type="confidential",grant_type="authorization_code"}"#),
        2.0
    );
    assert_eq!(
        oauth(r#"tokens_issued_total{client_type="confidential",grant_type="refresh_token"}"#),
        1.0
    );
    assert_eq!(
        oauth(r#"reuse_detected_total{client_type="confidential",credential="refresh_token"}"#),
        1.0
    );
    assert_eq!(
        oauth(r#"revocations_total{client_type="confidential",reason="reuse"}"#),
        1.0
    );
    assert_eq!(
        oauth(r#"revocations_total{client_type="confidential",reason="client"}"#),
        1.0
    );
    // Builds, the queue, the database and the agents.
    assert_eq!(
        value(
            &s,
            r#"coderd_workspace_builds_total{transition="start",outcome="succeeded"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"coderd_workspace_build_duration_seconds_count{transition="start",outcome="succeeded"}"#
        ),
        1.0
    );
    assert_eq!(value(&s, "coderd_provisioner_jobs_pending"), 0.0);
    assert_eq!(value(&s, "coderd_agents_connected"), 1.0);
    assert_eq!(value(&s, "coderd_database_up"), 1.0);
    assert!(value(&s, "coderd_database_connections_open") >= 1.0);
    assert_eq!(value(&s, "coderd_database_connections_waiting"), 0.0);
    for kind in ["unavailable", "conflict", "other"] {
        value(
            &s,
            &format!(r#"coderd_database_errors_total{{kind="{kind}"}}"#),
        );
    }

    // Bounded labels: route patterns only, nothing the callers sent.
    for leaked in [
        user_id.as_str(),
        "secret-path-42",
        "no_such_tool_x",
        claude.id.as_str(),
        "measured",
    ] {
        assert!(
            !page.contains(leaked),
            "{leaked} is in the metrics:\n{page}"
        );
    }
    // The page is not on the API listener.
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::NOT_FOUND
    );
}
