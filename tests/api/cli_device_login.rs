//! Issue 15's `coder login --device`: the real `coder` binary signs in through the device flow
//! as the server's built-in Coder CLI client, a signed-in user approves (or denies) the code on
//! the verification page, and the CLI keeps an API session as a password sign-in does.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::both_backends;
use crate::cli_support::{STEP_TIMEOUT, coder_command, describe_output, output_text, run};
use crate::helpers::{Backend, TestApp, json_body};
use crate::oauth_pages::Browser;

both_backends!(
    device_login_signs_the_cli_in,
    device_login_denied_exits_non_zero,
    device_login_needs_the_oauth2_provider,
    builtin_cli_client_is_fixed,
);

const CLI_CLIENT_ID: &str = "c0de0c11-0000-4000-8000-000000000001";

/// A running `coder login --device`, with the code it printed.
struct DeviceLogin {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    printed: String,
    user_code: String,
}

impl DeviceLogin {
    /// Starts the login against `app` with its own config dir, and reads up to the code.
    async fn start(app: &TestApp, config_dir: &Path) -> DeviceLogin {
        let mut cmd = coder_command(&["login", "--device", &app.url]);
        cmd.env("CODER_CONFIG_DIR", config_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("coder runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = String::new();
        let user_code = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(line) = stdout.next_line().await.expect("stdout") {
                printed.push_str(&line);
                printed.push('\n');
                if let Some((_, code)) = line.split_once("enter the code ") {
                    return code.trim().to_owned();
                }
            }
            panic!("coder printed no code: {printed}");
        })
        .await
        .expect("the code is printed in time");
        DeviceLogin {
            child,
            stdout,
            printed,
            user_code,
        }
    }

    /// Waits for the command to end: its status, all it printed on stdout, and stderr.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let mut stderr = String::new();
        let mut err_pipe = self.child.stderr.take().expect("stderr");
        let ended = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Some(line) = self.stdout.next_line().await.expect("stdout") {
                self.printed.push_str(&line);
                self.printed.push('\n');
            }
            err_pipe.read_to_string(&mut stderr).await.expect("stderr");
            self.child.wait().await.expect("coder exits")
        })
        .await
        .expect("coder login --device ends in time");
        (ended, self.printed, stderr)
    }
}

/// The server's manual clock runs four times faster than the wall clock while the CLI waits out
/// its real polling interval, so the server never sees it poll too soon (`slow_down`).
fn run_server_clock(app: &TestApp) -> tokio::task::JoinHandle<()> {
    let clock = app.clock.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            clock.advance(chrono::Duration::seconds(1));
        }
    })
}

async fn decide(app: &TestApp, session: &str, user_code: &str, action: &str) -> String {
    let mut browser = Browser::new(app, Some(session));
    let page = browser
        .page(&format!("/oauth2/device/verify?user_code={user_code}"))
        .await;
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", action)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    page
}

/// The whole flow: the CLI prints where to go and the code, the owner approves it on the real
/// page (which names the Coder CLI), the CLI exits 0 with the session stored, and every later
/// command works with it. The session is an API key: `/api/v2` takes it, it is audited, and
/// `coder logout` ends it.
async fn device_login_signs_the_cli_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join("cfg");
    let ticking = run_server_clock(&app);

    let login = DeviceLogin::start(&app, &config_dir).await;
    let verify = format!("{}/oauth2/device/verify", app.url);
    assert!(login.printed.contains(&verify), "{}", login.printed);
    let user_code = login.user_code.clone();
    let page = decide(&app, &owner, &user_code, "allow").await;
    assert!(page.contains("Coder CLI"), "{page}");
    assert!(page.contains("coder login --device"), "{page}");
    let (status, stdout, stderr) = login.finish().await;
    ticking.abort();
    assert!(status.success(), "status {status}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{verify}?user_code={user_code}")),
        "{stdout}"
    );
    assert!(stdout.contains("Welcome to Coder, owner!"), "{stdout}");

    let later = |args: &[&str]| {
        let mut cmd = coder_command(args);
        cmd.env("CODER_CONFIG_DIR", &config_dir);
        cmd
    };
    let out = run(later(&["tokens", "list"])).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let out = run(later(&["list"])).await;
    assert!(out.status.success(), "{}", describe_output(&out));

    let session = std::fs::read_to_string(config_dir.join("session")).unwrap();
    let session = session.trim();
    let me = app.get("/api/v2/users/me", Some(session)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(json_body(me).await["username"], "owner");
    let login = app
        .audit_logs()
        .await
        .into_iter()
        .find(|e| e.action == "user.login")
        .expect("the session's opening is audited");
    assert_eq!(
        login.client_id.map(|c| c.0.to_string()).as_deref(),
        Some(CLI_CLIENT_ID)
    );
    assert_eq!(login.details["login_type"], "oauth2_provider_app");

    let out = run(later(&["logout"])).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let me = app.get("/api/v2/users/me", Some(session)).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

/// Denied in the browser: one `error:` line, a non-zero exit, and nothing stored.
async fn device_login_denied_exits_non_zero(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join("cfg");
    let ticking = run_server_clock(&app);

    let login = DeviceLogin::start(&app, &config_dir).await;
    let user_code = login.user_code.clone();
    decide(&app, &owner, &user_code, "deny").await;
    let (status, stdout, stderr) = login.finish().await;
    ticking.abort();
    assert!(!status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("denied"), "{stderr}");
    assert!(!config_dir.join("session").exists());
}

/// Without the OAuth2 provider there is no device flow: one line saying what to enable.
async fn device_login_needs_the_oauth2_provider(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments =
            coderd::domain::Experiments::of(&[coderd::domain::Experiment::McpServerHttp]);
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = coder_command(&["login", "--device", &app.url]);
    cmd.env("CODER_CONFIG_DIR", home.path().join("cfg"));
    let out = run(cmd).await;
    assert!(!out.status.success(), "{}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{}", output_text(&out));
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("--oauth2-provider-enable"), "{stderr}");
}

/// The Coder CLI client exists on every server with its documented id: public, the device
/// grant only, no redirect URI. Owners can read it, not change, delete or give it secrets, and
/// it is not in their list of applications; it cannot be used at the authorization endpoint.
async fn builtin_cli_client_is_fixed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let path = format!("/api/v2/oauth2-provider/apps/{CLI_CLIENT_ID}");
    let cli = json_body(app.get(&path, Some(&owner)).await).await;
    assert_eq!(cli["name"], "Coder CLI");
    assert_eq!(cli["client_type"], "public");
    assert_eq!(cli["builtin"], true);
    assert_eq!(
        cli["grant_types"],
        serde_json::json!(["urn:ietf:params:oauth:grant-type:device_code"])
    );
    assert_eq!(cli["redirect_uris"], serde_json::json!([]));

    let listed: Vec<Value> = serde_json::from_value(
        json_body(app.get("/api/v2/oauth2-provider/apps", Some(&owner)).await).await,
    )
    .unwrap();
    assert!(
        listed.iter().all(|a| a["id"] != CLI_CLIENT_ID),
        "{listed:?}"
    );

    let edit = app
        .request(reqwest::Method::PUT, &path, Some(&owner))
        .json(&serde_json::json!({"name": "Mine now", "callback_url": "https://x.example/cb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(edit).await["message"]
            .as_str()
            .unwrap()
            .contains("built into the server")
    );
    let delete = app.delete(&path, Some(&owner)).await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let secret = app
        .post_json(
            &format!("{path}/secrets"),
            Some(&owner),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(secret.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&path, Some(&owner)).await.status(),
        StatusCode::OK,
        "still there"
    );

    // Device grant only: the authorization endpoint will not redirect anywhere for it.
    let res = app
        .get(
            &format!(
                "/oauth2/authorize?response_type=code&client_id={CLI_CLIENT_ID}&redirect_uri=http://127.0.0.1/cb&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghijabc&code_challenge_method=S256"
            ),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}
