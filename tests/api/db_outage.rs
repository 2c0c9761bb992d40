//! PostgreSQL going away under traffic, as in a restart: the server reaches the database through
//! a TCP proxy the test controls, which drops every connection and refuses new ones for a
//! while. Meanwhile every answer is a fast 503 with `Retry-After` (never a hang or a 500), an
//! MCP client with a verified access token can still list its tools, and once the database is
//! back everything works again with nothing lost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coderd::store::DatabaseTarget;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::helpers::{Backend, TestApp, TestDatabase, json_body};
use crate::mcp_support::rpc;
use crate::oauth_client::MCP_PATH;
use crate::workspace_support::{create_template, create_workspace};

/// How long the database stays away.
const OUTAGE: Duration = Duration::from_secs(3);
/// The slowest answer allowed while it is away.
const FAST: Duration = Duration::from_secs(1);
/// A little longer than the MCP endpoint keeps the user of a verified token (10 s).
const USER_CACHE_TTL: Duration = Duration::from_secs(11);

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL that the test can cut.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    /// True once a cut has closed every connection and the listener.
    down: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cuts) = watch::channel(false);
        let (went_down, down) = watch::channel(false);
        let task = tokio::spawn(serve(listener, addr, upstream, cuts, went_down));
        Proxy {
            addr,
            cut,
            down,
            task,
        }
    }

    /// Drops every connection and refuses new ones, as a stopped PostgreSQL does; returns once
    /// they are closed, so that no request sent afterwards still reaches the database.
    async fn cut(&self) {
        self.cut.send_replace(true);
        let mut down = self.down.clone();
        down.wait_for(|down| *down).await.unwrap();
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut cuts: watch::Receiver<bool>,
    went_down: watch::Sender<bool>,
) {
    loop {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    connections.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
                _ = cuts.wait_for(|cut| *cut) => break,
            }
        }
        // Closing the listener makes new connections fail with "connection refused"; aborting
        // the forwarders closes every open one.
        drop(listener);
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        went_down.send_replace(true);
        if cuts.wait_for(|cut| !*cut).await.is_err() {
            return;
        }
        went_down.send_replace(false);
        listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
    }
}

/// What a request during the outage may answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 503 with `Retry-After`.
    Unavailable,
    /// Needs no database: still served.
    Served,
}

#[test]
#[ignore = "needs CODER_TEST_POSTGRES_URL; run with `cargo test -- --include-ignored`"]
fn a_database_outage_answers_fast_503s_and_loses_nothing() {
    crate::helpers::run_multi_thread_test(
        4,
        a_database_outage_answers_fast_503s_and_loses_nothing_body(),
    );
}

async fn a_database_outage_answers_fast_503s_and_loses_nothing_body() {
    let backend = Backend::postgres();
    let Backend::Postgres(base) = &backend else {
        unreachable!()
    };
    let base_url = url::Url::parse(base).unwrap();
    let upstream: SocketAddr = tokio::net::lookup_host((
        base_url.host_str().unwrap(),
        base_url.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = Proxy::start(upstream).await;
    let mut db = TestDatabase::new(&backend).await;
    let DatabaseTarget::Postgres(direct) = &db.target else {
        unreachable!()
    };
    let mut proxied = url::Url::parse(direct).unwrap();
    proxied.set_ip_host(proxy.addr.ip()).unwrap();
    proxied.set_port(Some(proxy.addr.port())).unwrap();
    db.target = DatabaseTarget::Postgres(proxied.to_string());
    let app = TestApp::spawn_on(backend.clone(), db, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.prometheus_address = Some("127.0.0.1:0".into());
    })
    .await;
    let metrics_url = format!("http://{}/metrics", app.metrics_addr.unwrap());

    // Before the outage: a user with a session and an API token, an OAuth grant, a workspace.
    let owner = app.create_owner().await;
    let api_token = json_body(
        app.post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&owner),
            &json!({"token_name": "before", "lifetime": 0}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let template = create_template(
        &app,
        &owner,
        "t",
        "agent:\n  startup_script: echo started\n",
        &[],
    )
    .await;
    let ws = create_workspace(&app, &owner, "before", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    let (status, _) = rpc(&app, &access, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    proxy.cut().await;
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..6 {
        let (http, base) = (app.client.clone(), app.url.clone());
        let (owner, access, refresh, client) = (
            owner.clone(),
            access.clone(),
            refresh.clone(),
            client.clone(),
        );
        let template_id = template["id"].clone();
        callers.spawn(async move {
            let mut answers = Vec::new();
            let mut round = 0;
            while started.elapsed() < OUTAGE {
                let (name, request, expect) = match (caller + round) % 8 {
                    7 => (
                        "authorize page",
                        http.get(format!("{base}/oauth2/authorize"))
                            .query(&[
                                ("response_type", "code"),
                                ("client_id", client.id.as_str()),
                                ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
                                ("code_challenge_method", "S256"),
                            ])
                            .header("Cookie", format!("coder_session_token={owner}")),
                        Expect::Unavailable,
                    ),
                    0 => ("healthz", http.get(format!("{base}/healthz")), Expect::Unavailable),
                    1 => (
                        "users/me",
                        http.get(format!("{base}/api/v2/users/me"))
                            .header("Coder-Session-Token", &owner),
                        Expect::Unavailable,
                    ),
                    2 => (
                        "create workspace",
                        http.post(format!("{base}/api/v2/users/me/workspaces"))
                            .header("Coder-Session-Token", &owner)
                            .json(&json!({"name": format!("during-{caller}-{round}"), "template_id": template_id})),
                        Expect::Unavailable,
                    ),
                    3 => (
                        "refresh",
                        http.post(format!("{base}/oauth2/tokens")).form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh.as_str()),
                            ("client_id", client.id.as_str()),
                            ("client_secret", client.secret.as_deref().unwrap_or_default()),
                        ]),
                        Expect::Unavailable,
                    ),
                    4 => (
                        "tools/call",
                        mcp(&http, &base, &access, "tools/call", json!({"name": "coder_list_workspaces", "arguments": {}})),
                        Expect::Unavailable,
                    ),
                    5 => (
                        "tools/list",
                        mcp(&http, &base, &access, "tools/list", json!({})),
                        Expect::Served,
                    ),
                    _ => (
                        "workspaces",
                        http.get(format!("{base}/api/v2/workspaces"))
                            .header("Coder-Session-Token", &owner),
                        Expect::Unavailable,
                    ),
                };
                let sent = Instant::now();
                let res = tokio::time::timeout(Duration::from_secs(15), request.send())
                    .await
                    .unwrap_or_else(|_| panic!("{name} hung for 15 s"))
                    .unwrap();
                let took = sent.elapsed();
                let retry_after = res.headers().get("retry-after").cloned();
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                answers.push((name, expect, status, took, retry_after, body));
                round += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = callers.join_next().await {
        answers.extend(done.unwrap());
    }
    // Past the MCP endpoint's user cache lifetime the verified token still lists its tools: the
    // cached user stands in while the database cannot be asked.
    tokio::time::sleep(USER_CACHE_TTL.saturating_sub(started.elapsed())).await;
    let (status, body) = rpc(&app, &access, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get("/healthz", None).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The metrics say so too, and are still served.
    let page = app
        .client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.lines().any(|l| l == "coderd_database_up 0"), "{page}");
    assert!(
        page.lines().any(|l| l.starts_with(
            r#"coderd_mcp_requests_total{method="tools/call",tool="coder_list_workspaces",outcome="unavailable"}"#
        )),
        "{page}"
    );
    proxy.restore();

    assert!(
        answers.len() > 50,
        "steady traffic: {} answers",
        answers.len()
    );
    for (name, expect, status, took, retry_after, body) in &answers {
        assert!(*took < FAST, "{name} took {took:?} during the outage");
        match expect {
            Expect::Served => assert_eq!(*status, StatusCode::OK, "{name}: {body}"),
            Expect::Unavailable => {
                assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{name}: {body}");
                assert_eq!(
                    retry_after.as_ref().and_then(|v| v.to_str().ok()),
                    Some("5"),
                    "{name}"
                );
                assert!(body.contains("database is unavailable"), "{name}: {body}");
                assert!(
                    !body.contains("sqlx") && !body.contains("127.0.0.1"),
                    "{name}: {body}"
                );
            }
        }
    }
    let mcp_error = answers
        .iter()
        .find(|a| a.0 == "tools/call")
        .map(|a| serde_json::from_str::<Value>(&a.5).unwrap())
        .unwrap();
    assert_eq!(mcp_error["error"]["code"], -32000, "{mcp_error}");
    assert_eq!(mcp_error["error"]["data"]["retryAfterSeconds"], 5);
    let oauth_error = answers
        .iter()
        .find(|a| a.0 == "refresh")
        .map(|a| serde_json::from_str::<Value>(&a.5).unwrap())
        .unwrap();
    assert_eq!(oauth_error["error"], "temporarily_unavailable");

    // The server notices the database is back by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/healthz", None).await.status() != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "/healthz stays 503 after the database is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = app
        .client
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.lines().any(|l| l == "coderd_database_up 1"), "{page}");
    let unavailable = page
        .lines()
        .find_map(|l| l.strip_prefix(r#"coderd_database_errors_total{kind="unavailable"} "#))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(unavailable >= 1.0, "{page}");
    // Then every request succeeds, and everything made before the outage is there.
    for _ in 0..20 {
        assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
        assert_eq!(
            app.get("/api/v2/users/me", Some(&owner)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        app.get("/api/v2/users/me", Some(&api_token)).await.status(),
        StatusCode::OK,
        "the API token made before the outage"
    );
    let listed = json_body(app.get("/api/v2/workspaces", Some(&owner)).await).await;
    assert_eq!(
        listed["count"], 1,
        "the workspace made before, and none of the creates that failed: {listed}"
    );
    assert_eq!(listed["workspaces"][0]["id"], ws["id"]);
    assert_eq!(listed["workspaces"][0]["latest_build"]["status"], "running");
    let (status, body) = rpc(
        &app,
        &access,
        "tools/call",
        json!({"name": "coder_list_workspaces", "arguments": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    let refreshed = app.refresh_tokens(&client, &refresh).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the grant made before the outage still refreshes"
    );
    app.stop().await.unwrap();
}

fn mcp(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    method: &str,
    params: Value,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}{MCP_PATH}"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
}
