//! The real `coder` binary: the start line, graceful SIGTERM, unreachable databases,
//! `create-admin-user`, flag > env > file precedence, and the example config files.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use coderd::config::{ServerConfig, ServerOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::cli_support::{STEP_TIMEOUT, coder_command, output_text, run};
use crate::helpers::{Backend, PASSWORD, TestDatabase, json_body};

const STARTED: &str = "Coder server started";

/// The value of `key=value` in a human log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// A running `coder server`, its output collected line by line.
struct Server {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
    /// The URL from the start line.
    url: String,
    start_line: String,
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static, tx: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Server {
    /// Spawns `cmd` (a `coder server` command) and waits for its start line and `/healthz`.
    async fn start(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn coder");
        let (tx, rx) = mpsc::unbounded_channel();
        forward(child.stdout.take().expect("stdout"), tx.clone());
        forward(child.stderr.take().expect("stderr"), tx);
        let mut server = Server {
            child,
            lines: rx,
            log: Vec::new(),
            url: String::new(),
            start_line: String::new(),
        };
        server.start_line = server.wait_for_line(STARTED).await;
        server.url = field(&server.start_line, "url").to_owned();
        wait_healthy(&server.url).await;
        server
    }

    /// Reads output until a line contains `needle`.
    async fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline.into(), self.lines.recv()).await;
            match next {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "coder ended its output before {needle:?}:\n{}",
                    self.log.join("\n")
                ),
                Err(_) => panic!(
                    "no {needle:?} within {STEP_TIMEOUT:?}:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the status and every line logged.
    async fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("still running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .expect("the server stops after SIGTERM")
            .expect("wait for coder");
        // The pipes close with the process; collect what is left.
        while let Ok(Some(line)) = tokio::time::timeout(STEP_TIMEOUT, self.lines.recv()).await {
            self.log.push(line);
        }
        (status, self.log)
    }

    /// Stops the server and checks that it stopped cleanly.
    async fn stop(self) {
        let (status, log) = self.terminate().await;
        assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    }
}

async fn wait_healthy(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(res) = client.get(format!("{url}/healthz")).send().await
            && res.status() == StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url}/healthz did not answer 200 within 10 s");
}

async fn login(url: &str, email: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/api/v2/users/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login request")
}

async fn session(url: &str, email: &str, password: &str) -> String {
    let res = login(url, email, password).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = json_body(res).await;
    body["session_token"]
        .as_str()
        .expect("session_token")
        .to_owned()
}

async fn get_json(url: &str, path: &str, token: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header("Coder-Session-Token", token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    json_body(res).await
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// The `--postgres-url` or `--data-dir` arguments for a test database.
fn database_args(db: &TestDatabase) -> Vec<String> {
    match &db.target {
        coderd::store::DatabaseTarget::Postgres(url) => vec!["--postgres-url".into(), url.clone()],
        coderd::store::DatabaseTarget::Sqlite(_) => {
            vec!["--data-dir".into(), path_str(db.dir.path()).to_owned()]
        }
    }
}

#[test]
fn server_logs_its_start_serves_and_stops_on_sigterm() {
    crate::helpers::run_test(server_logs_its_start_serves_and_stops_on_sigterm_body());
}

async fn server_logs_its_start_serves_and_stops_on_sigterm_body() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("data");
    let server = Server::start(coder_command(&[
        "server",
        "--http-address",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data),
        "--experiments",
        "OAuth2,bogus",
    ]))
    .await;

    let line = server.start_line.clone();
    assert!(server.url.starts_with("http://127.0.0.1:"), "{line}");
    assert_ne!(server.url, "http://127.0.0.1:0", "{line}");
    let db_file = data.join("coder.db");
    assert!(
        line.contains(&format!("database=sqlite {}", db_file.display())),
        "{line}"
    );
    assert_eq!(field(&line, "experiments"), "oauth2", "{line}");
    assert!(
        db_file.exists(),
        "the data dir and database are created on first start"
    );
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("WARN") && l.contains("bogus")),
        "an unknown experiment is a warning:\n{}",
        server.log.join("\n")
    );

    let info = reqwest::get(format!("{}/api/v2/buildinfo", server.url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(info["external_url"], json!(server.url));

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "a stopped line after SIGTERM:\n{}",
        log.join("\n")
    );
}

#[test]
fn unreachable_postgres_is_one_error_line_without_the_password() {
    crate::helpers::run_test(unreachable_postgres_is_one_error_line_without_the_password_body());
}

async fn unreachable_postgres_is_one_error_line_without_the_password_body() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = run(coder_command(&[
        "server",
        "--http-address",
        "127.0.0.1:0",
        "--data-dir",
        path_str(dir.path()),
        "--postgres-url",
        "postgres://nobody:secretpw@127.0.0.1:1/x",
    ]))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let out = output_text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(!out.contains("secretpw"), "the password leaked: {out}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {out}");
    assert!(lines[0].starts_with("error:"), "{out}");
    assert!(
        lines[0].contains("PostgreSQL") && lines[0].contains("127.0.0.1:1/x"),
        "{out}"
    );
}

#[test]
fn unopenable_sqlite_is_one_error_line_naming_the_directory() {
    crate::helpers::run_test(unopenable_sqlite_is_one_error_line_naming_the_directory_body());
}

async fn unopenable_sqlite_is_one_error_line_naming_the_directory_body() {
    let dir = tempfile::tempdir().unwrap();
    // A data dir below a regular file cannot be created, even by root.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let data = file.join("data");
    let output = run(coder_command(&[
        "server",
        "--http-address",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data),
    ]))
    .await;
    let out = output_text(&output);
    assert!(!output.status.success(), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {out}");
    assert!(
        lines[0].starts_with("error:") && lines[0].contains(path_str(&file)),
        "{out}"
    );
}

async fn create_admin_user_then_sign_in(backend: Backend) {
    let db = TestDatabase::new(&backend).await;
    let db_args = database_args(&db);
    let with_db = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(db_args.iter().map(String::as_str));
        coder_command(&all)
    };

    let weak = run(with_db(&[
        "server",
        "create-admin-user",
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--password",
        "short",
    ]))
    .await;
    assert!(!weak.status.success(), "{}", output_text(&weak));
    assert!(
        output_text(&weak).contains("at least 8 characters"),
        "{}",
        output_text(&weak)
    );

    let created = run(with_db(&[
        "server",
        "create-admin-user",
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--password",
        PASSWORD,
    ]))
    .await;
    assert!(created.status.success(), "{}", output_text(&created));
    assert!(
        output_text(&created).contains("Created owner admin"),
        "{}",
        output_text(&created)
    );

    let again = run(with_db(&[
        "server",
        "create-admin-user",
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--password",
        PASSWORD,
    ]))
    .await;
    assert!(
        !again.status.success(),
        "a duplicate is refused: {}",
        output_text(&again)
    );
    assert!(
        output_text(&again).starts_with("error:"),
        "{}",
        output_text(&again)
    );

    // The password may come from the environment instead of a flag.
    let mut from_env = with_db(&[
        "server",
        "create-admin-user",
        "--email",
        "ops@example.com",
        "--username",
        "ops",
    ]);
    from_env.env("CODER_PASSWORD", "ops-password-123");
    let second = run(from_env).await;
    assert!(second.status.success(), "{}", output_text(&second));

    let mut serve_args = vec!["server", "--http-address", "127.0.0.1:0"];
    serve_args.extend(db_args.iter().map(String::as_str));
    if matches!(backend, Backend::Postgres(_)) {
        // --data-dir is still where local files go; keep it inside the test's temp dir.
        serve_args.extend(["--data-dir", path_str(db.dir.path())]);
    }
    let server = Server::start(coder_command(&serve_args)).await;
    let backend_name = if matches!(backend, Backend::Postgres(_)) {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(
        field(&server.start_line, "database"),
        backend_name,
        "{}",
        server.start_line
    );

    let token = session(&server.url, "admin@example.com", PASSWORD).await;
    let me = get_json(&server.url, "/api/v2/users/me", &token).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["roles"][0]["name"], "owner", "{me}");
    session(&server.url, "ops@example.com", "ops-password-123").await;
    assert_eq!(
        login(&server.url, "admin@example.com", "wrong-password-1")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

crate::both_backends!(create_admin_user_then_sign_in);

#[test]
fn create_admin_user_reads_the_password_from_stdin() {
    crate::helpers::run_test(create_admin_user_reads_the_password_from_stdin_body());
}

async fn create_admin_user_reads_the_password_from_stdin_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = coder_command(&[
        "server",
        "create-admin-user",
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--data-dir",
        path_str(dir.path()),
    ]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .unwrap();
    }
    let output = tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{}", output_text(&output));

    let server = Server::start(coder_command(&[
        "server",
        "--http-address",
        "127.0.0.1:0",
        "--data-dir",
        path_str(dir.path()),
    ]))
    .await;
    session(&server.url, "admin@example.com", PASSWORD).await;
    server.stop().await;
}

#[test]
fn flags_beat_env_beat_config_file() {
    crate::helpers::run_test(flags_beat_env_beat_config_file_body());
}

async fn flags_beat_env_beat_config_file_body() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let yaml = dir.path().join("coder.yaml");
    std::fs::write(
        &yaml,
        format!(
            "http_address: \"127.0.0.1:0\"\ndata_dir: {:?}\nexperiments: [oauth2]\n",
            path_str(&data)
        ),
    )
    .unwrap();
    let toml = dir.path().join("coder.toml");
    std::fs::write(
        &toml,
        format!(
            "http_address = \"127.0.0.1:0\"\ndata_dir = {:?}\nexperiments = [\"*\"]\n",
            path_str(&data)
        ),
    )
    .unwrap();

    // The file alone: its address, data dir and experiments are used.
    let server = Server::start(coder_command(&["server", "--config", path_str(&yaml)])).await;
    assert_eq!(
        field(&server.start_line, "experiments"),
        "oauth2",
        "{}",
        server.start_line
    );
    let db_file = data.join("coder.db");
    assert!(
        server
            .start_line
            .contains(&format!("database=sqlite {}", db_file.display()))
    );
    server.stop().await;

    // A TOML file named by CODER_CONFIG_PATH works the same way.
    let mut cmd = coder_command(&["server"]);
    cmd.env("CODER_CONFIG_PATH", &toml);
    let server = Server::start(cmd).await;
    assert_eq!(
        field(&server.start_line, "experiments"),
        "mcp-server-http,oauth2"
    );
    server.stop().await;

    // The environment beats the file.
    let mut cmd = coder_command(&["server", "--config", path_str(&yaml)]);
    cmd.env("CODER_EXPERIMENTS", "MCP-Server-HTTP");
    let server = Server::start(cmd).await;
    assert_eq!(field(&server.start_line, "experiments"), "mcp-server-http");
    server.stop().await;

    // The flag beats both; the API agrees with the log.
    let created = run(coder_command(&[
        "server",
        "create-admin-user",
        "--email",
        "admin@example.com",
        "--username",
        "admin",
        "--password",
        PASSWORD,
        "--config",
        path_str(&yaml),
    ]))
    .await;
    assert!(created.status.success(), "{}", output_text(&created));
    let mut cmd = coder_command(&[
        "server",
        "--config",
        path_str(&yaml),
        "--experiments",
        "oauth2,mcp-server-http",
    ]);
    cmd.env("CODER_EXPERIMENTS", "none-of-these");
    let server = Server::start(cmd).await;
    assert_eq!(
        field(&server.start_line, "experiments"),
        "mcp-server-http,oauth2"
    );
    let token = session(&server.url, "admin@example.com", PASSWORD).await;
    let enabled = get_json(&server.url, "/api/v2/experiments", &token).await;
    assert_eq!(enabled, json!(["mcp-server-http", "oauth2"]));
    server.stop().await;

    // A flag for one option leaves the file's other options in force.
    let mut cmd = coder_command(&["server", "--config", path_str(&yaml), "--experiments", ""]);
    cmd.env("CODER_EXPERIMENTS", "mcp-server-http");
    let server = Server::start(cmd).await;
    assert_eq!(field(&server.start_line, "experiments"), "none");
    assert!(
        server
            .start_line
            .contains(&format!("database=sqlite {}", db_file.display()))
    );
    server.stop().await;
}

/// The option names of `ServerOptions`. The exhaustive pattern in `every_key_is_set` stops
/// compiling when a field is added, so the examples cannot fall behind.
const KEYS: [&str; 45] = [
    "http_address",
    "access_url",
    "experiments",
    "oauth2_provider_enable",
    "oauth2_client_id_metadata_document_enable",
    "postgres_url",
    "data_dir",
    "log_format",
    "verbose",
    "session_duration",
    "default_token_lifetime",
    "max_token_lifetime",
    "login_rate_limit",
    "proxy_trusted_headers",
    "proxy_trusted_origins",
    "oauth2_access_token_lifetime",
    "oauth2_refresh_token_lifetime",
    "oauth2_rate_limit",
    "oauth2_client_rate_limit",
    "oauth2_dynamic_client_ttl",
    "mcp_allowed_origins",
    "mcp_max_concurrent_requests",
    "max_command_timeout",
    "allow_unsandboxed_workspaces",
    "derp_server_relay_url",
    "workspace_uid_range",
    "workspace_max_processes",
    "workspace_memory_limit",
    "workspace_cpu_limit",
    "workspace_max_file_size",
    "workspace_disk_size",
    "workspace_network",
    "docker_host",
    "agent_binary",
    "tls_enable",
    "tls_address",
    "tls_cert_file",
    "tls_key_file",
    "tls_min_version",
    "redirect_to_access_url",
    "strict_transport_security",
    "strict_transport_security_options",
    "prometheus_enable",
    "prometheus_address",
    "audit_logs_retention",
];

fn every_key_is_set(options: ServerOptions) -> bool {
    let ServerOptions {
        http_address,
        access_url,
        experiments,
        oauth2_provider_enable,
        oauth2_client_id_metadata_document_enable,
        postgres_url,
        data_dir,
        log_format,
        verbose,
        session_duration,
        default_token_lifetime,
        max_token_lifetime,
        login_rate_limit,
        proxy_trusted_headers,
        proxy_trusted_origins,
        oauth2_access_token_lifetime,
        oauth2_refresh_token_lifetime,
        oauth2_rate_limit,
        oauth2_client_rate_limit,
        oauth2_dynamic_client_ttl,
        mcp_allowed_origins,
        mcp_max_concurrent_requests,
        max_command_timeout,
        allow_unsandboxed_workspaces,
        derp_server_relay_url,
        workspace_uid_range,
        workspace_max_processes,
        workspace_memory_limit,
        workspace_cpu_limit,
        workspace_max_file_size,
        workspace_disk_size,
        workspace_network,
        docker_host,
        agent_binary,
        tls_enable,
        tls_address,
        tls_cert_file,
        tls_key_file,
        tls_min_version,
        redirect_to_access_url,
        strict_transport_security,
        strict_transport_security_options,
        prometheus_enable,
        prometheus_address,
        audit_logs_retention,
    } = options;
    http_address.is_some()
        && access_url.is_some()
        && experiments.is_some()
        && oauth2_provider_enable.is_some()
        && oauth2_client_id_metadata_document_enable.is_some()
        && postgres_url.is_some()
        && data_dir.is_some()
        && log_format.is_some()
        && verbose.is_some()
        && session_duration.is_some()
        && default_token_lifetime.is_some()
        && max_token_lifetime.is_some()
        && login_rate_limit.is_some()
        && proxy_trusted_headers.is_some()
        && proxy_trusted_origins.is_some()
        && oauth2_access_token_lifetime.is_some()
        && oauth2_refresh_token_lifetime.is_some()
        && oauth2_rate_limit.is_some()
        && oauth2_client_rate_limit.is_some()
        && oauth2_dynamic_client_ttl.is_some()
        && mcp_allowed_origins.is_some()
        && mcp_max_concurrent_requests.is_some()
        && max_command_timeout.is_some()
        && allow_unsandboxed_workspaces.is_some()
        && derp_server_relay_url.is_some()
        && workspace_uid_range.is_some()
        && workspace_max_processes.is_some()
        && workspace_memory_limit.is_some()
        && workspace_cpu_limit.is_some()
        && workspace_max_file_size.is_some()
        && workspace_disk_size.is_some()
        && workspace_network.is_some()
        && docker_host.is_some()
        && agent_binary.is_some()
        && tls_enable.is_some()
        && tls_address.is_some()
        && tls_cert_file.is_some()
        && tls_key_file.is_some()
        && tls_min_version.is_some()
        && redirect_to_access_url.is_some()
        && strict_transport_security.is_some()
        && strict_transport_security_options.is_some()
        && prometheus_enable.is_some()
        && prometheus_address.is_some()
        && audit_logs_retention.is_some()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn example_configs_load_and_change_nothing() {
    let defaults = format!(
        "{:?}",
        ServerConfig::from_options(ServerOptions::default(), None).unwrap()
    );
    for name in ["coder.example.yaml", "coder.example.toml"] {
        let path = example(name);
        let mut loaded = ServerConfig::from_options(ServerOptions::default(), Some(&path))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        // Where the file was read from is remembered (to hide it from workspaces), not a setting.
        loaded.config_file = None;
        assert_eq!(
            format!("{loaded:?}"),
            defaults,
            "{name} must only restate the defaults"
        );
    }
}

#[test]
fn example_configs_name_every_key() {
    let dir = tempfile::tempdir().unwrap();
    for (name, separator) in [("coder.example.yaml", ":"), ("coder.example.toml", " =")] {
        // Uncomment the "# key: value" lines; then every option must be present and valid.
        let original = std::fs::read_to_string(example(name)).unwrap();
        let uncommented: String = original
            .lines()
            .map(|line| {
                let bare = line.strip_prefix("# ").unwrap_or(line);
                if KEYS
                    .iter()
                    .any(|key| bare.starts_with(&format!("{key}{separator}")))
                {
                    bare.to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        for key in KEYS {
            assert_eq!(
                uncommented.matches(&format!("\n{key}{separator}")).count(),
                1,
                "{name} sets {key} exactly once"
            );
        }
        let path = dir.path().join(name);
        std::fs::write(&path, uncommented).unwrap();
        let options = ServerOptions::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(every_key_is_set(options), "{name} names every option");
        ServerConfig::from_options(ServerOptions::default(), Some(&path))
            .unwrap_or_else(|e| panic!("{name} with every key set: {e:#}"));
    }
}

/// A client for a spawned server, signed in as its owner.
struct Owner {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Owner {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("Coder-Session-Token", &self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, json_body(res).await)
    }

    /// Polls `path` until `done` holds, for at most a minute.
    async fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let (_, body) = self.send(reqwest::Method::GET, path, None).await;
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting on {path}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The owner of a fresh server, with a running workspace `w` of the template in `tar`.
async fn owner_with_a_workspace(url: &str, tar: Vec<u8>) -> (Owner, Value) {
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{url}/api/v2/users/first"))
        .json(&json!({"email": "owner@example.com", "username": "owner", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let owner = Owner {
        url: url.to_owned(),
        token: session(url, "owner@example.com", PASSWORD).await,
        http,
    };
    let uploaded = owner
        .http
        .post(format!("{url}/api/v2/files"))
        .header("Coder-Session-Token", &owner.token)
        .header("Content-Type", "application/x-tar")
        .body(tar)
        .send()
        .await
        .unwrap();
    let file = json_body(uploaded).await["hash"].clone();
    let (_, version) = owner
        .send(
            reqwest::Method::POST,
            "/api/v2/organizations/coder/templateversions",
            Some(json!({"file_id": file})),
        )
        .await;
    let version_path = format!(
        "/api/v2/templateversions/{}",
        version["id"].as_str().unwrap()
    );
    owner
        .poll(&version_path, |v| v["job"]["status"] == "succeeded")
        .await;
    let (_, template) = owner
        .send(
            reqwest::Method::POST,
            "/api/v2/organizations/coder/templates",
            Some(json!({"name": "t", "template_version_id": version["id"]})),
        )
        .await;
    let (status, ws) = owner
        .send(
            reqwest::Method::POST,
            "/api/v2/users/me/workspaces",
            Some(json!({"name": "w", "template_id": template["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let path = format!("/api/v2/workspaces/{}", ws["id"].as_str().unwrap());
    let ws = owner
        .poll(&path, |w| w["latest_build"]["status"] == "running")
        .await;
    (owner, ws)
}

/// kill -9 of the server leaves its workspaces running: a background process goes on writing
/// while no server runs, and after a new server starts on the same data its agent reconnects,
/// the process is still running with all its output, and the files are intact.
async fn workspaces_outlive_a_killed_server(backend: Backend) {
    let db = TestDatabase::new(&backend).await;
    let data = tempfile::tempdir().unwrap();
    let mut args = vec![
        "server".to_owned(),
        "--http-address".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        path_str(data.path()).to_owned(),
    ];
    if let coderd::store::DatabaseTarget::Postgres(url) = &db.target {
        args.extend(["--postgres-url".to_owned(), url.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(coder_command(&args)).await;
    let tar = crate::workspace_support::tar_of(&[(
        "coder.yaml",
        "agent:\n  startup_script: echo ready\n",
    )]);
    let (owner, ws) = owner_with_a_workspace(&server.url, tar).await;
    let agent = ws["latest_build"]["resources"][0]["agents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/api/v2/workspaceagents/{agent}");
    let (status, _) = owner
        .send(
            reqwest::Method::POST,
            &format!("{base}/write-file"),
            Some(json!({"path": "notes.txt", "content": "kept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, started) = owner
        .send(
            reqwest::Method::POST,
            &format!("{base}/execute"),
            Some(json!({"command": "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.1; done", "background": true})),
        )
        .await;
    let process = started["process_id"]
        .as_str()
        .expect("process id")
        .to_owned();

    server.child.kill().await.expect("kill -9");
    // With no server at all, the workspace goes on: its process keeps writing output.
    let tmp = data
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap())
        .join("tmp");
    let output_size = || {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("coder-process-")
            })
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    };
    let before = output_size();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        output_size() > before,
        "the workspace's process stopped with the server"
    );

    let restarted = Server::start(coder_command(&args)).await;
    let owner = Owner {
        url: restarted.url.clone(),
        ..owner
    };
    let reconnecting = Instant::now();
    let out = owner
        .poll(&format!("{base}/read-file?path=notes.txt"), |f| {
            f["content"] == "kept"
        })
        .await;
    assert_eq!(out["content"], "kept");
    assert!(
        reconnecting.elapsed() < Duration::from_secs(15),
        "the agent took {:?} to reconnect",
        reconnecting.elapsed()
    );
    let (_, listed) = owner
        .send(reqwest::Method::GET, &format!("{base}/processes"), None)
        .await;
    assert_eq!(listed[0]["id"], process.as_str(), "{listed}");
    assert_eq!(listed[0]["running"], true, "{listed}");
    let (_, out) = owner
        .send(
            reqwest::Method::GET,
            &format!("{base}/processes/{process}/output?limit=1048576"),
            None,
        )
        .await;
    let text = out["output"].as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 10, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("line {}", i + 1), "output lost or reordered");
    }
    let ws = owner
        .poll(
            &format!("/api/v2/workspaces/{}", ws["id"].as_str().unwrap()),
            |w| w["latest_build"]["resources"][0]["agents"][0]["status"] == "connected",
        )
        .await;
    assert_eq!(ws["latest_build"]["status"], "running");
    restarted.stop().await;
    coderd::provisioner::local::kill_all_sandboxes(data.path());
}

crate::both_backends!(workspaces_outlive_a_killed_server);

/// kill -9 of the server leaves a container workspace running; its agent reconnects to the
/// next server, and nothing is orphaned or duplicated.
async fn container_workspaces_outlive_a_killed_server(backend: Backend) {
    let docker = bollard::Docker::connect_with_local_defaults().expect("a Docker engine");
    docker
        .ping()
        .await
        .expect("the Docker engine answers (run .ci/test-setup)");
    let db = TestDatabase::new(&backend).await;
    let data = tempfile::tempdir().unwrap();
    let mut args = vec![
        "server".to_owned(),
        "--http-address".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        path_str(data.path()).to_owned(),
    ];
    if let coderd::store::DatabaseTarget::Postgres(url) = &db.target {
        args.extend(["--postgres-url".to_owned(), url.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(coder_command(&args)).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates/docker");
    let (owner, ws) =
        owner_with_a_workspace(&server.url, crate::templates::tar_dir(&example)).await;
    let agent = ws["latest_build"]["resources"][0]["agents"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/api/v2/workspaceagents/{agent}");
    let (_, started) = owner
        .send(
            reqwest::Method::POST,
            &format!("{base}/execute"),
            Some(json!({"command": "echo started > ~/alive; sleep 600", "background": true})),
        )
        .await;
    let process = started["process_id"]
        .as_str()
        .expect("process id")
        .to_owned();
    let name = format!("coder-{}", ws["id"].as_str().unwrap());
    let id_before = match docker.inspect_container(&name, None).await {
        Ok(c) => c.id,
        Err(e) => {
            let (_, logs) = owner
                .send(
                    reqwest::Method::GET,
                    &format!(
                        "/api/v2/workspacebuilds/{}/logs",
                        ws["latest_build"]["id"].as_str().unwrap()
                    ),
                    None,
                )
                .await;
            panic!("no container {name} ({e}); build logs: {logs}");
        }
    };

    server.child.kill().await.expect("kill -9");
    let running = docker.inspect_container(&name, None).await.unwrap();
    assert_eq!(
        running.state.and_then(|s| s.running),
        Some(true),
        "the container died with the server"
    );

    let restarted = Server::start(coder_command(&args)).await;
    let owner = Owner {
        url: restarted.url.clone(),
        ..owner
    };
    let out = owner
        .poll(&format!("{base}/read-file?path=alive"), |f| {
            f["content"] == "started\n"
        })
        .await;
    assert_eq!(out["content"], "started\n");
    let (_, listed) = owner
        .send(reqwest::Method::GET, &format!("{base}/processes"), None)
        .await;
    assert_eq!(listed[0]["id"], process.as_str());
    assert_eq!(listed[0]["running"], true, "{listed}");
    // The same container, and only it.
    assert_eq!(
        docker.inspect_container(&name, None).await.unwrap().id,
        id_before
    );
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("coder.workspace_id={}", ws["id"].as_str().unwrap())],
    )]);
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");

    let (status, deleting) = owner
        .send(
            reqwest::Method::POST,
            &format!("/api/v2/workspaces/{}/builds", ws["id"].as_str().unwrap()),
            Some(json!({"transition": "delete"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    owner
        .poll(
            &format!(
                "/api/v2/workspacebuilds/{}",
                deleting["id"].as_str().unwrap()
            ),
            |b| b["status"] == "deleted",
        )
        .await;
    assert!(docker.inspect_container(&name, None).await.is_err());
    restarted.stop().await;
}

crate::both_backends!(container_workspaces_outlive_a_killed_server);

/// `coder server` under `prlimit --nofile=SOFT:HARD`, with `coder_command`'s environment.
fn server_with_open_file_limit(soft: u64, hard: u64, data: &Path) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(crate::cli_support::CODER_BIN)
        .args([
            "server",
            "--http-address",
            "127.0.0.1:0",
            "--data-dir",
            path_str(data),
        ]);
    crate::cli_support::hermetic(&mut cmd);
    cmd
}

/// The soft "Max open files" of a running process.
fn open_file_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// The server raises its soft open-file limit to the hard one at start (a thousand MCP
/// clients need more than the usual 1024), and names the limit with what to do when the hard
/// limit itself is too low. (Hard limits stay at or below the test's own: CI's root may lack
/// CAP_SYS_RESOURCE to raise one.)
#[test]
fn the_server_raises_its_open_file_limit_and_warns_when_it_cannot() {
    crate::helpers::run_test(the_server_raises_its_open_file_limit_and_warns_when_it_cannot_body());
}

async fn the_server_raises_its_open_file_limit_and_warns_when_it_cannot_body() {
    let dir = tempfile::tempdir().unwrap();
    let roomy = Server::start(server_with_open_file_limit(
        1024,
        16384,
        &dir.path().join("roomy"),
    ))
    .await;
    assert_eq!(open_file_soft_limit(roomy.child.id().unwrap()), 16384);
    let (status, log) = roomy.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    assert!(
        !log.iter().any(|l| l.contains("open file limit")),
        "no warning with room:\n{}",
        log.join("\n")
    );

    let cramped = Server::start(server_with_open_file_limit(
        256,
        4096,
        &dir.path().join("cramped"),
    ))
    .await;
    assert_eq!(open_file_soft_limit(cramped.child.id().unwrap()), 4096);
    let (status, log) = cramped.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    let warning = log
        .iter()
        .find(|l| l.contains("WARN") && l.contains("open file limit is low"))
        .unwrap_or_else(|| panic!("a warning naming the limit:\n{}", log.join("\n")));
    assert!(
        warning.contains("open_file_limit=4096") && warning.contains("LimitNOFILE"),
        "{warning}"
    );
}

/// Coder graduated its OAuth2 provider from the `oauth2` experiment to
/// `--oauth2-provider-enable` / `CODER_OAUTH2_PROVIDER_ENABLE`: either turns the authorization
/// server on, and without both it is a missing route.
#[test]
fn oauth2_provider_enable_turns_the_authorization_server_on() {
    crate::helpers::run_test(oauth2_provider_enable_turns_the_authorization_server_on_body());
}

async fn oauth2_provider_enable_turns_the_authorization_server_on_body() {
    let dir = tempfile::tempdir().unwrap();
    let data = path_str(&dir.path().join("data")).to_owned();
    let base = [
        "server",
        "--http-address",
        "127.0.0.1:0",
        "--data-dir",
        &data,
    ];
    let http = reqwest::Client::new();
    let probe = |url: String| {
        let http = http.clone();
        async move {
            let metadata = http
                .get(format!("{url}/.well-known/oauth-authorization-server"))
                .send()
                .await
                .unwrap();
            let status = metadata.status();
            let body: Value = metadata.json().await.unwrap_or(Value::Null);
            let mcp = http
                .post(format!("{url}/api/experimental/mcp/http"))
                .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
                .send()
                .await
                .unwrap();
            let challenge = mcp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, body, challenge)
        }
    };

    let mut off = coder_command(&base);
    off.env("CODER_EXPERIMENTS", "mcp-server-http");
    let server = Server::start(off).await;
    let (status, _, challenge) = probe(server.url.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    server.stop().await;

    let mut by_env = coder_command(&base);
    by_env
        .env("CODER_OAUTH2_PROVIDER_ENABLE", "true")
        .env("CODER_EXPERIMENTS", "mcp-server-http");
    let server = Server::start(by_env).await;
    let (status, body, challenge) = probe(server.url.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], server.url.as_str());
    assert_eq!(body["client_id_metadata_document_supported"], true);
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    server.stop().await;

    let mut args = base.to_vec();
    args.extend([
        "--oauth2-provider-enable",
        "--experiments",
        "mcp-server-http",
    ]);
    let server = Server::start(coder_command(&args)).await;
    let (status, _, _) = probe(server.url.clone()).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;

    // The fetcher's test-only trust has no flag, variable or config key.
    let defaults = ServerConfig::from_options(ServerOptions::default(), None).unwrap();
    assert!(defaults.oauth2.cimd_test_trust.is_none());
    assert!(defaults.oauth2.client_id_metadata_documents);
    let file = dir.path().join("trust.yaml");
    std::fs::write(&file, "cimd_test_trust: {allow_loopback: true}\n").unwrap();
    assert!(ServerConfig::from_options(ServerOptions::default(), Some(&file)).is_err());

    // The experiment alone still works, and the CIMD flag turns the documents off.
    let mut args = base.to_vec();
    args.extend([
        "--experiments",
        "oauth2,mcp-server-http",
        "--oauth2-client-id-metadata-document-enable=false",
    ]);
    let server = Server::start(coder_command(&args)).await;
    let (status, body, _) = probe(server.url.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.get("client_id_metadata_document_supported").is_none(),
        "{body}"
    );
    server.stop().await;
}
