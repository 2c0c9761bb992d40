//! The real `coder` binary through a workspace's life: `templates push` (create, then a new
//! version), `templates list|versions list`, `create --parameter`, `list -o json`, `show`,
//! `stop`, `start`, `restart`, `logs`, `delete`, `templates delete`, `users create|list`, and the
//! one-line failures (missing parameters off a terminal, unknown parameters, confirmation).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::both_backends;
use crate::cli_support::{coder_command, describe_output, output_text, run};
use crate::helpers::{Backend, TestApp};

both_backends!(
    template_push_create_list_stop_start_delete,
    create_names_missing_and_unknown_parameters,
    failed_imports_exit_non_zero_with_one_line,
    users_create_and_list,
    a_terminal_shows_a_spinner_and_a_pipe_does_not,
);

/// The repository's basic example template.
fn basic_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates/basic")
}

/// Runs `coder` against `app` as the holder of `token`, stdin not a terminal.
async fn coder(app: &TestApp, token: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = coder_command(args);
    cmd.env("HOME", home.path())
        .env("CODER_CONFIG_DIR", home.path().join("cfg"))
        .env("CODER_URL", &app.url)
        .env("CODER_SESSION_TOKEN", token);
    run(cmd).await
}

/// Runs and requires success; returns stdout and stderr together.
async fn ok(app: &TestApp, token: &str, args: &[&str]) -> String {
    let out = coder(app, token, args).await;
    assert!(
        out.status.success(),
        "coder {args:?}: {}",
        describe_output(&out)
    );
    output_text(&out)
}

/// Runs and requires failure with exactly one line on stderr; returns that line.
async fn fails(app: &TestApp, token: &str, args: &[&str]) -> String {
    let out = coder(app, token, args).await;
    assert!(
        !out.status.success(),
        "coder {args:?} should fail: {}",
        describe_output(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let last = stderr
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(last.starts_with("error: "), "{}", describe_output(&out));
    last
}

async fn workspaces_json(app: &TestApp, token: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["list", "-o", "json"];
    all.extend_from_slice(args);
    let out = coder(app, token, &all).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status_of(workspaces: &[Value], name: &str) -> String {
    workspaces
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {workspaces:?}"))["latest_build"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn template_push_create_list_stop_start_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let dir = basic_template();
    let dir = dir.to_str().unwrap();

    let pushed = ok(
        &app,
        &owner,
        &["templates", "push", "basic", "-d", dir, "-y"],
    )
    .await;
    assert!(pushed.contains("Template \"basic\" created"), "{pushed}");
    let listed = ok(&app, &owner, &["templates", "list"]).await;
    assert!(listed.lines().any(|l| l.starts_with("basic ")), "{listed}");

    // A second push is a new, active version of the same template.
    let pushed = ok(
        &app,
        &owner,
        &[
            "templates",
            "push",
            "basic",
            "-d",
            dir,
            "-m",
            "second",
            "--name",
            "v2",
        ],
    )
    .await;
    assert!(pushed.contains("\"v2\" is active"), "{pushed}");
    let versions = ok(&app, &owner, &["templates", "versions", "list", "basic"]).await;
    let rows: Vec<&str> = versions.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{versions}");
    let active: Vec<&&str> = rows.iter().filter(|r| r.ends_with("Active")).collect();
    assert_eq!(active.len(), 1, "{versions}");
    assert!(active[0].starts_with("v2 "), "{versions}");

    let created = ok(
        &app,
        &owner,
        &[
            "create",
            "dev",
            "--template",
            "basic",
            "--parameter",
            "greeting=Howdy",
            "-y",
        ],
    )
    .await;
    assert!(created.contains("has been created"), "{created}");
    let listed = workspaces_json(&app, &owner, &[]).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(status_of(&listed, "dev"), "running");
    assert_eq!(listed[0]["template_name"], "basic");
    let table = ok(&app, &owner, &["list"]).await;
    assert!(
        table.contains("owner/dev") && table.contains("Running"),
        "{table}"
    );
    let shown = ok(&app, &owner, &["show", "dev"]).await;
    assert!(
        shown.contains("owner/dev") && shown.contains("#1"),
        "{shown}"
    );

    // The parameter reached the build: the workspace's startup script greets with it.
    let ws = &listed[0];
    let agent = crate::workspace_support::agent_id(ws);
    crate::workspace_support::poll(
        &app,
        &owner,
        &format!("/api/v2/workspaceagents/{agent}/logs"),
        |logs| logs.to_string().contains("Howdy from dev"),
    )
    .await;

    // Stopping asks first; off a terminal that is a one-line error naming --yes.
    let refused = fails(&app, &owner, &["stop", "dev"]).await;
    assert!(refused.contains("--yes"), "{refused}");
    assert_eq!(
        status_of(&workspaces_json(&app, &owner, &[]).await, "dev"),
        "running"
    );

    let stopped = ok(&app, &owner, &["stop", "dev", "-y"]).await;
    assert!(stopped.contains("has been stopped"), "{stopped}");
    assert_eq!(
        status_of(&workspaces_json(&app, &owner, &[]).await, "dev"),
        "stopped"
    );

    let started = ok(&app, &owner, &["start", "owner/dev"]).await;
    assert!(started.contains("has been started"), "{started}");
    assert_eq!(
        status_of(&workspaces_json(&app, &owner, &[]).await, "dev"),
        "running"
    );

    let restarted = ok(&app, &owner, &["restart", "dev", "-y"]).await;
    assert!(restarted.contains("has been restarted"), "{restarted}");
    let listed = workspaces_json(&app, &owner, &[]).await;
    assert_eq!(status_of(&listed, "dev"), "running");
    assert_eq!(listed[0]["latest_build"]["build_number"], 5);

    let logs = ok(&app, &owner, &["logs", "dev", "--build-number", "2"]).await;
    assert!(!logs.trim().is_empty(), "build 2 has logs");

    // The template cannot go while a workspace uses it.
    let refused = fails(&app, &owner, &["templates", "delete", "basic", "-y"]).await;
    assert!(refused.contains("basic"), "{refused}");

    let deleted = ok(&app, &owner, &["delete", "dev", "-y"]).await;
    assert!(deleted.contains("has been deleted"), "{deleted}");
    assert!(workspaces_json(&app, &owner, &[]).await.is_empty());

    let deleted = ok(&app, &owner, &["templates", "delete", "basic", "-y"]).await;
    assert!(deleted.contains("Deleted template \"basic\""), "{deleted}");
    let listed = ok(&app, &owner, &["templates", "list", "-o", "json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap(),
        serde_json::json!([])
    );
}

const REQUIRED: &str = r#"
parameters:
  - name: project
    display_name: Project
  - name: region
    default: eu
    options:
      - name: Europe
        value: eu
      - name: United States
        value: us
agent:
  startup_script: echo "project $CODER_PARAM_PROJECT"
"#;

fn template_dir(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("coder.yaml"), manifest).unwrap();
    dir
}

async fn create_names_missing_and_unknown_parameters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let dir = template_dir(REQUIRED);
    ok(
        &app,
        &owner,
        &[
            "templates",
            "push",
            "req",
            "-d",
            dir.path().to_str().unwrap(),
            "-y",
        ],
    )
    .await;

    let missing = fails(&app, &owner, &["create", "w1", "-t", "req", "-y"]).await;
    assert!(
        missing.contains("project") && missing.contains("--parameter"),
        "{missing}"
    );
    assert!(
        !missing.contains("region"),
        "region has a default: {missing}"
    );

    let unknown = fails(
        &app,
        &owner,
        &[
            "create",
            "w1",
            "-t",
            "req",
            "--parameter",
            "project=x",
            "--parameter",
            "zone=a",
        ],
    )
    .await;
    assert!(unknown.contains("\"zone\""), "{unknown}");

    let bad = fails(
        &app,
        &owner,
        &[
            "create",
            "w1",
            "-t",
            "req",
            "--parameter",
            "project=x",
            "--parameter",
            "region=mars",
        ],
    )
    .await;
    assert!(
        bad.contains("region"),
        "the server's validation is shown: {bad}"
    );

    let unknown_template = fails(&app, &owner, &["create", "w1", "-t", "nope"]).await;
    assert!(
        unknown_template.contains("\"nope\" not found"),
        "{unknown_template}"
    );
    assert!(workspaces_json(&app, &owner, &[]).await.is_empty());

    ok(
        &app,
        &owner,
        &["create", "w1", "-t", "req", "--parameter", "project=x"],
    )
    .await;
    assert_eq!(
        status_of(&workspaces_json(&app, &owner, &[]).await, "w1"),
        "running"
    );
}

async fn failed_imports_exit_non_zero_with_one_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let broken = template_dir("parameters: [ {name: 1\n");
    let failed = fails(
        &app,
        &owner,
        &[
            "templates",
            "push",
            "broken",
            "-d",
            broken.path().to_str().unwrap(),
            "-y",
        ],
    )
    .await;
    assert!(failed.contains("import failed"), "{failed}");
    let listed = ok(&app, &owner, &["templates", "list", "-o", "json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap(),
        serde_json::json!([])
    );

    let empty = tempfile::tempdir().unwrap();
    let failed = fails(
        &app,
        &owner,
        &[
            "templates",
            "push",
            "x",
            "-d",
            empty.path().to_str().unwrap(),
            "-y",
        ],
    )
    .await;
    assert!(failed.contains("coder.yaml"), "{failed}");
}

async fn users_create_and_list(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let created = ok(
        &app,
        &owner,
        &[
            "users",
            "create",
            "--email",
            "ann@example.com",
            "--username",
            "ann",
        ],
    )
    .await;
    let password = created
        .lines()
        .find_map(|l| l.strip_prefix("Their password (shown only now): "))
        .unwrap_or_else(|| panic!("a generated password: {created}"))
        .to_owned();
    let member = app.login("ann@example.com", &password).await;
    assert!(!member.is_empty());

    let listed = ok(&app, &owner, &["users", "list"]).await;
    assert!(listed.lines().any(|l| l.starts_with("ann ")), "{listed}");
    let json: Vec<Value> =
        serde_json::from_str(&ok(&app, &owner, &["users", "list", "-o", "json"]).await).unwrap();
    assert_eq!(json.len(), 2);

    let refused = fails(
        &app,
        &member,
        &[
            "users",
            "create",
            "-e",
            "bob@example.com",
            "-u",
            "bob",
            "-p",
            "pw-long-enough-1",
        ],
    )
    .await;
    assert!(refused.contains("cannot create the user"), "{refused}");
}

/// `coder create` on a terminal (a pseudo-terminal from util-linux's `script`) draws a spinner
/// naming what it waits for; the same command into a pipe prints only the log lines.
async fn a_terminal_shows_a_spinner_and_a_pipe_does_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let dir = basic_template();
    ok(
        &app,
        &owner,
        &[
            "templates",
            "push",
            "basic",
            "-d",
            dir.to_str().unwrap(),
            "-y",
        ],
    )
    .await;

    let piped = ok(
        &app,
        &owner,
        &["create", "piped", "--template", "basic", "-y"],
    )
    .await;
    assert!(
        !piped.contains('\x1b') && !piped.contains('\r'),
        "{piped:?}"
    );
    assert!(!piped.contains("Building workspace"), "{piped:?}");

    let home = tempfile::tempdir().unwrap();
    let line = format!(
        "{} create tty --template basic -y",
        crate::cli_support::CODER_BIN
    );
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    crate::cli_support::hermetic(&mut cmd);
    cmd.env("HOME", home.path())
        .env("CODER_CONFIG_DIR", home.path().join("cfg"))
        .env("CODER_URL", &app.url)
        .env("CODER_SESSION_TOKEN", &owner)
        .env("TERM", "xterm");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let screen = output_text(&out);
    assert!(
        screen.contains("\r\x1b[2K⠋ Building workspace tty (0s)"),
        "a spinner: {screen:?}"
    );
    assert!(
        screen.contains("The tty workspace has been created and is running."),
        "{screen:?}"
    );
}
