//! `TestApp`: the real server on port 0 with a fresh database (SQLite file, or a Postgres schema),
//! a manual clock, and request helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use coderd::app::App;
use coderd::clock::ManualClock;
use coderd::config::ServerConfig;
use coderd::domain::{Experiment, Experiments};
use coderd::store::DatabaseTarget;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;

pub const POSTGRES_ENV: &str = "CODER_TEST_POSTGRES_URL";

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The Postgres backend at `CODER_TEST_POSTGRES_URL`. A Postgres test runs only when asked
    /// for (it is `#[ignore]`d by default), so a missing URL fails it instead of letting it pass
    /// without testing anything.
    pub fn postgres() -> Backend {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.trim().is_empty() => Backend::Postgres(url),
            _ => panic!(
                "{POSTGRES_ENV} is not set: point it at an empty PostgreSQL database \
                 (e.g. postgres://postgres@127.0.0.1:5432/test) to run the Postgres tests"
            ),
        }
    }
}

/// Runs each named `async fn(Backend)` as a `sqlite` test and a `postgres` test. Every Postgres
/// test is `#[ignore]`d, so a plain `cargo test` counts it as ignored rather than as passed when
/// it cannot run; `cargo test -- --include-ignored` runs it (CI does, with the URL set).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    $crate::helpers::run_test(super::$name($crate::helpers::Backend::Sqlite));
                }

                #[test]
                #[ignore = "needs CODER_TEST_POSTGRES_URL; run with `cargo test -- --include-ignored`"]
                fn postgres() {
                    $crate::helpers::run_test(super::$name($crate::helpers::Backend::postgres()));
                }
            }
        )*
    };
}

thread_local! {
    /// The data directories of the apps this test thread spawned, for [`run_test`]'s sweep.
    static DATA_DIRS: std::cell::RefCell<Vec<std::path::PathBuf>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Runs a test on a runtime of its own (as `#[tokio::test]` does), then ends every workspace
/// sandbox its apps left running. `TestApp`'s drop sweeps the sandboxes it knows of, but a
/// build job still running on the test's runtime can start one after that sweep; once the
/// runtime is gone, nothing can, so this sweep runs last, also when the test panicked.
pub fn run_test(body: impl std::future::Future<Output = ()>) {
    run_on(tokio::runtime::Builder::new_current_thread(), body);
}

/// [`run_test`] on a multi-threaded runtime of `workers` threads, for tests of concurrency.
pub fn run_multi_thread_test(workers: usize, body: impl std::future::Future<Output = ()>) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers);
    run_on(builder, body);
}

fn run_on(mut builder: tokio::runtime::Builder, body: impl std::future::Future<Output = ()>) {
    // Dropped after the runtime, also when the test panics.
    let _sweep = SweepLast;
    let runtime = builder.enable_all().build().expect("a test runtime");
    // `block_on` drives `body` on this thread, so the apps it spawns register here.
    runtime.block_on(body);
}

/// Ends the sandboxes of every app this thread spawned; see [`run_test`].
struct SweepLast;

impl Drop for SweepLast {
    fn drop(&mut self) {
        for dir in DATA_DIRS.with_borrow_mut(std::mem::take) {
            // Every sandbox's command line names its directory under the app's data dir.
            let pattern = format!("{}/workspaces/", dir.display());
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-f", "--", &pattern])
                .status();
        }
    }
}

/// A fresh database for one test: a SQLite file in a temp dir, or a new Postgres schema that is
/// dropped when the test ends.
pub struct TestDatabase {
    pub target: DatabaseTarget,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDatabase {
    /// Another handle on an existing database; the owner of the original cleans it up.
    pub fn shared(target: DatabaseTarget) -> TestDatabase {
        TestDatabase {
            target,
            dir: tempfile::tempdir().expect("temp dir"),
            pg: None,
        }
    }

    pub async fn new(backend: &Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDatabase {
                target: DatabaseTarget::Sqlite(dir.path().join("coder.db")),
                dir,
                pg: None,
            },
            Backend::Postgres(base) => {
                let schema = format!("coderd_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(base).await.unwrap_or_else(|e| {
                    panic!("{POSTGRES_ENV} is set but Postgres is unreachable: {e}")
                });
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                // The schema's name as the connections' application_name, so that dropping
                // the schema can end them first (see Drop).
                let url = format!(
                    "{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                TestDatabase {
                    target: DatabaseTarget::Postgres(url),
                    dir,
                    pg: Some((base.clone(), schema)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base, schema)) = self.pg.take() else {
            return;
        };
        // Drop from a thread of its own: the test's runtime may be the one being dropped.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    // The app's connections outlive it here: its runtime is the test's, which
                    // is blocked in this drop, so a transaction it left open (a build cut off
                    // mid-way) would hold its locks and DROP SCHEMA would wait forever.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .execute(&mut conn)
                    .await;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    /// The access URL, without a trailing slash.
    pub url: String,
    /// Where the server listens; differs from `url` when a test sets an access URL.
    pub addr: std::net::SocketAddr,
    /// Where HTTPS and the Prometheus metrics are served, when enabled.
    pub tls_addr: Option<std::net::SocketAddr>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub backend: Backend,
    /// The running app's state, for checks that have no HTTP surface yet (token verification).
    pub state: coderd::web::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the server has been told to stop.
    pub db: TestDatabase,
}

pub const PASSWORD: &str = "correct-horse-battery";

impl TestApp {
    /// The app with every experiment enabled.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |c| {
            c.experiments = Experiments::of(&Experiment::ALL);
        })
        .await
    }

    /// The app with a configuration adjusted by `configure`.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let db = TestDatabase::new(&backend).await;
        Self::spawn_on(backend, db, configure).await
    }

    /// A second server on this app's database, as another replica behind a load balancer.
    pub async fn spawn_replica(&self) -> TestApp {
        let db = TestDatabase::shared(self.db.target.clone());
        // Replicas behind one load balancer share the public URL, hence the OAuth issuer.
        let access_url = coderd::config::parse_access_url(&self.url).expect("access URL");
        let mut replica = Self::spawn_on(self.backend.clone(), db, move |c| {
            c.experiments = Experiments::of(&Experiment::ALL);
            c.access_url = Some(access_url);
        })
        .await;
        // Its requests go to this replica itself, as a load balancer sends some of them.
        replica.url = format!("http://{}", replica.addr);
        replica
    }

    /// Simulates a crash and a restart: the server task is aborted without a graceful shutdown,
    /// then a new server starts on the same database and data directory.
    pub async fn crash_and_restart(mut self) -> TestApp {
        if let Some(handle) = self.server.take() {
            handle.abort();
            let _ = handle.await;
        }
        self.start_again().await
    }

    /// Stops the server gracefully, then starts a new one on the same database and data
    /// directory.
    pub async fn restart(mut self) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle
                .await
                .expect("server task")
                .expect("graceful shutdown");
        }
        self.start_again().await
    }

    /// Stops the server gracefully and keeps its database and data directory, for
    /// `start_again`: what a workspace agent sees while its server is down.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle
                .await
                .expect("server task")
                .expect("graceful shutdown");
        }
    }

    /// A new server on this (stopped) app's database and data directory.
    pub async fn start_again(mut self) -> TestApp {
        let placeholder = TestDatabase::shared(self.db.target.clone());
        let db = std::mem::replace(&mut self.db, placeholder);
        let backend = self.backend.clone();
        drop(self);
        Self::spawn_on(backend, db, |c| {
            c.experiments = Experiments::of(&Experiment::ALL);
        })
        .await
    }

    /// The app on an existing database, such as one a store fixture filled.
    pub async fn spawn_on(
        backend: Backend,
        db: TestDatabase,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let mut config = ServerConfig::for_data_dir(db.dir.path().to_path_buf());
        config.database = db.target.clone();
        // The test binary is not `coder`; agents run from the real one.
        config.workspaces.agent_binary = Some(env!("CARGO_BIN_EXE_coder").into());
        configure(&mut config);
        // Where its sandboxes will live, for run_test's last sweep (a test may move it).
        let data_dir = config.data_dir.clone();
        DATA_DIRS.with_borrow_mut(|dirs| dirs.push(data_dir));
        let clock = ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
                .single()
                .expect("time"),
        );
        let app = App::build_with_clock(config, Arc::new(clock.clone()))
            .await
            .expect("app builds");
        let url = app.access_url().as_str().trim_end_matches('/').to_owned();
        let addr = app.local_addr().expect("bound address");
        let (tls_addr, metrics_addr) = (app.tls_local_addr().ok(), app.metrics_local_addr().ok());
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            url,
            addr,
            tls_addr,
            metrics_addr,
            client,
            clock,
            backend,
            state,
            shutdown: Some(tx),
            server: Some(server),
            db,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.header("Coder-Session-Token", token);
        }
        req
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("request")
    }

    /// The audit log, newest first, once everything recorded so far has been written.
    /// Runs SQL (one or more statements) on the app's database behind its back: what no API
    /// does yet (suspending or renaming a user, renaming a template) or a fault (a table gone).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        match &self.db.target {
            coderd::store::DatabaseTarget::Sqlite(path) => {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .expect("sqlite");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("sql");
            }
            coderd::store::DatabaseTarget::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("sql");
            }
        }
    }

    pub async fn audit_logs(&self) -> Vec<coderd::domain::AuditEntry> {
        self.state.audit.flush().await;
        self.state
            .services
            .store()
            .list_audit_logs(10_000)
            .await
            .expect("audit logs")
    }

    /// Creates the first user (the owner) and returns a session token for it.
    pub async fn create_owner(&self) -> String {
        let created = self
            .post_json(
                "/api/v2/users/first",
                None,
                &json!({"email": "owner@example.com", "username": "owner", "password": PASSWORD}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        self.login("owner@example.com", PASSWORD).await
    }

    /// Creates a member through the owner and returns a session token for it.
    pub async fn create_member(&self, owner_token: &str, username: &str) -> String {
        let email = format!("{username}@example.com");
        let created = self
            .post_json(
                "/api/v2/users",
                Some(owner_token),
                &json!({"email": email, "username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            created.status(),
            StatusCode::CREATED,
            "{}",
            created.text().await.unwrap_or_default()
        );
        self.login(&email, PASSWORD).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post_json(
                "/api/v2/users/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("json");
        body["session_token"]
            .as_str()
            .expect("session_token")
            .to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.server.take() {
            handle.abort();
        }
        // Workspaces outlive their server by design; a test's must not outlive the test.
        coderd::provisioner::local::kill_all_sandboxes(self.db.dir.path());
        remove_containers_of(self.db.dir.path());
    }
}

/// Removes the containers and volumes the app of `data_dir` made on the local Docker engine
/// (a failed test may leave them), from a thread of its own: the test's runtime may be the one
/// being dropped.
fn remove_containers_of(data_dir: &std::path::Path) {
    let Ok(id) = std::fs::read_to_string(data_dir.join("provisioner-id")) else {
        return;
    };
    let label = format!("coder.provisioner_id={}", id.trim());
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(docker) = bollard::Docker::connect_with_local_defaults() else {
                return;
            };
            let filters = std::collections::HashMap::from([("label".to_owned(), vec![label])]);
            let containers = docker
                .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                    all: true,
                    filters: Some(filters.clone()),
                    ..Default::default()
                }))
                .await
                .unwrap_or_default();
            for c in containers {
                if let Some(id) = c.id {
                    let _ = docker
                        .remove_container(
                            &id,
                            Some(bollard::query_parameters::RemoveContainerOptions {
                                force: true,
                                ..Default::default()
                            }),
                        )
                        .await;
                }
            }
            let volumes = docker
                .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                    filters: Some(filters),
                }))
                .await
                .map(|v| v.volumes.unwrap_or_default())
                .unwrap_or_default();
            for v in volumes {
                let _ = docker
                    .remove_volume(
                        &v.name,
                        None::<bollard::query_parameters::RemoveVolumeOptions>,
                    )
                    .await;
            }
        });
    })
    .join();
}

/// Reads a JSON body, failing the test with the raw text when it is not JSON.
pub async fn json_body(res: Response) -> Value {
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `Set-Cookie` header values of a response.
pub fn set_cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The `Set-Cookie` value that sets `name`, if the response sets it.
pub fn set_cookie_named(res: &Response, name: &str) -> Option<String> {
    set_cookies(res).into_iter().find(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .is_some_and(|(k, _)| k.trim() == name)
    })
}

/// The value a `Set-Cookie` line assigns.
pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// The attributes of a `Set-Cookie` line, lower-cased, without the name=value pair.
pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// The `field` names of a Coder error body's validations; each must say what is wrong.
pub fn validation_fields(body: &Value) -> Vec<String> {
    body["validations"]
        .as_array()
        .unwrap_or_else(|| panic!("no validations in {body}"))
        .iter()
        .map(|v| {
            assert!(
                v["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "empty detail in {v}"
            );
            v["field"].as_str().expect("field").to_owned()
        })
        .collect()
}

/// Where a redirect points.
pub fn location(res: &Response) -> &str {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", res.status()))
        .to_str()
        .expect("an ASCII Location")
}

/// What every answer of the pages carries, redirects and errors included: it may not be framed.
pub fn assert_page_headers(res: &Response) {
    assert_eq!(
        res.headers()
            .get("x-frame-options")
            .map(|v| v.to_str().expect("ASCII")),
        Some("DENY"),
        "{}",
        res.url()
    );
}

/// A rendered page: unframeable by header and by its Content-Security-Policy, and HTML.
pub fn assert_html_page(res: &Response) {
    assert_page_headers(res);
    let headers = res.headers();
    let csp = headers
        .get("content-security-policy")
        .expect("CSP")
        .to_str()
        .expect("ASCII");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/html")),
        "{headers:?}"
    );
}

/// The parameters of an RFC 6750 `Bearer` challenge in `WWW-Authenticate`; a parameter given
/// twice fails the test.
pub fn bearer_challenge(headers: &reqwest::header::HeaderMap) -> BTreeMap<String, String> {
    let value = headers
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .expect("ASCII");
    let rest = value.strip_prefix("Bearer ").expect("the Bearer scheme");
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let (val, after) = after.split_once('"').expect("closing quote");
        assert!(
            params
                .insert(key.trim().to_owned(), val.to_owned())
                .is_none(),
            "duplicate {key} in {value}"
        );
        rest = after.trim_start_matches(',').trim();
    }
    params
}

/// A 401 whose Bearer challenge says `invalid_token` in realm `coder` (RFC 6750 §3.1): the raw
/// challenge, its parameters and the body.
pub async fn assert_invalid_token(res: Response) -> (String, BTreeMap<String, String>, Value) {
    let status = res.status();
    let headers = res.headers().clone();
    let body = json_body(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let raw = headers["www-authenticate"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let params = bearer_challenge(&headers);
    assert_eq!(params["realm"], "coder", "{raw}");
    assert_eq!(params["error"], "invalid_token", "{raw}");
    (raw, params, body)
}
