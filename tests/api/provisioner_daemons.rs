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
    a_returning_daemon_is_reconciled_with_the_database,
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

/// Waits until the daemon named `name` is listed with `status` (`idle` once it connected).
async fn wait_for_daemon_status(app: &TestApp, owner: &str, name: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let daemons = json_body(
            app.get(
                "/api/v2/organizations/coder/provisionerdaemons",
                Some(owner),
            )
            .await,
        )
        .await;
        if let Some(daemon) = daemons
            .as_array()
            .and_then(|list| list.iter().find(|d| d["name"] == name))
            .filter(|d| d["status"] == status)
        {
            return daemon.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon {name} never became {status}: {daemons}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_daemon(app: &TestApp, owner: &str, name: &str) {
    wait_for_daemon_status(app, owner, name, "idle").await;
}

/// With two replicas on one PostgreSQL, a daemon connected to one is listed by both, with
/// Coder's fields; once it leaves, both list it offline (kept, so owners see what went away).
#[test]
#[ignore = "needs CODER_TEST_POSTGRES_URL; run with `cargo test -- --include-ignored`"]
fn every_replica_lists_every_daemon() {
    crate::helpers::run_test(every_replica_lists_every_daemon_body());
}

async fn every_replica_lists_every_daemon_body() {
    let first = TestApp::spawn(Backend::postgres()).await;
    let second = first.spawn_replica().await;
    let owner = first.create_owner().await;
    let key = create_key(&first, &owner, "remote", json!({"pool": "remote"})).await;
    let daemon_data = tempfile::tempdir().unwrap();
    let mut daemon = start_daemon(&first, &key, daemon_data.path());
    wait_for_daemon(&first, &owner, "remote-host").await;

    let listed = wait_for_daemon_status(&second, &owner, "remote-host", "idle").await;
    assert_eq!(listed["key_name"], "remote");
    assert_eq!(listed["tags"], json!({"pool": "remote"}));
    assert_eq!(listed["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(listed["provisioners"], json!(["local", "docker"]));
    let id = listed["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{listed}");
    assert!(listed["last_seen_at"].as_str().is_some(), "{listed}");
    let member = first.create_member(&owner, "bob").await;
    assert_eq!(
        second
            .get(
                "/api/v2/organizations/coder/provisionerdaemons",
                Some(&member)
            )
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    daemon.kill().await.unwrap();
    let gone = wait_for_daemon_status(&second, &owner, "remote-host", "offline").await;
    assert_eq!(gone["id"], id, "the same daemon, kept");
    wait_for_daemon_status(&first, &owner, "remote-host", "offline").await;
    second.stop().await.unwrap();
    first.stop().await.unwrap();
}

/// A template tagged `pool: remote`, so its workspaces are built by the daemon of that pool.
async fn remote_template(app: &TestApp, owner: &str) -> Value {
    let version = import_version(
        app,
        owner,
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
            Some(owner),
            &json!({"file_id": version["job"]["file_id"], "tags": {"pool": "remote"}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let tagged = json_body(res).await;
    let tagged = crate::workspace_support::poll(
        app,
        owner,
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
            Some(owner),
            &json!({"name": "remote", "template_version_id": tagged["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await
}

async fn a_daemon_builds_the_workspaces_tagged_for_it_on_its_own_host(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let key = create_key(&app, &owner, "remote", json!({"pool": "remote"})).await;
    let daemon_data = tempfile::tempdir().unwrap();
    let mut daemon = start_daemon(&app, &key, daemon_data.path());
    wait_for_daemon(&app, &owner, "remote-host").await;
    let daemons = json_body(
        app.get(
            "/api/v2/organizations/coder/provisionerdaemons",
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(daemons[0]["tags"], json!({"pool": "remote"}));

    // A template tagged for the daemon's pool: its workspaces are built on the daemon's host.
    let template = remote_template(&app, &owner).await;
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

/// When a daemon (re)connects, the server reconciles its host with the database, as it does
/// its own: a running workspace whose processes died while the daemon was away is recorded as
/// failed, saying why, and what is left of a workspace deleted meanwhile is removed.
async fn a_returning_daemon_is_reconciled_with_the_database(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let key = create_key(&app, &owner, "remote", json!({"pool": "remote"})).await;
    let daemon_data = tempfile::tempdir().unwrap();
    let mut daemon = start_daemon(&app, &key, daemon_data.path());
    wait_for_daemon(&app, &owner, "remote-host").await;
    let template = remote_template(&app, &owner).await;
    let gone = create_workspace(&app, &owner, "gone", &template["id"], json!([])).await;
    let orphan = create_workspace(&app, &owner, "orphan", &template["id"], json!([])).await;
    let on_host = |ws: &Value| {
        daemon_data
            .path()
            .join("workspaces")
            .join(ws["id"].as_str().unwrap())
    };
    assert!(on_host(&orphan).exists());

    // The daemon goes away; meanwhile one workspace's processes die (its sandbox killed by
    // hand, as a host reboot would) and the other is deleted without its build.
    daemon.kill().await.unwrap();
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(on_host(&gone).join("sandbox.json")).unwrap(),
    )
    .unwrap();
    let pid = rustix::process::Pid::from_raw(record["pid"].as_i64().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let orphan_id = coderd::domain::WorkspaceId(orphan["id"].as_str().unwrap().parse().unwrap());
    app.state
        .services
        .store()
        .mark_workspace_deleted(orphan_id, app.state.services.clock().now())
        .await
        .unwrap();

    let mut daemon = start_daemon(&app, &key, daemon_data.path());
    let failed = crate::workspace_support::poll(
        &app,
        &owner,
        &format!("/api/v2/workspaces/{}", gone["id"].as_str().unwrap()),
        |w| w["latest_build"]["status"] == "failed",
    )
    .await;
    assert_eq!(failed["latest_build"]["reason"], "reconcile");
    let error = failed["latest_build"]["job"]["error"].as_str().unwrap();
    assert!(error.contains("ended outside Coder"), "{error}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while on_host(&orphan).exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "what was left of the deleted workspace stayed on the daemon's host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The failed workspace starts again on the daemon, with its files.
    let started = build(&app, &owner, &gone, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    let ws = crate::workspace_support::app_workspace(&app, &owner, &gone["id"]).await;
    assert_eq!(
        exec(&app, &owner, &agent_id(&ws), "cat ~/where").await["output"],
        "built remotely\n"
    );
    build(&app, &owner, &ws, "delete").await;
    daemon.kill().await.unwrap();
    app.stop().await.unwrap();
}
