//! The dashboard: HTML error pages for browsers (JSON for API clients), the layout's header,
//! and the workspace, template, token and "Connect an AI agent" pages, driven as a browser
//! without JavaScript drives them (GET, then POST forms with the CSRF token, then redirects).

use reqwest::{Response, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_html_page, json_body};
use crate::page_client::{Browser, HTML, csrf, input_value};

both_backends!(browsers_get_error_pages_and_api_clients_json,);

async fn get_as(app: &TestApp, path: &str, accept: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("Accept", accept)
        .send()
        .await
        .unwrap()
}

async fn browsers_get_error_pages_and_api_clients_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/no-such-page", "/workspaces/x/y/z"] {
        let res = get_as(&app, path, HTML).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_html_page(&res);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        assert!(html.contains("<h1>Page not found</h1>"), "{html}");
        assert!(
            html.contains("<main") && html.contains("<header"),
            "landmarks: {html}"
        );
        assert!(html.contains("href=\"/\""), "a link home: {html}");
    }
    // A wrong method is a page too.
    let res = app
        .client
        .delete(app.url("/login"))
        .header("Accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_html_page(&res);

    // API clients, and anything under /api, keep Coder's JSON.
    let res = get_as(&app, "/no-such-page", "application/json").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(res).await["message"], "Route not found.");
    let res = get_as(&app, "/api/v2/no-such-route", HTML).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(res).await["message"], "Route not found.");
    let res = get_as(&app, "/oauth2/no-such-route", HTML).await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

both_backends!(
    workspace_pages_create_stop_start_and_filter,
    token_page_shows_a_new_token_once,
    connect_page_shows_the_mcp_url_and_what_is_missing,
    template_pages_upload_version_activate_delete,
    template_pages_take_a_folder,
);

fn location(res: &Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn until_status(browser: &Browser, path: &str, status: &str) -> String {
    let deadline = tokio::time::Instant::now() + crate::workspace_support::WAIT;
    loop {
        let html = browser.page(path).await;
        if html.contains(&format!("id=\"status\">{status}<")) {
            return html;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {status}: {html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

const BASIC: &str = include_str!("../../examples/templates/basic/coder.yaml");

async fn workspace_pages_create_stop_start_and_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template =
        crate::workspace_support::create_template(&app, &owner, "basic", BASIC, &[]).await;
    let template_id = template["id"].as_str().unwrap();

    // Visitors are sent to sign in, and back.
    let res = get_as(&app, "/workspaces", HTML).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?redirect=%2Fworkspaces");

    let browser = Browser::signed_in(&app, &owner);
    let html = browser.page("/workspaces").await;
    assert!(html.contains("aria-current=\"page\">Workspaces"), "{html}");
    assert!(
        html.contains(">owner</span>") && html.contains("Sign out"),
        "{html}"
    );
    assert!(html.contains("No workspaces match."), "{html}");

    let html = browser.page("/workspaces/new").await;
    assert!(
        html.contains(&format!("<option value=\"{template_id}\">basic</option>")),
        "{html}"
    );
    let form = browser
        .page(&format!("/workspaces/new?template={template_id}"))
        .await;
    assert!(
        form.contains("<label for=\"param-greeting\">Greeting"),
        "{form}"
    );
    assert!(
        form.contains("name=\"param.greeting\" value=\"Hello\""),
        "the default: {form}"
    );
    let token = csrf(&form);

    // A refused name re-renders the form with the reason and the values typed.
    let res = browser
        .post(
            "/workspaces/new",
            &[
                ("csrf_token", &token),
                ("template", template_id),
                ("name", "Bad Name!"),
                ("param.greeting", "Howdy"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("class=\"field-error\""), "{html}");
    assert!(
        html.contains("value=\"Bad Name!\"") && html.contains("value=\"Howdy\""),
        "{html}"
    );

    // Without the CSRF token nothing is created.
    let res = browser
        .post(
            "/workspaces/new",
            &[("template", template_id), ("name", "dev")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = browser
        .post(
            "/workspaces/new",
            &[
                ("csrf_token", &token),
                ("template", template_id),
                ("name", "dev"),
                ("param.greeting", "Howdy"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = location(&res);
    assert!(page.starts_with("/workspaces/"), "{page}");
    let html = until_status(&browser, &page, "running").await;
    assert!(html.contains("<td>start</td>"), "build history: {html}");
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "no reload once built: {html}"
    );

    // The greeting parameter reached the workspace.
    let ws_id = page.trim_start_matches("/workspaces/");
    let ws = crate::workspace_support::app_workspace(&app, &owner, &serde_json::json!(ws_id)).await;
    let agent = crate::workspace_support::agent_id(&ws);
    crate::workspace_support::poll(
        &app,
        &owner,
        &format!("/api/v2/workspaceagents/{agent}/logs"),
        |l| l.to_string().contains("Howdy from dev"),
    )
    .await;
    // The page shows the values the build ran with and what the agent's startup printed.
    let html = browser.page(&page).await;
    assert!(
        html.contains("<td>greeting</td><td>Howdy</td>"),
        "parameters: {html}"
    );
    assert!(
        html.contains("Agent startup log") && html.contains("Howdy from dev"),
        "agent log: {html}"
    );
    let build = ws["latest_build"]["id"].as_str().unwrap();
    let res = app
        .get(
            &format!("/api/v2/workspacebuilds/{build}/parameters"),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([{"name": "greeting", "value": "Howdy"}])
    );
    let stranger = app.create_member(&owner, "stranger").await;
    let res = app
        .get(
            &format!("/api/v2/workspacebuilds/{build}/parameters"),
            Some(&stranger),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "another user's build");

    let res = browser
        .post(
            &format!("{page}/builds"),
            &[("csrf_token", &token), ("transition", "stop")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), page);
    let html = until_status(&browser, &page, "stopped").await;
    assert!(html.contains("value=\"start\""), "a start button: {html}");

    let stopped = browser.page("/workspaces?status=stopped").await;
    assert!(stopped.contains(">dev</a>"), "{stopped}");
    let running = browser.page("/workspaces?status=running").await;
    assert!(!running.contains(">dev</a>"), "{running}");

    let res = browser
        .post(
            &format!("{page}/builds"),
            &[("csrf_token", &token), ("transition", "start")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = until_status(&browser, &page, "running").await;
    assert!(html.contains("#3"), "{html}");
    let logs = browser.page(&format!("{page}?build=2")).await;
    assert!(logs.contains("Logs of build #2"), "{logs}");

    // A refused action answers the page with the reason.
    let res = browser
        .post(
            &format!("{page}/builds"),
            &[("csrf_token", &token), ("transition", "explode")],
        )
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Choose start, stop, restart or delete."),
        "{html}"
    );
}

async fn token_page_shows_a_new_token_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let browser = Browser::signed_in(&app, &owner);
    let html = browser.page("/settings/tokens").await;
    assert!(html.contains("You have no tokens."), "{html}");
    let token = csrf(&html);

    let res = browser
        .post(
            "/settings/tokens",
            &[
                ("csrf_token", &token),
                ("name", "ci"),
                ("lifetime_days", "7"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/settings/tokens");

    let html = browser.page("/settings/tokens").await;
    let secret = input_value(&html, "id=\"new-token\"").expect("the new token, once");
    assert_eq!(
        app.get("/api/v2/users/me", Some(&secret)).await.status(),
        StatusCode::OK
    );
    assert!(html.contains("<td>ci</td>"), "{html}");
    let again = browser.page("/settings/tokens").await;
    assert!(!again.contains(&secret), "shown only once");

    let refused = browser
        .post(
            "/settings/tokens",
            &[
                ("csrf_token", &token),
                ("name", "ci"),
                ("lifetime_days", "7"),
            ],
        )
        .await;
    assert!(refused.status().is_client_error(), "a duplicate name");
    assert!(refused.text().await.unwrap().contains("class=\"error\""));

    let id = secret.split('-').next().unwrap();
    let res = browser
        .post(
            &format!("/settings/tokens/{id}/delete"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/settings/tokens?done=deleted");
    assert_eq!(
        app.get("/api/v2/users/me", Some(&secret)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn connect_page_shows_the_mcp_url_and_what_is_missing(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let owner = app.create_owner().await;
    let browser = Browser::signed_in(&app, &owner);
    let res = browser.get("/connect").await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    let mcp = format!("{}/api/experimental/mcp/http", app.url);
    assert!(html.contains(&format!("value=\"{mcp}\"")), "{html}");
    assert!(
        html.contains(&format!("claude mcp add --transport http coder {mcp}")),
        "{html}"
    );
    assert!(html.contains(&format!("{mcp}?toolset=chatgpt")), "{html}");
    assert!(
        html.contains("coder exp mcp configure claude-code"),
        "{html}"
    );
    assert!(html.contains("mcpServers"), "Cursor's JSON: {html}");
    assert!(
        html.contains("is not https"),
        "http access URL warned: {html}"
    );
    assert!(!html.contains("experiments"), "all experiments on: {html}");

    // The copy script runs by its hash and nothing else does.
    use base64::Engine;
    use sha2::Digest;
    let start = html.find("<script>").unwrap() + "<script>".len();
    let end = html[start..].find("</script>").unwrap() + start;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&html[start..end]));
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp}"
    );

    let off = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&[]);
    })
    .await;
    let owner = off.create_owner().await;
    let html = Browser::signed_in(&off, &owner).page("/connect").await;
    assert!(
        html.contains("the experiments mcp-server-http and oauth2 are off")
            && html.contains("--experiments=mcp-server-http,oauth2"),
        "{html}"
    );
}

/// A multipart/form-data body (RFC 7578): text fields, then file parts `(field, filename, data)`.
fn multipart_files(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----coderd-test-boundary-7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A multipart/form-data body with text fields and one archive.
fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    multipart_files(fields, &[("file", "t.tar", file)])
}

async fn post_multipart(browser: &Browser, (content_type, body): (String, Vec<u8>)) -> Response {
    browser
        .client
        .post(format!("{}/templates", browser.base))
        .header("Accept", HTML)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn upload_template(browser: &Browser, token: &str, name: &str, tar: Vec<u8>) -> Response {
    post_multipart(
        browser,
        multipart(&[("csrf_token", token), ("name", name)], &tar),
    )
    .await
}

/// A folder chosen in the form arrives as one part per file, named by its relative path; it
/// becomes a template named after the folder, and a path that leaves the folder is refused.
async fn template_pages_take_a_folder(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let browser = Browser::signed_in(&app, &owner);
    let token = csrf(&browser.page("/templates").await);

    let res = post_multipart(
        &browser,
        multipart_files(
            &[("csrf_token", &token), ("name", "")],
            &[
                ("folder", "Basic/coder.yaml", BASIC.as_bytes()),
                ("folder", "Basic/README.md", b"# basic"),
                ("folder", "Basic/.git/HEAD", b"ref: refs/heads/main"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = location(&res);
    let html = browser.page(&page).await;
    assert!(html.contains("<td>greeting</td>"), "parameters: {html}");
    let template: serde_json::Value = app
        .get("/api/v2/organizations/coder/templates/basic", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(template["name"], "basic", "{template}");

    let res = post_multipart(
        &browser,
        multipart_files(
            &[("csrf_token", &token), ("name", "evil")],
            &[("folder", "../coder.yaml", BASIC.as_bytes())],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("a path a template cannot hold"), "{html}");

    let res = post_multipart(
        &browser,
        multipart_files(
            &[("csrf_token", &token), ("name", "both")],
            &[
                (
                    "file",
                    "t.tar",
                    &crate::workspace_support::tar_of(&[("coder.yaml", BASIC)]),
                ),
                ("folder", "b/coder.yaml", BASIC.as_bytes()),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("either an archive or a folder"),
        "both"
    );
}

async fn template_pages_upload_version_activate_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "member").await;
    let res = Browser::signed_in(&app, &member).get("/templates").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_html_page(&res);

    let browser = Browser::signed_in(&app, &owner);
    let html = browser.page("/templates").await;
    assert!(html.contains("No templates yet."), "{html}");
    let token = csrf(&html);
    let tar = crate::workspace_support::tar_of(&[("coder.yaml", BASIC)]);

    let res = upload_template(&browser, &token, "basic", tar.clone()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = location(&res);
    let html = browser.page(&page).await;
    assert!(html.contains("<td>greeting</td>"), "parameters: {html}");
    assert_eq!(html.matches("<strong>Active</strong>").count(), 1, "{html}");

    // The same name again: a new version, made active; the first can be made active again.
    let template_id = page.trim_start_matches("/templates/").to_owned();
    let active = || async {
        let t: serde_json::Value = app
            .get(&format!("/api/v2/templates/{template_id}"), Some(&owner))
            .await
            .json()
            .await
            .unwrap();
        t["active_version_id"].as_str().unwrap().to_owned()
    };
    let first = active().await;
    let second = crate::workspace_support::tar_of(&[("coder.yaml", BASIC), ("extra.txt", "x")]);
    let res = upload_template(&browser, &token, "basic", second).await;
    assert_eq!(location(&res), page);
    assert_ne!(active().await, first, "the new version is active");
    let html = browser.page(&page).await;
    assert_eq!(
        input_value(&html, "name=\"version\"").as_deref(),
        Some(first.as_str()),
        "the first version can be made active: {html}"
    );
    let res = browser
        .post(
            &format!("{page}/active"),
            &[("csrf_token", &token), ("version", &first)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(active().await, first);

    // A broken archive: the reason and the import log, nothing created.
    let broken = crate::workspace_support::tar_of(&[("coder.yaml", "parameters: [ {name: 1\n")]);
    let res = upload_template(&browser, &token, "broken", broken).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("The import failed"), "{html}");

    let res = browser
        .post(&format!("{page}/delete"), &[("csrf_token", &token)])
        .await;
    assert_eq!(location(&res), "/templates?done=deleted");
    let html = browser.page("/templates?done=deleted").await;
    assert!(
        html.contains("Template deleted.") && html.contains("No templates yet."),
        "{html}"
    );
}
