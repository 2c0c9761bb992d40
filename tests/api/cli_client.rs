//! The `coder` binary as a client of a spawned server: `login` (password, token, default config
//! dir), `whoami`, `users show`, `logout`, `tokens`, a stdio MCP session with
//! `coder exp mcp server` (relay, `--allowed-tools`, experiment off, server gone mid-session,
//! EOF) and `coder exp mcp configure` for each agent's file format.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use coderd::domain::{Experiment, Experiments};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::both_backends;
use crate::cli_support::{CODER_BIN, coder_command, describe_output, run};
use crate::helpers::{Backend, PASSWORD, TestApp, json_body};

both_backends!(
    login_with_a_password_then_whoami_and_logout,
    login_with_a_token,
    login_errors_say_what_to_do,
    token_commands,
    mcp_stdio_session_relays_to_the_server,
    mcp_allowed_tools_hide_and_refuse,
    mcp_server_needs_the_experiment,
    mcp_server_gone_mid_session_is_a_json_rpc_error,
    configured_entry_starts_a_working_server,
    audit_list_shows_the_log,
);

/// Every wait is bounded: a step that takes this long has hung.
const STEP: Duration = Duration::from_secs(30);
const WHOAMI: &str = "coder_get_authenticated_user";
const OWNER_EMAIL: &str = "owner@example.com";

/// `coder <args>` with a hermetic environment: no inherited `CODER_*` or `XDG_CONFIG_HOME`, no
/// colours, `HOME` in `home`.
fn coder(home: &Path, args: &[&str]) -> Command {
    let mut cmd = coder_command(args);
    cmd.env_remove("XDG_CONFIG_HOME").env("HOME", home);
    cmd
}

/// A temporary home with a config dir for `coder login`, used through `CODER_CONFIG_DIR`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_dir(&self) -> PathBuf {
        self.path().join("coder-config")
    }

    fn coder(&self, args: &[&str]) -> Command {
        let mut cmd = coder(self.path(), args);
        cmd.env("CODER_CONFIG_DIR", self.config_dir());
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        run(self.coder(args)).await
    }

    /// Runs and requires success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "coder {args:?}: {}",
            describe_output(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn session(&self) -> String {
        std::fs::read_to_string(self.config_dir().join("session")).unwrap()
    }

    async fn login(&self, app: &TestApp) {
        self.ok(&[
            "login",
            &app.url,
            "--email",
            OWNER_EMAIL,
            "--password",
            PASSWORD,
        ])
        .await;
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn status_with(app: &TestApp, path: &str, token: &str) -> StatusCode {
    app.get(path, Some(token)).await.status()
}

// ---------------------------------------------------------------------------------------------
// login, whoami, users show, logout

async fn login_with_a_password_then_whoami_and_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let home = Home::new();

    let out = home
        .run(&[
            "login",
            &format!("{}/", app.url),
            "--email",
            OWNER_EMAIL,
            "--password",
            PASSWORD,
        ])
        .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Welcome to Coder, owner! You're authenticated."
    );
    let dir = home.config_dir();
    assert_eq!(
        std::fs::read_to_string(dir.join("url")).unwrap(),
        app.url,
        "stored without the trailing slash"
    );
    let token = home.session();
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &token).await,
        StatusCode::OK
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.join("session")), 0o600);
        assert_eq!(mode(&dir.join("url")), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    // whoami: a sentence, a table, JSON.
    let said = home.ok(&["whoami"]).await;
    assert_eq!(
        said.trim(),
        format!(
            "Coder is running at {}, You're authenticated as owner !",
            app.url
        )
    );
    let table = home.ok(&["whoami", "--output", "table"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("URL") && lines[0].contains("USERNAME"),
        "{table}"
    );
    assert!(
        lines[1].contains(&app.url) && lines[1].contains("owner"),
        "{table}"
    );
    let me: Value = serde_json::from_str(&home.ok(&["whoami", "-o", "json"]).await).unwrap();
    assert_eq!(me["url"], app.url.as_str());
    assert_eq!(me["username"], "owner");
    assert_eq!(me["email"], OWNER_EMAIL);
    assert_eq!(me["roles"][0]["name"], "owner");

    // users show me: the same user, as Coder's codersdk.User.
    let user: Value =
        serde_json::from_str(&home.ok(&["users", "show", "me", "--output", "json"]).await).unwrap();
    assert_eq!(user["username"], "owner");
    assert_eq!(user["id"], me["id"]);
    let table = home.ok(&["users", "show", "owner"]).await;
    assert!(table.starts_with("USERNAME"), "{table}");
    assert!(
        table.contains(OWNER_EMAIL) && table.contains("active"),
        "{table}"
    );

    // logout ends the session on the server and forgets it here.
    let out = home.ok(&["logout"]).await;
    assert!(out.contains("no longer logged in"), "{out}");
    assert!(!dir.join("session").exists());
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &token).await,
        StatusCode::UNAUTHORIZED
    );
    let out = home.run(&["whoami"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run `coder login <url>` first"),
        "{}",
        describe_output(&out)
    );
    // A second logout is harmless.
    home.ok(&["logout"]).await;
}

async fn login_with_a_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;
    let res = app
        .post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&session),
            &json!({"token_name": "laptop", "lifetime": 0}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let api_token = json_body(res).await["key"].as_str().unwrap().to_owned();

    // --token: stored as the session, checked against /users/me.
    let home = Home::new();
    let out = home.ok(&["login", &app.url, "--token", &api_token]).await;
    assert!(out.contains("Welcome to Coder, owner!"), "{out}");
    assert_eq!(home.session(), api_token);

    // CODER_SESSION_TOKEN and CODER_URL, into the default config dir under $HOME.
    let home = Home::new();
    let mut cmd = coder(home.path(), &["login"]);
    cmd.env("CODER_SESSION_TOKEN", &session)
        .env("CODER_URL", &app.url);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let default_dir = home.path().join(".config/coderv2");
    assert_eq!(
        std::fs::read_to_string(default_dir.join("session")).unwrap(),
        session
    );
    #[cfg(unix)]
    assert_eq!(mode(&default_dir.join("session")), 0o600);
    let whoami = run(coder(home.path(), &["whoami"])).await;
    assert!(whoami.status.success(), "{}", describe_output(&whoami));
    assert!(String::from_utf8_lossy(&whoami.stdout).contains("owner"));
}

async fn login_errors_say_what_to_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let home = Home::new();
    let out = home
        .run(&[
            "login",
            &app.url,
            "--email",
            OWNER_EMAIL,
            "--password",
            PASSWORD,
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("create the first one at {}/setup", app.url)),
        "{}",
        describe_output(&out)
    );
    app.create_owner().await;

    let out = home
        .run(&[
            "login",
            &app.url,
            "--email",
            OWNER_EMAIL,
            "--password",
            "wrong password!",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("incorrect email or password"),
        "{}",
        describe_output(&out)
    );
    assert!(!home.config_dir().join("session").exists());

    let out = home.run(&["login", &app.url, "--token", "nope-nope"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not accept this token"),
        "{}",
        describe_output(&out)
    );

    // Nothing listens on a port we just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = home
        .run(&[
            "login",
            &format!("http://127.0.0.1:{closed}"),
            "--token",
            "x",
        ])
        .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the server at http://127.0.0.1:{closed} could not be reached"
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // No URL anywhere, and no credentials for a script.
    let out = home.run(&["login"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("coder login <url>"),
        "{}",
        describe_output(&out)
    );
    let out = home.run(&["login", &app.url]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--email and --password"),
        "{}",
        describe_output(&out)
    );
    let out = home.run(&["tokens", "list"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run `coder login <url>` first"),
        "{}",
        describe_output(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// tokens

async fn token_commands(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let home = Home::new();
    home.login(&app).await;

    let key = home
        .ok(&["tokens", "create", "--name", "ci", "--lifetime", "24h"])
        .await
        .trim()
        .to_owned();
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &key).await,
        StatusCode::OK
    );
    let other = home.ok(&["tokens", "create"]).await.trim().to_owned();
    assert_ne!(other, key);

    let table = home.ok(&["tokens", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two tokens: {table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("EXPIRES AT"),
        "{table}"
    );
    assert!(lines.iter().any(|l| l.contains(" ci ")), "{table}");

    let listed: Vec<Value> =
        serde_json::from_str(&home.ok(&["tokens", "list", "--output", "json"]).await).unwrap();
    assert_eq!(listed.len(), 2);
    let ci = listed.iter().find(|t| t["token_name"] == "ci").unwrap();
    assert_eq!(ci["lifetime_seconds"], 86_400);
    let generated = listed.iter().find(|t| t["token_name"] != "ci").unwrap();
    assert!(
        generated["token_name"]
            .as_str()
            .unwrap()
            .starts_with("cli-"),
        "{generated}"
    );

    // Remove by name, then by ID.
    let out = home.ok(&["tokens", "remove", "ci"]).await;
    assert_eq!(out.trim(), "Token has been deleted.");
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &key).await,
        StatusCode::UNAUTHORIZED
    );
    let id = generated["id"].as_str().unwrap();
    home.ok(&["tokens", "rm", id]).await;
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &other).await,
        StatusCode::UNAUTHORIZED
    );
    let listed: Vec<Value> =
        serde_json::from_str(&home.ok(&["tokens", "list", "-o", "json"]).await).unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    let out = home.run(&["tokens", "remove", "ci"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`coder tokens list`"),
        "{}",
        describe_output(&out)
    );
    let out = home.run(&["tokens", "create", "--name", "bad name!"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("token_name"),
        "{}",
        describe_output(&out)
    );
    // The session `coder login` stored still works.
    assert_eq!(
        status_with(&app, "/api/v2/users/me", &home.session()).await,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// coder exp mcp server

/// A running `coder exp mcp server`, spoken to as an MCP client speaks over stdio.
struct McpSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl McpSession {
    fn spawn(mut cmd: Command) -> McpSession {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn coder exp mcp server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        McpSession {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next line on stdout, which must be one JSON-RPC message.
    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(STEP, self.stdout.next_line())
            .await
            .expect("a message within 30 s")
            .unwrap()
            .expect("stdout still open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a request and returns the response with its id.
    async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let response = self.recv().await;
        assert_eq!(response["jsonrpc"], "2.0", "{response}");
        assert_eq!(response["id"], id, "{response}");
        response
    }

    async fn initialize(&mut self) -> Value {
        let response = self
            .request(
                json!(1),
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "cli-client-test", "version": "1.0"},
                }),
            )
            .await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        response
    }

    /// Closes stdin and waits for the exit.
    async fn finish(self) -> ExitStatus {
        let (rest, status) = self.close().await;
        assert!(rest.is_empty(), "nothing after the last response: {rest:?}");
        status
    }

    /// Closes stdin, reads stdout to its end, and waits for the exit.
    async fn close(mut self) -> (Vec<Value>, ExitStatus) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(STEP, self.stdout.next_line())
            .await
            .expect("stdout closes")
            .unwrap()
        {
            rest.push(serde_json::from_str(&line).unwrap());
        }
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("coder exits after stdin closes")
            .unwrap();
        (rest, status)
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `coder exp mcp server` with the identity in CODER_URL and CODER_SESSION_TOKEN.
fn mcp_server(app: &TestApp, token: &str, home: &Home, extra: &[&str]) -> Command {
    let mut args = vec!["exp", "mcp", "server"];
    args.extend_from_slice(extra);
    let mut cmd = home.coder(&args);
    cmd.env("CODER_URL", &app.url)
        .env("CODER_SESSION_TOKEN", token);
    cmd
}

async fn mcp_stdio_session_relays_to_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let home = Home::new();
    let mut mcp = McpSession::spawn(mcp_server(&app, &token, &home, &[]));

    let init = mcp.initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "coder", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    // The notification got no answer: the next line is the next response.
    let list = mcp.request(json!("list"), "tools/list", json!({})).await;
    let names = tool_names(&list);
    assert!(names.iter().any(|n| n == WHOAMI), "{names:?}");
    assert!(
        names.iter().any(|n| n == "coder_list_workspaces"),
        "{names:?}"
    );

    let call = mcp
        .request(
            json!(3),
            "tools/call",
            json!({"name": WHOAMI, "arguments": {}}),
        )
        .await;
    assert_eq!(call["result"]["isError"], false, "{call}");
    assert_eq!(
        call["result"]["structuredContent"]["username"], "owner",
        "{call}"
    );

    let pong = mcp.request(json!(4), "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}), "{pong}");

    // The server's own protocol errors come through unchanged.
    let unknown = mcp
        .request(
            json!(5),
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await;
    assert!(unknown["error"]["code"].is_i64(), "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_tool"),
        "{unknown}"
    );

    // A line that is not JSON: a parse error, and the session goes on.
    mcp.stdin
        .as_mut()
        .unwrap()
        .write_all(b"this is not json\n")
        .await
        .unwrap();
    let parse_error = mcp.recv().await;
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    assert_eq!(parse_error["id"], Value::Null);

    // A 2026-07-28 request over stdio: its version and method go into headers for the server.
    let modern = mcp
        .request(
            json!(6),
            "tools/list",
            json!({"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }}),
        )
        .await;
    assert_eq!(modern["result"]["resultType"], "complete", "{modern}");

    // The toolset flag reaches the server.
    let status = mcp.finish().await;
    assert!(status.success(), "exit {status}");
    let mut chatgpt = McpSession::spawn(mcp_server(&app, &token, &home, &["--toolset", "chatgpt"]));
    chatgpt.initialize().await;
    let list = chatgpt.request(json!(2), "tools/list", json!({})).await;
    let mut names = tool_names(&list);
    names.sort();
    assert_eq!(names, ["fetch", "search"]);
    assert!(chatgpt.finish().await.success());
}

async fn mcp_allowed_tools_hide_and_refuse(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let home = Home::new();
    let mut mcp = McpSession::spawn(mcp_server(
        &app,
        &token,
        &home,
        &[
            "--allowed-tools",
            &format!("{WHOAMI}, coder_list_templates"),
        ],
    ));
    mcp.initialize().await;

    let list = mcp.request(json!(2), "tools/list", json!({})).await;
    let mut names = tool_names(&list);
    names.sort();
    assert_eq!(names, [WHOAMI, "coder_list_templates"], "{list}");

    let refused = mcp
        .request(
            json!(3),
            "tools/call",
            json!({"name": "coder_list_workspaces", "arguments": {}}),
        )
        .await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("coder_list_workspaces"), "{message}");
    assert!(
        message.contains(WHOAMI),
        "names the allowed tools: {message}"
    );
    assert_eq!(refused["error"]["data"]["tool"], "coder_list_workspaces");

    let call = mcp
        .request(
            json!(4),
            "tools/call",
            json!({"name": WHOAMI, "arguments": {}}),
        )
        .await;
    assert_eq!(
        call["result"]["structuredContent"]["username"], "owner",
        "{call}"
    );
    // Requests still running when stdin closes are answered before the exit (piped use).
    mcp.send(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": WHOAMI, "arguments": {}}}))
        .await;
    let (rest, status) = mcp.close().await;
    assert!(status.success(), "exit {status}");
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0]["id"], 5);
    assert_eq!(rest[0]["result"]["structuredContent"]["username"], "owner");

    // The same filter from the environment, as an agent's config may set it.
    let mut cmd = mcp_server(&app, &token, &home, &[]);
    cmd.env("CODER_MCP_ALLOWED_TOOLS", WHOAMI);
    let mut mcp = McpSession::spawn(cmd);
    mcp.initialize().await;
    let list = mcp.request(json!(2), "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), [WHOAMI]);
    assert!(mcp.finish().await.success());
}

async fn mcp_server_needs_the_experiment(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&[Experiment::OAuth2]);
    })
    .await;
    let token = app.create_owner().await;
    let home = Home::new();
    let out = run(mcp_server(&app, &token, &home, &[])).await;
    assert!(!out.status.success(), "{}", describe_output(&out));
    assert!(
        out.stdout.is_empty(),
        "nothing on the MCP channel: {}",
        describe_output(&out)
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains("mcp-server-http") && lines[0].contains("--experiments=mcp-server-http"),
        "{err}"
    );

    // Not signed in at all: the advice to sign in.
    let out = run(home.coder(&["exp", "mcp", "server"])).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("coder login <url>"),
        "{}",
        describe_output(&out)
    );

    // A session the server no longer accepts.
    let out = run(mcp_server(
        &app,
        "abcdefghij-0123456789abcdefghijklmn",
        &home,
        &[],
    ))
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run `coder login"),
        "{}",
        describe_output(&out)
    );
}

async fn mcp_server_gone_mid_session_is_a_json_rpc_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let home = Home::new();
    let mut mcp = McpSession::spawn(mcp_server(&app, &token, &home, &[]));
    mcp.initialize().await;
    let list = mcp.request(json!(2), "tools/list", json!({})).await;
    assert!(list["result"]["tools"].is_array(), "{list}");

    app.stop().await.unwrap();

    let started = std::time::Instant::now();
    for (id, method, params) in [
        (3, "tools/list", json!({})),
        (4, "tools/call", json!({"name": WHOAMI, "arguments": {}})),
    ] {
        let failed = mcp.request(json!(id), method, params).await;
        assert_eq!(failed["error"]["code"], -32603, "{failed}");
        let message = failed["error"]["message"].as_str().unwrap();
        assert!(message.contains("could not be reached"), "{message}");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "no hang");
    // Local answers keep working, and EOF still ends the process cleanly.
    let pong = mcp.request(json!(5), "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}));
    assert!(mcp.finish().await.success());
}

// ---------------------------------------------------------------------------------------------
// coder exp mcp configure

/// Where each agent keeps its MCP config under a home directory on this OS.
fn agent_config(home: &Path, agent: &str) -> PathBuf {
    match agent {
        "claude-desktop" if cfg!(target_os = "macos") => {
            home.join("Library/Application Support/Claude/claude_desktop_config.json")
        }
        "claude-desktop" => home.join(".config/Claude/claude_desktop_config.json"),
        "claude-code" => home.join(".claude.json"),
        "cursor" => home.join(".cursor/mcp.json"),
        other => panic!("unknown agent {other}"),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A config dir as `coder login` leaves it, without a server.
fn fake_login(home: &Home) {
    let dir = home.config_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("url"), "http://127.0.0.1:1").unwrap();
    std::fs::write(dir.join("session"), "aaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb").unwrap();
}

#[test]
fn configure_writes_each_agent_format_keeping_other_entries() {
    crate::helpers::run_test(configure_writes_each_agent_format_keeping_other_entries_body());
}

async fn configure_writes_each_agent_format_keeping_other_entries_body() {
    let bin = std::fs::canonicalize(CODER_BIN).unwrap();
    for agent in ["claude-desktop", "claude-code", "cursor"] {
        let home = Home::new();
        fake_login(&home);
        let path = agent_config(home.path(), agent);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let before = json!({
            "theme": "dark",
            "numStartups": 42,
            "mcpServers": {
                "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
            },
        });
        std::fs::write(&path, serde_json::to_string_pretty(&before).unwrap()).unwrap();

        // --dry-run shows the result and writes nothing.
        let untouched = std::fs::read(&path).unwrap();
        let shown = home
            .ok(&["exp", "mcp", "configure", agent, "--dry-run"])
            .await;
        let shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            untouched,
            "{agent}: dry run wrote"
        );

        let out = home.ok(&["exp", "mcp", "configure", agent]).await;
        assert!(
            out.contains("Added") && out.contains(path.to_str().unwrap()),
            "{out}"
        );
        let after = read_json(&path);
        assert_eq!(after, shown, "{agent}: the dry run showed what was written");
        assert_eq!(after["theme"], "dark", "{agent}");
        assert_eq!(after["numStartups"], 42, "{agent}");
        assert_eq!(
            after["mcpServers"]["github"],
            before["mcpServers"]["github"]
        );
        let entry = &after["mcpServers"]["coder"];
        assert_eq!(entry["command"], bin.to_str().unwrap(), "{agent}: {entry}");
        assert_eq!(entry["args"], json!(["exp", "mcp", "server"]), "{agent}");
        let config_dir = std::path::absolute(home.config_dir()).unwrap();
        assert_eq!(
            entry["env"],
            json!({"CODER_CONFIG_DIR": config_dir.to_str().unwrap()}),
            "{agent}: the login is referenced, not copied"
        );
        if agent == "claude-code" {
            assert_eq!(entry["type"], "stdio");
        } else {
            assert!(entry.get("type").is_none(), "{agent}: {entry}");
        }

        // Running it again changes nothing; new flags update the entry in place.
        let out = home.ok(&["exp", "mcp", "configure", agent]).await;
        assert!(out.starts_with("Kept"), "{out}");
        let out = home
            .ok(&[
                "exp",
                "mcp",
                "configure",
                agent,
                "--toolset",
                "workspace",
                "--allowed-tools",
                WHOAMI,
            ])
            .await;
        assert!(out.starts_with("Updated"), "{out}");
        let updated = read_json(&path);
        assert_eq!(
            updated["mcpServers"]["coder"]["args"],
            json!([
                "exp",
                "mcp",
                "server",
                "--toolset",
                "workspace",
                "--allowed-tools",
                WHOAMI
            ])
        );
        assert_eq!(
            updated["mcpServers"]["github"],
            before["mcpServers"]["github"]
        );
    }
}

#[test]
fn configure_creates_files_takes_tokens_and_refuses_bad_input() {
    crate::helpers::run_test(configure_creates_files_takes_tokens_and_refuses_bad_input_body());
}

async fn configure_creates_files_takes_tokens_and_refuses_bad_input_body() {
    // A fresh home: the file and its folders are created, private.
    let home = Home::new();
    fake_login(&home);
    let path = agent_config(home.path(), "cursor");
    let out = home
        .run(&["exp", "mcp", "configure", "cursor", "--dry-run"])
        .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert!(!path.exists(), "dry run created {}", path.display());
    assert!(!path.parent().unwrap().exists());
    home.ok(&["exp", "mcp", "configure", "cursor"]).await;
    assert!(read_json(&path)["mcpServers"]["coder"].is_object());
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    // An explicit token (e.g. a long-lived API token) goes into the entry with the URL.
    let home = Home::new();
    let out = home
        .run(&[
            "exp",
            "mcp",
            "configure",
            "claude-code",
            "--url",
            "https://coder.example.com/",
            "--token",
            "tok-secret",
        ])
        .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let entry = &read_json(&agent_config(home.path(), "claude-code"))["mcpServers"]["coder"];
    assert_eq!(
        entry["env"],
        json!({"CODER_URL": "https://coder.example.com", "CODER_SESSION_TOKEN": "tok-secret"})
    );

    // Not logged in: advice, no file.
    let home = Home::new();
    let out = home.run(&["exp", "mcp", "configure", "cursor"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("coder login <url>"),
        "{}",
        describe_output(&out)
    );
    assert!(!agent_config(home.path(), "cursor").exists());

    // A file that is not JSON is left alone.
    let home = Home::new();
    fake_login(&home);
    let path = agent_config(home.path(), "claude-code");
    std::fs::write(&path, "{ not json").unwrap();
    let out = home.run(&["exp", "mcp", "configure", "claude-code"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not valid JSON"),
        "{}",
        describe_output(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
}

/// End to end: sign in, configure an agent, then start the server exactly as the agent would
/// from its file (command, args, env) and use a tool.
async fn configured_entry_starts_a_working_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let home = Home::new();
    home.login(&app).await;
    home.ok(&[
        "exp",
        "mcp",
        "configure",
        "claude-desktop",
        "--allowed-tools",
        WHOAMI,
    ])
    .await;
    let config = read_json(&agent_config(home.path(), "claude-desktop"));
    let entry = &config["mcpServers"]["coder"];

    let mut cmd = Command::new(entry["command"].as_str().unwrap());
    cmd.args(
        entry["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap()),
    );
    cmd.env_clear().env("HOME", home.path()).kill_on_drop(true);
    for (key, value) in entry["env"].as_object().unwrap() {
        cmd.env(key, value.as_str().unwrap());
    }
    let mut mcp = McpSession::spawn(cmd);
    let init = mcp.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "coder");
    let list = mcp.request(json!(2), "tools/list", json!({})).await;
    assert_eq!(tool_names(&list), [WHOAMI]);
    let call = mcp
        .request(
            json!(3),
            "tools/call",
            json!({"name": WHOAMI, "arguments": {}}),
        )
        .await;
    assert_eq!(
        call["result"]["structuredContent"]["username"], "owner",
        "{call}"
    );
    assert!(mcp.finish().await.success());
}

/// `coder audit list`: the owner's view of the audit log, as a table and as JSON, searchable.
async fn audit_list_shows_the_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    app.obtain_tokens(&owner, &client).await;
    let home = Home::new();
    home.login(&app).await;

    let table = home.ok(&["audit", "list"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("ACTION"),
        "{table}"
    );
    assert!(table.contains("oauth2.consent.allow"), "{table}");
    assert!(table.contains("owner"), "{table}");

    let page: Value = serde_json::from_str(
        &home
            .ok(&[
                "audit",
                "list",
                "-q",
                "action:oauth2.token.issue",
                "-o",
                "json",
            ])
            .await,
    )
    .unwrap();
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["audit_logs"][0]["action"], "oauth2.token.issue");

    let out = home.run(&["audit", "list", "-q", "color:blue"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Unknown filter"), "{}", stderr(&out));
}
