//! Helpers for the template, workspace and sandbox tests: template archives built in memory, and
//! bounded polling for jobs, builds and agents.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_body};

/// How long a test waits for a job, a build or an agent before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// A tar archive of `(path, content)` files.
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_bytes())
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

pub async fn upload(app: &TestApp, token: &str, tar: Vec<u8>) -> String {
    let res = app
        .request(Method::POST, "/api/v2/files", Some(token))
        .header("Content-Type", "application/x-tar")
        .body(tar)
        .send()
        .await
        .expect("upload");
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );
    json_body(res).await["hash"]
        .as_str()
        .expect("hash")
        .to_owned()
}

pub async fn patch_json(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.request(Method::PATCH, path, Some(token))
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Polls `path` until `done(body)` holds, returning that body.
pub async fn poll(app: &TestApp, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let res = app.get(path, Some(token)).await;
        let status = res.status();
        let body = json_body(res).await;
        if status == StatusCode::OK && done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting on {path}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finished(job: &Value) -> bool {
    !matches!(
        job["status"].as_str(),
        Some("pending" | "running" | "canceling")
    )
}

/// Creates a template version from `files` and waits for its import job to end.
pub async fn import_version(
    app: &TestApp,
    token: &str,
    files: &[(&str, &str)],
    template_id: Option<&str>,
) -> Value {
    let file_id = upload(app, token, tar_of(files)).await;
    let mut body = json!({"file_id": file_id});
    if let Some(t) = template_id {
        body["template_id"] = json!(t);
    }
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(token),
            &body,
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let version = json_body(res).await;
    let id = version["id"].as_str().expect("id").to_owned();
    poll(app, token, &format!("/api/v2/templateversions/{id}"), |v| {
        finished(&v["job"])
    })
    .await
}

/// Imports `manifest` (plus `extra` files) and creates template `name` from it; returns the
/// template.
pub async fn create_template(
    app: &TestApp,
    token: &str,
    name: &str,
    manifest: &str,
    extra: &[(&str, &str)],
) -> Value {
    let mut files = vec![("coder.yaml", manifest)];
    files.extend_from_slice(extra);
    let version = import_version(app, token, &files, None).await;
    assert_eq!(version["job"]["status"], "succeeded", "{version}");
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(token),
            &json!({"name": name, "display_name": name, "template_version_id": version["id"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap_or_default()
    );
    json_body(res).await
}

/// Creates a workspace and waits for its first build to end; returns the workspace.
pub async fn create_workspace(
    app: &TestApp,
    token: &str,
    name: &str,
    template_id: &Value,
    params: Value,
) -> Value {
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(token),
            &json!({"name": name, "template_id": template_id, "rich_parameter_values": params}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let ws = json_body(res).await;
    wait_for_build(app, token, &ws["latest_build"]["id"]).await;
    app_workspace(app, token, &ws["id"]).await
}

pub async fn app_workspace(app: &TestApp, token: &str, id: &Value) -> Value {
    json_body(
        app.get(
            &format!("/api/v2/workspaces/{}", id.as_str().expect("id")),
            Some(token),
        )
        .await,
    )
    .await
}

/// Waits until the build's job has ended; returns the build.
pub async fn wait_for_build(app: &TestApp, token: &str, build_id: &Value) -> Value {
    let path = format!(
        "/api/v2/workspacebuilds/{}",
        build_id.as_str().expect("build id")
    );
    poll(app, token, &path, |b| finished(&b["job"])).await
}

/// Starts a build and waits for it to end.
pub async fn build(app: &TestApp, token: &str, workspace: &Value, transition: &str) -> Value {
    let res = app
        .post_json(
            &format!(
                "/api/v2/workspaces/{}/builds",
                workspace["id"].as_str().expect("id")
            ),
            Some(token),
            &json!({"transition": transition}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let b = json_body(res).await;
    wait_for_build(app, token, &b["id"]).await
}

/// The agent of the workspace's latest build.
pub fn agent_of(workspace: &Value) -> Value {
    workspace["latest_build"]["resources"][0]["agents"][0].clone()
}

pub fn agent_id(workspace: &Value) -> String {
    agent_of(workspace)["id"]
        .as_str()
        .expect("agent id")
        .to_owned()
}

pub async fn exec(app: &TestApp, token: &str, agent: &str, command: &str) -> Value {
    let res = app
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/execute"),
            Some(token),
            &json!({"command": command}),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap_or_default()
    );
    json_body(res).await
}

/// The job of the build, waiting until it is `running`.
pub async fn wait_until_running(app: &TestApp, token: &str, build_id: &Value) -> Value {
    let path = format!(
        "/api/v2/workspacebuilds/{}",
        build_id.as_str().expect("build id")
    );
    poll(app, token, &path, |b| b["job"]["status"] == "running").await
}
