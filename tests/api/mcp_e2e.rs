//! The remote MCP endpoint end to end, as claude.ai uses it: discovery from the 401, dynamic
//! registration, consent (the test plays the browser), token, MCP calls that create a workspace
//! and run a command in it, refresh, revocation. Plus isolation between users and scopes.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::{call, rpc};
use crate::oauth_client::{AuthRequest, CLAUDE_CALLBACK, MCP_PATH, location_params, param};
use crate::workspace_support::{create_template, create_workspace};

both_backends!(
    claude_like_client_runs_a_command_in_a_new_workspace,
    users_and_scopes_are_isolated,
    long_commands_report_progress_then_their_result
);

const MANIFEST: &str = "agent:\n  startup_script: echo started\n";

async fn claude_like_client_runs_a_command_in_a_new_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    create_template(&app, &owner, "basic", MANIFEST, &[]).await;
    let alice = app.create_member(&owner, "alice").await;

    // 1. The first call carries no token: 401 names the protected resource metadata.
    let res = app
        .client
        .post(app.url(MCP_PATH))
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"Anthropic/ClaudeAI","version":"1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let prm_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("resource_metadata in the challenge")
        .to_owned();
    let challenge_scope = challenge
        .split("scope=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("scope in the challenge")
        .to_owned();

    // 2. Discovery.
    let prm: Value = app
        .client
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resource = prm["resource"].as_str().unwrap().to_owned();
    assert_eq!(resource, app.url(MCP_PATH));
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    let meta: Value = app
        .client
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // 3. Registration, as claude.ai sends it.
    let registered: Value = app
        .client
        .post(meta["registration_endpoint"].as_str().unwrap())
        .json(&json!({"client_name":"claudeai","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_post","scope":"claudeai","redirect_uris":[CLAUDE_CALLBACK]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oauth = BasicClient::new(ClientId::new(
        registered["client_id"].as_str().unwrap().into(),
    ))
    .set_client_secret(ClientSecret::new(
        registered["client_secret"].as_str().unwrap().into(),
    ))
    .set_auth_uri(AuthUrl::new(meta["authorization_endpoint"].as_str().unwrap().into()).unwrap())
    .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap())
    .set_redirect_uri(RedirectUrl::new(CLAUDE_CALLBACK.into()).unwrap())
    .set_auth_type(AuthType::RequestBody);

    // 4. Authorization with PKCE; alice's browser consents.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = oauth
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .add_extra_param("resource", &resource);
    for scope in challenge_scope.split(' ') {
        request = request.add_scope(Scope::new(scope.into()));
    }
    let (authorize_url, state) = request.url();
    let decided = app.allow_at(&alice, &authorize_url).await;
    assert_eq!(decided.status(), StatusCode::FOUND);
    let params = location_params(&decided);
    assert_eq!(param(&params, "state"), Some(state.secret().as_str()));
    let code = param(&params, "code").unwrap().to_owned();

    // 5. Token.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = oauth
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", &resource)
        .request_async(&http)
        .await
        .unwrap();
    let access = tokens.access_token().secret().clone();

    // 6. MCP: initialize, discover the tools, create a workspace, wait, run a command.
    let (status, init) = rpc(&app, &access, "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"Anthropic/ClaudeAI","version":"1"}})).await;
    assert_eq!(status, StatusCode::OK, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "coder");
    let (_, listed) = rpc(&app, &access, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "coder_create_workspace",
        "coder_workspace_bash",
        "coder_workspace_readiness",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"coder_create_template"),
        "a member's grant excludes template administration"
    );

    let templates = call(&app, &access, "coder_list_templates", json!({})).await;
    let version = templates["templates"][0]["active_version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = call(
        &app,
        &access,
        "coder_create_workspace",
        json!({"template_version_id": version, "name": "dev"}),
    )
    .await;
    assert_eq!(created["owner_name"], "alice");
    let mut ready = Value::Null;
    for _ in 0..4 {
        ready = call(
            &app,
            &access,
            "coder_workspace_readiness",
            json!({"workspace": "dev", "wait_ms": 10000}),
        )
        .await;
        if ready["ready"] == true {
            break;
        }
    }
    assert_eq!(ready["ready"], true, "{ready}");
    let ran = call(
        &app,
        &access,
        "coder_workspace_bash",
        json!({"workspace": "dev", "command": "echo hi"}),
    )
    .await;
    assert_eq!(ran["output"].as_str().unwrap().trim(), "hi");
    assert_eq!(ran["exit_code"], 0);

    // 7. Refresh, and the new token works.
    let refreshed = oauth
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .request_async(&http)
        .await
        .unwrap();
    let access = refreshed.access_token().secret().clone();
    let ran = call(
        &app,
        &access,
        "coder_workspace_bash",
        json!({"workspace": "alice/dev", "command": "echo again"}),
    )
    .await;
    assert_eq!(ran["output"].as_str().unwrap().trim(), "again");

    // 8. Revocation ends access at once.
    let res = app
        .client
        .post(meta["revocation_endpoint"].as_str().unwrap())
        .form(&[
            (
                "token",
                refreshed.refresh_token().unwrap().secret().as_str(),
            ),
            ("client_id", registered["client_id"].as_str().unwrap()),
            (
                "client_secret",
                registered["client_secret"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = rpc(&app, &access, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn users_and_scopes_are_isolated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", MANIFEST, &[]).await;
    let alice = app.create_member(&owner, "alice").await;
    let bob = app.create_member(&owner, "bob").await;
    let workspace = create_workspace(&app, &alice, "dev", &template["id"], json!([])).await;
    let id = workspace["id"].as_str().unwrap().to_owned();
    let client = app.register_claude().await;
    let bob_tokens = app.obtain_tokens(&bob, &client).await;
    let bob_access = bob_tokens["access_token"].as_str().unwrap();

    // Bob sees none of alice's workspace, by name or by id, whatever the tool.
    let listed = call(&app, bob_access, "coder_list_workspaces", json!({})).await;
    assert_eq!(listed["count"], 0);
    for (tool, args) in [
        ("coder_get_workspace", json!({"workspace_id": id})),
        ("coder_get_workspace", json!({"workspace_id": "alice/dev"})),
        (
            "coder_workspace_bash",
            json!({"workspace": "alice/dev", "command": "id"}),
        ),
        (
            "coder_workspace_read_file",
            json!({"workspace": id, "path": "README.md"}),
        ),
        (
            "coder_workspace_ls",
            json!({"workspace": "alice/dev", "path": "."}),
        ),
        (
            "coder_create_workspace_build",
            json!({"workspace_id": id, "transition": "stop"}),
        ),
    ] {
        let (status, body) = rpc(
            &app,
            bob_access,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["result"]["isError"], true, "{tool}: {body}");
        assert!(
            body["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("not found"),
            "{tool}: {body}"
        );
    }
    let listed = call(
        &app,
        bob_access,
        "coder_list_workspaces",
        json!({"owner": "alice"}),
    )
    .await;
    assert_eq!(
        listed["count"], 0,
        "a member cannot list another member's workspaces"
    );

    // A token without workspaces:exec cannot run commands, even in alice's own workspace.
    let mut req = AuthRequest::for_client(&client);
    req.scope = Some("workspaces:read user:read".into());
    let code = app.authorize_code(&alice, &req).await;
    let narrow = json_body(app.exchange_code(&client, &code, &req).await).await;
    let narrow = narrow["access_token"].as_str().unwrap();
    let (_, listed) = rpc(&app, narrow, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"coder_get_workspace") && !names.contains(&"coder_workspace_bash"),
        "{names:?}"
    );
    let res = app
        .client
        .post(app.url(MCP_PATH))
        .header("Accept", "application/json, text/event-stream")
        .bearer_auth(narrow)
        .json(&json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"coder_workspace_bash","arguments":{"workspace":"dev","command":"echo no"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"workspaces:exec\""),
        "{challenge}"
    );
    // Alice's own list shows it, summarised from one query.
    let mine = call(&app, &alice, "coder_list_workspaces", json!({})).await;
    assert_eq!(mine["count"], 1);
    let listed = &mine["workspaces"][0];
    assert_eq!(
        (listed["name"].as_str(), listed["owner_name"].as_str()),
        (Some("dev"), Some("alice"))
    );
    assert_eq!(
        (listed["status"].as_str(), listed["transition"].as_str()),
        (Some("running"), Some("start"))
    );
    assert_eq!(listed["outdated"], false);
    assert_eq!(listed["template_id"], template["id"]);
    // With the right scope, alice can.
    let ran = call(
        &app,
        &alice,
        "coder_workspace_bash",
        json!({"workspace": "dev", "command": "echo mine"}),
    )
    .await;
    assert_eq!(ran["output"].as_str().unwrap().trim(), "mine");
}

/// The JSON-RPC messages of an event-stream body, in order.
fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

/// The result's text block holds the same JSON as its structured content; returns that.
fn structured_and_text_agree(result: &Value) -> Value {
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("text is not JSON ({e}): {result}"));
    assert_eq!(text, result["structuredContent"], "{result}");
    text
}

/// A call that asks for progress (`_meta.progressToken`) and outlasts the progress interval gets
/// `notifications/progress` and then its result, structured and as text, on an event stream;
/// one that ends sooner gets a plain JSON response.
async fn long_commands_report_progress_then_their_result(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", MANIFEST, &[]).await;
    create_workspace(&app, &owner, "dev", &template["id"], json!([])).await;
    let ready = call(
        &app,
        &owner,
        "coder_workspace_readiness",
        json!({"workspace": "dev", "wait_ms": 20000}),
    )
    .await;
    assert_eq!(ready["ready"], true, "{ready}");
    let bash = |command: &str, token: &str| {
        json!({"name": "coder_workspace_bash",
               "arguments": {"workspace": "dev", "command": command},
               "_meta": {"progressToken": token}})
    };

    let (status, body) = rpc(&app, &owner, "tools/call", bash("echo quick", "p-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let quick = structured_and_text_agree(&body["result"]);
    assert_eq!(quick["output"].as_str().unwrap().trim(), "quick");

    // A notification before the result needs an event stream, not one JSON document.
    let (status, body) = rpc(
        &app,
        &owner,
        "tools/call",
        bash("sleep 6; echo slow", "p-2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let messages = sse_messages(body.as_str().expect("an event stream, not JSON"));
    let (last, notes) = messages.split_last().expect("messages");
    assert!(
        notes
            .iter()
            .any(|n| n["method"] == "notifications/progress"
                && n["params"]["progressToken"] == "p-2"),
        "{messages:?}"
    );
    assert_eq!(last["id"], 1, "{last}");
    assert_eq!(last["result"]["isError"], false, "{last}");
    let slow = structured_and_text_agree(&last["result"]);
    assert_eq!(slow["output"].as_str().unwrap().trim(), "slow");
    app.stop().await.unwrap();
}
