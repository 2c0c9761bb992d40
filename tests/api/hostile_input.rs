//! Hostile input (issue 14): each defect found from outside, locked on both backends. The same
//! request must get the same 4xx on SQLite and PostgreSQL, never a 500 on one and a stored value
//! on the other.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::oauth_client::{AuthRequest, MCP_PATH};
use crate::workspace_support::{create_template, import_version, poll, upload};

both_backends!(
    a_deeply_nested_manifest_is_refused_at_once,
    manifest_strings_follow_the_stored_text_rule,
    nul_in_registration_uris_is_invalid_client_metadata,
    nul_in_a_template_description_or_icon_is_refused_on_every_door,
    stored_strings_follow_one_rule_everywhere,
    lookups_by_names_that_cannot_exist_find_nothing,
    a_repeated_json_rpc_key_is_a_json_rpc_error,
    requests_need_exactly_one_host,
    emails_with_markup_are_refused,
    archives_cannot_plant_setuid_programs,
    a_redirect_uri_cut_inside_a_character_is_refused,
);

/// A NUL in the middle of a value, as a JSON string carries it.
const NUL: &str = "a\u{0}b";

/// Asserts Coder's 400 with a validation naming `field`; returns its detail.
async fn validation_of(res: reqwest::Response, field: &str) -> String {
    let status = res.status();
    let body = json_body(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].is_string(), "{body}");
    let validations = body["validations"].as_array().cloned().unwrap_or_default();
    validations
        .iter()
        .find(|v| v["field"] == field)
        .unwrap_or_else(|| panic!("no validation for {field}: {body}"))["detail"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_deeply_nested_manifest_is_refused_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let depth = 100_000;
    // Values of any shape (a default, an env value) are where nesting can go deep.
    let flow = format!(
        "parameters:\n  - name: a\n    default: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let block = format!("agent:\n  env:\n    A:\n    {}x\n", "- ".repeat(depth));
    let top = format!("{}{}\n", "{a: ".repeat(depth), "}".repeat(depth));
    let laughs = {
        // "Billion laughs": each level holds ten aliases of the one before.
        let mut yaml = "agent:\n  env:\n    A0: &a0 [lol]\n".to_owned();
        for i in 1..12 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            yaml.push_str(&format!("    A{i}: &a{i} [{refs}]\n"));
        }
        yaml
    };
    for (manifest, expected) in [
        (flow.as_str(), "nests deeper than 32 levels"),
        (block.as_str(), "nests deeper than 32 levels"),
        (top.as_str(), "nests deeper than 32 levels"),
        (laughs.as_str(), "too large or complex"),
    ] {
        assert!(manifest.len() < 1024 * 1024);
        let started = Instant::now();
        let version = import_version(&app, &owner, &[("coder.yaml", manifest)], None).await;
        let took = started.elapsed();
        assert_eq!(version["job"]["status"], "failed", "{version}");
        let error = version["job"]["error"].as_str().unwrap();
        assert!(
            error.starts_with("coder.yaml at line ") && error.contains(expected),
            "{error}"
        );
        // Upload, import and the polling around them; the parse itself takes microseconds.
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

async fn manifest_strings_follow_the_stored_text_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for (manifest, expected) in [
        (
            "parameters:\n  - name: a\n    description: \"x\\0y\"\n",
            "parameters[0] \"a\": description (line 2) must not contain a NUL",
        ),
        (
            "agent:\n  env:\n    GREETING: \"\\0\"\n",
            "agent.env.GREETING (line 3) must not contain a NUL",
        ),
        (
            "apps:\n  - slug: web\n    port: 80\n    display_name: \"\\e[31m\"\n",
            "must not contain control characters (found U+001B",
        ),
    ] {
        let version = import_version(&app, &owner, &[("coder.yaml", manifest)], None).await;
        assert_eq!(version["job"]["status"], "failed", "{version}");
        let error = version["job"]["error"].as_str().unwrap();
        assert!(error.contains(expected), "{error}");
    }
    let version = import_version(
        &app,
        &owner,
        &[("coder.yaml", ""), ("README.md", "hello\0world")],
        None,
    )
    .await;
    assert_eq!(version["job"]["status"], "failed", "{version}");
    assert!(
        version["job"]["error"]
            .as_str()
            .unwrap()
            .contains("README.md must not contain a NUL"),
        "{version}"
    );
    app.stop().await.unwrap();
}

async fn nul_in_registration_uris_is_invalid_client_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let register = |body: Value| {
        app.client
            .post(app.url("/oauth2/register"))
            .json(&body)
            .send()
    };
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        for value in [
            "https://example.com/\u{0}",
            "https://exa\u{0}mple.com/",
            "https://example.com/\u{7}",
        ] {
            let mut body = json!({"redirect_uris": ["http://127.0.0.1:3000/cb"], "token_endpoint_auth_method": "none"});
            body[field] = json!(value);
            let res = register(body).await.unwrap();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}");
            let error = json_body(res).await;
            assert_eq!(error["error"], "invalid_client_metadata", "{error}");
            let description = error["error_description"].as_str().unwrap();
            assert!(description.starts_with(field), "{description}");
        }
    }
    for (field, value) in [
        ("client_name", json!(NUL)),
        ("software_id", json!(NUL)),
        ("software_version", json!(NUL)),
        ("contacts", json!([NUL])),
    ] {
        let mut body = json!({"redirect_uris": ["http://127.0.0.1:3000/cb"], "token_endpoint_auth_method": "none"});
        body[field] = value;
        let res = register(body).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}");
        let error = json_body(res).await;
        assert_eq!(
            error["error"], "invalid_client_metadata",
            "{field}: {error}"
        );
    }
    app.stop().await.unwrap();
}

async fn nul_in_a_template_description_or_icon_is_refused_on_every_door(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let version = import_version(&app, &owner, &[("coder.yaml", "")], None).await;
    let version_id = version["id"].as_str().unwrap();
    for field in ["description", "icon"] {
        let mut body = json!({"name": "t", "template_version_id": version_id});
        body[field] = json!(NUL);
        let res = app
            .post_json("/api/v2/organizations/coder/templates", Some(&owner), &body)
            .await;
        let detail = validation_of(res, field).await;
        assert_eq!(
            detail,
            "Must not contain a NUL character (found one at character 2)."
        );
    }
    // The same over MCP: an isError result naming the field.
    for field in ["description", "icon"] {
        let mut arguments =
            json!({"name": "t", "display_name": "T", "description": "d", "version_id": version_id});
        arguments[field] = json!(NUL);
        let res = app
            .client
            .post(app.url(MCP_PATH))
            .bearer_auth(&owner)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "coder_create_template", "arguments": arguments}})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let reply = json_body(res).await;
        let result = &reply["result"];
        assert_eq!(result["isError"], true, "{reply}");
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(field) && text.contains("NUL"), "{text}");
    }
    // Nothing was stored.
    let list = json_body(app.get("/api/v2/templates", Some(&owner)).await).await;
    assert_eq!(list, json!([]));
    app.stop().await.unwrap();
}

async fn stored_strings_follow_one_rule_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    // Users: the display name.
    let res = app
        .post_json(
            "/api/v2/users",
            Some(&owner),
            &json!({"email": "m@example.com", "username": "m", "password": "correct-horse-battery", "name": NUL}),
        )
        .await;
    assert!(validation_of(res, "name").await.contains("NUL"));
    // Template versions: the message.
    let file = upload(
        &app,
        &owner,
        crate::workspace_support::tar_of(&[("coder.yaml", "")]),
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&owner),
            &json!({"file_id": file, "message": NUL}),
        )
        .await;
    assert!(validation_of(res, "message").await.contains("NUL"));
    // Parameter values of a workspace.
    let template = create_template(
        &app,
        &owner,
        "basic",
        "parameters:\n  - name: greeting\n    default: hi\n    mutable: true\n",
        &[],
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "w", "template_id": template["id"], "rich_parameter_values": [{"name": "greeting", "value": NUL}]}),
        )
        .await;
    assert!(validation_of(res, "greeting").await.contains("NUL"));
    // OAuth2 applications made by an owner.
    let res = app
        .post_json(
            "/api/v2/oauth2-provider/apps",
            Some(&owner),
            &json!({"name": "app", "callback_url": "http://127.0.0.1:3000/cb", "icon": NUL}),
        )
        .await;
    assert!(validation_of(res, "icon").await.contains("NUL"));
    // Searches.
    let res = app
        .get("/api/v2/workspaces?q=owner:a%00b", Some(&owner))
        .await;
    assert!(validation_of(res, "q").await.contains("NUL"));
    app.stop().await.unwrap();
}

async fn lookups_by_names_that_cannot_exist_find_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for path in [
        "/api/v2/users/a%00b",
        "/api/v2/organizations/co%00der",
        "/api/v2/organizations/coder/templates/a%00b",
        "/api/v2/users/me/workspace/a%00b",
        "/api/v2/users/a%00b/workspace/w",
    ] {
        let res = app.get(path, Some(&owner)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(json_body(res).await["message"].is_string(), "{path}");
    }
    let res = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner\u{0}@example.com", "password": "correct-horse-battery"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.stop().await.unwrap();
}

async fn a_repeated_json_rpc_key_is_a_json_rpc_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"coder_get_authenticated_user","arguments":{},"arguments":{}}}"#,
    ] {
        let res = app
            .client
            .post(app.url(MCP_PATH))
            .bearer_auth(&owner)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(res.headers()["content-type"], "application/json");
        let reply = json_body(res).await;
        assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
        assert_eq!(reply["id"], Value::Null, "{reply}");
        assert_eq!(reply["error"]["code"], -32600, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains("appears twice"), "{message}");
    }
    app.stop().await.unwrap();
}

/// Sends raw bytes on a fresh connection and returns the status code of the response.
async fn raw_status(app: &TestApp, request: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"))
}

async fn requests_need_exactly_one_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let host = format!("Host: {}\r\n", app.addr);
    let get =
        |headers: &str| format!("GET /healthz HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    // RFC 9112 §3.2.
    assert_eq!(raw_status(&app, &get(&host)).await, 200);
    assert_eq!(raw_status(&app, &get("")).await, 400, "no Host");
    assert_eq!(
        raw_status(&app, &get(&format!("{host}{host}"))).await,
        400,
        "two Host lines"
    );
    assert_eq!(
        raw_status(&app, &get("Host: a b\r\n")).await,
        400,
        "an invalid Host"
    );
    assert_eq!(
        raw_status(&app, &get("Host: user@example.com\r\n")).await,
        400,
        "userinfo is no host"
    );
    // HTTP/1.0 predates Host: a request without one is served.
    assert_eq!(
        raw_status(&app, "GET /healthz HTTP/1.0\r\n\r\n").await,
        200,
        "HTTP/1.0"
    );
    // The error is Coder's JSON, like every other /api error.
    let res = app
        .request(Method::GET, "/api/v2/buildinfo", None)
        .header("Host", "a b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(json_body(res).await["message"].is_string());
    app.stop().await.unwrap();
}

async fn emails_with_markup_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for email in [
        "<script>alert(1)</script>@example.com",
        "\"quoted\"@example.com",
        "a(comment)@example.com",
        "a@exa<mple.com",
    ] {
        let res = app
            .post_json(
                "/api/v2/users",
                Some(&owner),
                &json!({"email": email, "username": "m", "password": "correct-horse-battery"}),
            )
            .await;
        let detail = validation_of(res, "email").await;
        assert!(detail.contains("valid email"), "{email}: {detail}");
    }
    let res = app
        .post_json(
            "/api/v2/users",
            Some(&owner),
            &json!({"email": "o'brien+coder@mail.example.ie", "username": "m", "password": "correct-horse-battery"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.stop().await.unwrap();
}

async fn archives_cannot_plant_setuid_programs(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, content) in [
        ("coder.yaml", 0o644, &b""[..]),
        ("bin/tool", 0o4755, &b"#!/bin/sh\nid -u\n"[..]),
        ("bin/group", 0o2755, &b"#!/bin/sh\n"[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder.append_data(&mut header, path, content).unwrap();
    }
    let file_id = upload(&app, &owner, builder.into_inner().unwrap()).await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&owner),
            &json!({"file_id": file_id}),
        )
        .await;
    let version = json_body(res).await;
    let version = poll(
        &app,
        &owner,
        &format!(
            "/api/v2/templateversions/{}",
            version["id"].as_str().unwrap()
        ),
        |v| v["job"]["status"] == "succeeded",
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(&owner),
            &json!({"name": "suid", "template_version_id": version["id"]}),
        )
        .await;
    let template = json_body(res).await;
    let ws =
        crate::workspace_support::create_workspace(&app, &owner, "w", &template["id"], json!([]))
            .await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    let home = app
        .db
        .dir
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap())
        .join("home");
    let mode = |p: &str| {
        std::fs::metadata(home.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755, "set-uid bit dropped");
    assert_eq!(mode("bin/group"), 0o755, "set-gid bit dropped");
    app.stop().await.unwrap();
}

/// Found by the redirect URI property test: the loopback comparison cut the requested URI at
/// byte 7, inside a multi-byte character, and panicked (a 500 from the authorization endpoint).
async fn a_redirect_uri_cut_inside_a_character_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    for redirect in ["ਫ਼ì𑂛/cb", "http:/\u{e9}/cb", "http://127.0.0.1\u{1107f}/cb"] {
        let mut req = AuthRequest::for_client(&client);
        req.redirect_uri = Some(redirect.to_owned());
        let mut url = reqwest::Url::parse(&app.url("/oauth2/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(req.query());
        let res = app
            .client
            .get(url)
            .header("Coder-Session-Token", &owner)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{redirect}");
    }
    app.stop().await.unwrap();
}
