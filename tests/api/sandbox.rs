//! The local provisioner's sandbox: what a workspace command can see and change, file
//! operations that try to escape the home, timeouts, output caps and background processes. The
//! sandbox does not depend on the database, so these run on SQLite only.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, json_body};
use crate::workspace_support::{agent_id, build, create_template, create_workspace, exec};

/// A running workspace on an app whose data directory is outside /tmp (as in production), so
/// hiding it is the sandbox's doing, not a side effect of the private /tmp.
async fn running_workspace() -> (TestApp, String, Value, tempfile::TempDir) {
    let data = tempfile::tempdir_in("/var/tmp").expect("data dir");
    let data_dir = data.path().to_path_buf();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        // The database inside the data directory, as `coder server` keeps it by default.
        c.database = coderd::store::DatabaseTarget::Sqlite(data_dir.join("coder.db"));
        c.data_dir = data_dir;
    })
    .await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    let ws = create_workspace(&app, &owner, "box", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    (app, owner, ws, data)
}

#[tokio::test]
async fn commands_cannot_see_server_data_or_write_outside_home() {
    let (app, owner, ws, data) = running_workspace().await;
    let agent = agent_id(&ws);
    let db = data.path().join("coder.db");
    assert!(db.exists());
    let data_dir = data.path().display().to_string();
    let workspaces = data.path().join("workspaces");
    assert!(workspaces.exists());
    let script = format!(
        "test -e {db} && echo db-visible; \
         cat {db} >/dev/null 2>&1 && echo db-readable; \
         test -e {ws} && echo workspaces-visible; \
         ls -A {data} 2>/dev/null | wc -l; \
         touch /etc/coder-sandbox-test 2>/dev/null && echo wrote-etc; \
         touch /usr/coder-sandbox-test 2>/dev/null && echo wrote-usr; \
         touch {data}/x 2>/dev/null; test -e {data}/x && echo wrote-data-tmpfs; \
         echo ok > /tmp/t && cat /tmp/t; \
         touch ~/home-ok && echo wrote-home; \
         ls /proc | grep -c '^[0-9]' | awk '{{ print ($1 < 8) ? \"few-pids\" : \"many-pids\" }}'; \
         id -u; printenv CODER_TEST_POSTGRES_URL; echo end",
        db = db.display(),
        ws = workspaces.display(),
        data = data_dir,
    );
    let out = exec(&app, &owner, &agent, &script).await;
    let output = out["output"].as_str().unwrap();
    for line in [
        "db-visible",
        "db-readable",
        "workspaces-visible",
        "wrote-etc",
        "wrote-usr",
        "many-pids",
    ] {
        assert!(!output.contains(line), "sandbox leak: {line}\n{output}");
    }
    assert!(
        output.starts_with("0\n"),
        "the data dir is not empty inside: {output}"
    );
    assert!(output.contains("ok\nwrote-home\nfew-pids\n"), "{output}");
    assert!(output.ends_with("end\n"), "{output}");
    assert!(!std::path::Path::new("/etc/coder-sandbox-test").exists());
    // What the sandbox wrote landed in the workspace home, and only there.
    let home = workspaces.join(ws["id"].as_str().unwrap()).join("home");
    assert!(home.join("home-ok").exists());
    assert!(!data.path().join("x").exists());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn file_operations_refuse_escapes() {
    let (app, owner, ws, _data) = running_workspace().await;
    let agent = agent_id(&ws);
    let base = format!("/api/v2/workspaceagents/{agent}");
    exec(&app, &owner, &agent, "ln -s / ~/root; ln -s /etc/hostname ~/host; mkdir -p ~/d; ln -s d ~/inside; echo hi > ~/d/f").await;
    let before = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "/home/coder/../../etc/passwd",
        "root/etc/passwd",
        "host",
        "/home/coderx/a",
    ] {
        let res = app
            .get(&format!("{base}/read-file?path={path}"), Some(&owner))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "read {path}");
        let message = json_body(res).await["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("outside") || message.contains("symbolic link"),
            "{message}"
        );
    }
    for path in ["host", "root/tmp/escape", "../escape", "/tmp/escape"] {
        let res = app
            .post_json(
                &format!("{base}/write-file"),
                Some(&owner),
                &json!({"path": path, "content": "pwned"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "write {path}");
    }
    assert_eq!(
        std::fs::read_to_string("/etc/hostname").unwrap_or_default(),
        before
    );
    assert!(!std::path::Path::new("/tmp/escape").exists());
    let res = app.get(&format!("{base}/ls?path=root"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .post_json(
            &format!("{base}/edit-files"),
            Some(&owner),
            &json!({"files": [{"path": "host", "edits": [{"search": "a", "replace": "b"}]}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Links that stay inside the home work.
    let read = json_body(
        app.get(&format!("{base}/read-file?path=inside/f"), Some(&owner))
            .await,
    )
    .await;
    assert_eq!(read["content"], "hi\n");
    let res = app
        .get(&format!("{base}/read-file?path=missing.txt"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn commands_time_out_outputs_are_capped_and_stop_ends_background_processes() {
    let (app, owner, ws, data) = running_workspace().await;
    let agent = agent_id(&ws);
    let execute = format!("/api/v2/workspaceagents/{agent}/execute");

    let started = std::time::Instant::now();
    let res = app
        .post_json(
            &execute,
            Some(&owner),
            &json!({"command": "echo before; sleep 30", "timeout_ms": 300}),
        )
        .await;
    let out = json_body(res).await;
    assert_eq!(out["timed_out"], true, "{out}");
    assert_eq!(out["exit_code"], 124);
    assert!(out["output"].as_str().unwrap().starts_with("before\n"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let res = app
        .post_json(
            &execute,
            Some(&owner),
            &json!({"command": "true", "timeout_ms": 3_600_000}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .unwrap()
            .contains("max-command-timeout")
    );

    let out = exec(
        &app,
        &owner,
        &agent,
        "head -c 2000000 /dev/zero | tr '\\0' a; echo; echo done >&2",
    )
    .await;
    assert_eq!(out["truncated"], true);
    let output = out["output"].as_str().unwrap();
    assert!(output.len() < 1024 * 1024 + 200, "{}", output.len());
    assert!(output.contains("[output truncated"));

    // A background process keeps running after the request, until the workspace stops.
    let res = app
        .post_json(
            &execute,
            Some(&owner),
            &json!({"command": "while true; do date +%s%N > ~/tick; sleep 0.05; done", "background": true}),
        )
        .await;
    let out = json_body(res).await;
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["process_id"], "p1", "{out}");
    let tick = data
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap())
        .join("home/tick");
    let read = || std::fs::read_to_string(&tick).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let t = read();
        if !t.is_empty() {
            break t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the background process never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read() == first {
        assert!(
            std::time::Instant::now() < deadline,
            "the background process stopped by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped");
    let after_stop = read();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read(), after_stop, "a process survived the stop");
    app.stop().await.unwrap();
}
