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

#[test]
fn commands_cannot_see_server_data_or_write_outside_home() {
    crate::helpers::run_test(commands_cannot_see_server_data_or_write_outside_home_body());
}

async fn commands_cannot_see_server_data_or_write_outside_home_body() {
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

#[test]
fn file_operations_refuse_escapes() {
    crate::helpers::run_test(file_operations_refuse_escapes_body());
}

async fn file_operations_refuse_escapes_body() {
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

#[test]
fn commands_time_out_outputs_are_capped_and_stop_ends_background_processes() {
    crate::helpers::run_test(
        commands_time_out_outputs_are_capped_and_stop_ends_background_processes_body(),
    );
}

async fn commands_time_out_outputs_are_capped_and_stop_ends_background_processes_body() {
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

/// An app whose workspaces have small limits, so that bombs hit them quickly.
async fn limited_app() -> (TestApp, String, Value) {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.workspaces.limits.max_processes = Some(128);
        c.workspaces.limits.memory_bytes = Some(256 << 20);
        // Half a core: a bomb must not starve the tests running beside this one either.
        c.workspaces.limits.cpu_cores = Some(0.5);
    })
    .await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    (app, owner, template)
}

/// The workspace's uid on the host: its own, never the server's (these tests run as root, as
/// CI does; a server that is not root cannot give workspaces users of their own).
async fn assert_own_user(app: &TestApp, owner: &str, agent: &str) -> u32 {
    let out = exec(app, owner, agent, "id -u").await;
    let uid: u32 = out["output"].as_str().unwrap().trim().parse().unwrap();
    assert!(
        rustix::process::getuid().is_root(),
        "the sandbox isolation tests need a root server (as CI runs them)"
    );
    assert!(uid >= 1_000_000_000, "workspace uid {uid}");
    uid
}

#[test]
fn workspaces_are_walled_off_from_the_server_and_each_other() {
    crate::helpers::run_test(workspaces_are_walled_off_from_the_server_and_each_other_body());
}

async fn workspaces_are_walled_off_from_the_server_and_each_other_body() {
    let (app, owner, template) = limited_app().await;
    let a = create_workspace(&app, &owner, "a", &template["id"], json!([])).await;
    let b = create_workspace(&app, &owner, "b", &template["id"], json!([])).await;
    let (agent_a, agent_b) = (agent_id(&a), agent_id(&b));
    let uid_a = assert_own_user(&app, &owner, &agent_a).await;
    let uid_b = assert_own_user(&app, &owner, &agent_b).await;
    assert_ne!(uid_a, uid_b, "each workspace has its own user");

    let data = app.db.dir.path().display().to_string();
    let server_pid = std::process::id();
    let probe = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && echo reached-postgres-tcp; \
         for d in /run/postgresql /var/run/postgresql /tmp; do \
           ls -A $d 2>/dev/null | grep -q PGSQL && echo saw-postgres-socket-in-$d; done; \
         test -e /run/postgresql && echo saw-run-postgresql; \
         ls {data} >/dev/null 2>&1 && echo listed-data-dir; \
         cat {data}/coder.db >/dev/null 2>&1 && echo read-database; \
         cat /proc/{server_pid}/environ 2>/dev/null | grep -qa . && echo read-server-environ; \
         cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q '^CODER_TEST_POSTGRES_URL=' && echo saw-server-env; \
         test -S /run/docker.sock && echo saw-docker; \
         ls /run 2>/dev/null | grep -q . && echo saw-run; \
         echo probed"
    );
    let out = exec(&app, &owner, &agent_a, &probe).await;
    assert_eq!(
        out["output"], "probed\n",
        "a workspace reached the server: {out}"
    );

    // A port bound in workspace A is reachable inside A only.
    let listen = "python3 -c \"import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 8123)); s.listen(); open('/tmp/listening','w').close(); [c.sendall(b'hi from a') or c.close() for c,_ in iter(s.accept, None)]\"";
    let res = app
        .post_json(
            &format!("/api/v2/workspaceagents/{agent_a}/execute"),
            Some(&owner),
            &json!({"command": listen, "background": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let connect = "for i in $(seq 50); do test -e /tmp/listening && break; sleep 0.1; done; \
                   (exec 3<>/dev/tcp/127.0.0.1/8123 && cat <&3) 2>/dev/null || echo refused";
    let inside = exec(&app, &owner, &agent_a, connect).await;
    assert_eq!(inside["output"], "hi from a", "{inside}");
    let other = exec(&app, &owner, &agent_b, connect).await;
    assert_eq!(other["output"], "refused\n", "{other}");
    assert!(
        tokio::net::TcpStream::connect("127.0.0.1:8123")
            .await
            .is_err(),
        "the host reached a workspace's port"
    );
    // Nor can B touch A's files or processes.
    let out = exec(
        &app,
        &owner,
        &agent_b,
        &format!("ls /proc | grep -c '^[0-9]'; kill -0 -1 2>/dev/null; find / -user {uid_a} 2>/dev/null | head -1; echo done"),
    )
    .await;
    assert!(out["output"].as_str().unwrap().ends_with("done\n"), "{out}");
    assert!(!out["output"].as_str().unwrap().contains("/home"), "{out}");
    app.stop().await.unwrap();
}

#[test]
fn fork_and_memory_bombs_end_inside_their_workspace() {
    crate::helpers::run_test(fork_and_memory_bombs_end_inside_their_workspace_body());
}

async fn fork_and_memory_bombs_end_inside_their_workspace_body() {
    let (app, owner, template) = limited_app().await;
    let bomb = create_workspace(&app, &owner, "bomb", &template["id"], json!([])).await;
    let calm = create_workspace(&app, &owner, "calm", &template["id"], json!([])).await;
    let (bomb, calm) = (agent_id(&bomb), agent_id(&calm));
    assert_own_user(&app, &owner, &bomb).await;

    // The fork bomb runs into the workspace's process limit; meanwhile the server and the
    // other workspace answer as usual.
    let execute = format!("/api/v2/workspaceagents/{bomb}/execute");
    let fork_body =
        json!({"command": "bomb() { bomb | bomb & }; bomb; sleep 5", "timeout_ms": 8000});
    let fork = app.post_json(&execute, Some(&owner), &fork_body);
    let during = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = std::time::Instant::now();
        let health = app.get("/healthz", None).await;
        assert_eq!(health.status(), StatusCode::OK);
        let out = exec(&app, &owner, &calm, "echo still here").await;
        assert_eq!(out["output"], "still here\n");
        started.elapsed()
    };
    let (forked, took) = tokio::join!(fork, during);
    assert_eq!(forked.status(), StatusCode::OK);
    assert!(
        took < Duration::from_secs(5),
        "the server slowed to {took:?}"
    );
    let pids = exec(&app, &owner, &calm, "cat /proc/loadavg >/dev/null; echo ok").await;
    assert_eq!(pids["output"], "ok\n");

    // The memory bomb is killed inside its workspace (the kernel's OOM killer, 128 + 9).
    let out = exec(
        &app,
        &owner,
        &bomb,
        "python3 -c 'x = bytearray(1 << 30); print(len(x))'; echo exit=$?",
    )
    .await;
    assert!(
        out["output"].as_str().unwrap().contains("exit=137"),
        "{out}"
    );
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    // The workspace itself lives on.
    assert_eq!(
        exec(&app, &owner, &bomb, "echo alive").await["output"],
        "alive\n"
    );
    app.stop().await.unwrap();
}

fn mounted(path: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*path.to_string_lossy()))
}

#[test]
fn a_workspace_fills_only_its_own_disk() {
    crate::helpers::run_test(a_workspace_fills_only_its_own_disk_body());
}

async fn a_workspace_fills_only_its_own_disk_body() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.workspaces.limits.disk_bytes = Some(64 << 20);
    })
    .await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[("README.md", "hi")]).await;
    let ws = create_workspace(&app, &owner, "full", &template["id"], json!([])).await;
    let agent = agent_id(&ws);
    assert_own_user(&app, &owner, &agent).await;
    let root = app
        .db
        .dir
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap());
    assert!(
        mounted(&root.join("disk")),
        "the workspace's disk is mounted"
    );

    let out = exec(
        &app,
        &owner,
        &agent,
        "cat README.md; echo; echo kept > notes; \
         dd if=/dev/zero of=~/big bs=1M count=100 2>&1 | grep -o 'No space left' | head -1; \
         dd if=/dev/zero of=/tmp/big bs=1M count=100 2>&1 | grep -o 'No space left' | head -1; \
         rm -f ~/big /tmp/big; df -m ~ | awk 'NR==2 { print ($2 < 70) ? \"capped\" : \"uncapped\" }'",
    )
    .await;
    assert_eq!(
        out["output"], "hi\nNo space left\nNo space left\ncapped\n",
        "{out}"
    );
    // The disk (and so the home) survives a stop and a start; a stopped workspace's disk is
    // not mounted.
    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped");
    assert!(!mounted(&root.join("disk")));
    let started = build(&app, &owner, &ws, "start").await;
    assert_eq!(started["status"], "running");
    let ws = crate::workspace_support::app_workspace(&app, &owner, &ws["id"]).await;
    let out = exec(&app, &owner, &agent_id(&ws), "cat notes").await;
    assert_eq!(out["output"], "kept\n");
    let deleted = build(&app, &owner, &ws, "delete").await;
    assert_eq!(deleted["status"], "deleted");
    assert!(!mounted(&root.join("disk")));
    assert!(!root.exists(), "delete removes the disk too");
    app.stop().await.unwrap();
}

/// A uid that a process still runs as (a workspace whose directory was deleted under it, or
/// whose server died without stopping it) is never handed to a new workspace: the two would
/// share signals, /proc and the per-user process limit.
#[test]
fn a_uid_still_in_use_by_a_process_is_not_reused() {
    crate::helpers::run_test(a_uid_still_in_use_by_a_process_is_not_reused_body());
}

async fn a_uid_still_in_use_by_a_process_is_not_reused_body() {
    // A range of two that no other test uses, so the lowest free uid is known.
    const BUSY: u32 = 1_000_060_000;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.workspaces.uid_range = BUSY..=BUSY + 1;
    })
    .await;
    let mut leftover = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={BUSY}"),
            &format!("--regid={BUSY}"),
            "--clear-groups",
            "sleep",
            "300",
        ])
        .spawn()
        .expect("setpriv runs a process as the busy uid");
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    let ws = create_workspace(&app, &owner, "fresh", &template["id"], json!([])).await;
    let uid = assert_own_user(&app, &owner, &agent_id(&ws)).await;
    leftover.kill().expect("kill the leftover process");
    let _ = leftover.wait();
    assert_eq!(uid, BUSY + 1, "the uid a process still runs as was skipped");
    app.stop().await.unwrap();
}
