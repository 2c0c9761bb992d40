//! External provisioner daemons (`coder provisioner start`): owners make keys with tags, a
//! daemon signs in with one, builds of templates tagged for it run on its host (and stay
//! there: stop, start and delete go to the same daemon), and their agents reach the server
//! through the daemon's socket.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::workspace_support::{
    agent_id, build, create_template, create_workspace, exec, import_version, wait_for_build,
};

both_backends!(
    owners_manage_provisioner_keys,
    a_daemon_builds_the_workspaces_tagged_for_it_on_its_own_host,
);

const KEYS: &str = "/api/v2/organizations/coder/provisionerkeys";

async fn create_key(app: &TestApp, token: &str, name: &str, tags: Value) -> String {
    let res = app
        .post_json(KEYS, Some(token), &json!({"name": name, "tags": tags}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await["key"].as_str().unwrap().to_owned()
}

async fn owners_manage_provisioner_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let key = create_key(&app, &owner, "gpu-hosts", json!({"pool": "gpu"})).await;
    assert!(key.starts_with("coder-pk-"));
    let listed = json_body(app.get(KEYS, Some(&owner)).await).await;
    assert_eq!(listed[0]["name"], "gpu-hosts");
    assert_eq!(listed[0]["tags"], json!({"pool": "gpu"}));
    assert!(
        !listed.to_string().contains(&key),
        "a listing never shows the secret"
    );

    let res = app
        .post_json(KEYS, Some(&owner), &json!({"name": "GPU-hosts"}))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    for tags in [json!({"provisioner_id": "x"}), json!({"Bad Name": "x"})] {
        let res = app
            .post_json(KEYS, Some(&owner), &json!({"name": "other", "tags": tags}))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = json_body(res).await;
        assert_eq!(body["validations"][0]["field"], "tags", "{body}");
    }
    let member = app.create_member(&owner, "alice").await;
    assert_eq!(
        app.get(KEYS, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );

    // A daemon with a wrong key is refused before its WebSocket opens.
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v2/organizations/coder/provisionerdaemons/serve?id={}&name=x",
            uuid::Uuid::new_v4()
        )))
        .header("Coder-Provisioner-Daemon-Key", "coder-pk-wrong")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = app.delete(&format!("{KEYS}/gpu-hosts"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.delete(&format!("{KEYS}/gpu-hosts"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

/// `coder provisioner start` against the app, with a data directory of its own.
pub fn start_daemon(app: &TestApp, key: &str, data: &std::path::Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coder"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CODER_") {
            cmd.env_remove(k);
        }
    }
    cmd.args([
        "provisioner",
        "start",
        "--url",
        &app.url,
        "--name",
        "remote-host",
    ])
    .arg("--data-dir")
    .arg(data)
    .env("CODER_PROVISIONER_DAEMON_KEY", key)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true);
    cmd.spawn().expect("start the daemon")
}

async fn a_daemon_builds_the_workspaces_tagged_for_it_on_its_own_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let key = create_key(&app, &owner, "remote", json!({"pool": "remote"})).await;
    let daemon_data = tempfile::tempdir().unwrap();
    let mut daemon = start_daemon(&app, &key, daemon_data.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let daemons = json_body(
            app.get(
                "/api/v2/organizations/coder/provisionerdaemons",
                Some(&owner),
            )
            .await,
        )
        .await;
        if daemons[0]["name"] == "remote-host" {
            assert_eq!(daemons[0]["tags"], json!({"pool": "remote"}));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon never connected: {daemons}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A template tagged for the daemon's pool: its workspaces are built on the daemon's host.
    let version = import_version(
        &app,
        &owner,
        &[(
            "coder.yaml",
            "agent:\n  startup_script: echo built remotely > ~/where\n",
        )],
        None,
    )
    .await;
    assert_eq!(version["job"]["status"], "succeeded", "{version}");
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&owner),
            &json!({"file_id": version["job"]["file_id"], "tags": {"pool": "remote"}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let tagged = json_body(res).await;
    let tagged = crate::workspace_support::poll(
        &app,
        &owner,
        &format!(
            "/api/v2/templateversions/{}",
            tagged["id"].as_str().unwrap()
        ),
        |v| v["job"]["status"] == "succeeded",
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(&owner),
            &json!({"name": "remote", "template_version_id": tagged["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let template = json_body(res).await;
    let ws = create_workspace(&app, &owner, "far", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    assert_eq!(ws["latest_build"]["job"]["tags"]["pool"], "remote");
    let agent = agent_id(&ws);
    let out = exec(&app, &owner, &agent, "cat ~/where").await;
    assert_eq!(out["output"], "built remotely\n");
    let on_daemon = daemon_data
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap());
    assert!(
        on_daemon.join("sandbox.json").exists(),
        "the daemon's host runs it"
    );
    assert!(
        !app.db
            .dir
            .path()
            .join("workspaces")
            .join(ws["id"].as_str().unwrap())
            .exists(),
        "the server's own provisioner did not"
    );
    let logs = json_body(
        app.get(
            &format!(
                "/api/v2/workspacebuilds/{}/logs",
                ws["latest_build"]["id"].as_str().unwrap()
            ),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert!(
        logs.to_string()
            .contains("Provisioned by daemon remote-host"),
        "{logs}"
    );

    // Stop, start and delete go back to the same host.
    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert!(!on_daemon.join("sandbox.json").exists());
    assert!(
        on_daemon.join("home/where").exists(),
        "its files stay on the daemon's host"
    );
    let started = build(&app, &owner, &ws, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    let ws = crate::workspace_support::app_workspace(&app, &owner, &ws["id"]).await;
    assert_eq!(
        exec(&app, &owner, &agent_id(&ws), "cat ~/where").await["output"],
        "built remotely\n"
    );

    // An untagged template still builds on the server itself.
    let local = create_template(&app, &owner, "local", "", &[]).await;
    let near = create_workspace(&app, &owner, "near", &local["id"], json!([])).await;
    assert_eq!(near["latest_build"]["status"], "running");
    assert!(
        app.db
            .dir
            .path()
            .join("workspaces")
            .join(near["id"].as_str().unwrap())
            .exists()
    );

    let deleted = build(&app, &owner, &ws, "delete").await;
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    assert!(
        !on_daemon.exists(),
        "delete removes its files from the daemon's host"
    );

    // Without a daemon for its tags, a build waits in the queue rather than running elsewhere.
    daemon.kill().await.unwrap();
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "waiting", "template_id": template["id"]}),
        )
        .await;
    let waiting = json_body(res).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = crate::workspace_support::app_workspace(&app, &owner, &waiting["id"]).await;
    assert_eq!(still["latest_build"]["job"]["status"], "pending", "{still}");
    // A daemon of that pool coming back takes it.
    let _daemon = start_daemon(&app, &key, daemon_data.path());
    let done = wait_for_build(&app, &owner, &waiting["latest_build"]["id"]).await;
    assert_eq!(done["status"], "running", "{done}");
    app.stop().await.unwrap();
    coderd::provisioner::local::kill_all_sandboxes(daemon_data.path());
}
