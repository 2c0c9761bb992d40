//! OAuth benchmark: token-endpoint throughput for the authorization-code and refresh grants
//! over HTTP, and the cost of verifying an access token in-process (cached and first-seen).
//!
//! Run: `cargo bench --bench oauth` (SQLite), or with `CODER_BENCH_POSTGRES_URL=postgres://...`
//! for PostgreSQL. Results are recorded in docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use coderd::app::App;
use coderd::clock::SystemClock;
use coderd::config::ServerConfig;
use coderd::domain::{Experiment, Experiments};
use coderd::oauth::authorize::AuthorizeParams;
use coderd::service::CreateUserRequest;
use coderd::store::DatabaseTarget;
use serde_json::{Value, json};

const GRANTS: usize = 2000;
const CONCURRENCY: usize = 16;
const CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_data_dir(dir.path().to_path_buf());
    config.experiments = Experiments::of(&Experiment::ALL);
    // The benchmark measures the endpoint, not the limiter.
    config.oauth2.rate_limit_per_ip = u32::MAX;
    config.oauth2.rate_limit_per_client = u32::MAX;
    let backend = match std::env::var("CODER_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            config.database = DatabaseTarget::Postgres(bench_schema(&url).await);
            "postgres"
        }
        _ => "sqlite",
    };
    let app = App::build_with_clock(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let state = app.state().clone();
    let base = app.access_url().as_str().trim_end_matches('/').to_owned();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let user = state
        .services
        .create_first_user(CreateUserRequest {
            email: "bench@example.com".into(),
            username: "bench".into(),
            name: String::new(),
            password: "bench-password-123".into(),
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let client: Value = http
        .post(format!("{base}/oauth2/register"))
        .json(&json!({"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "client_secret_post"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();

    // Codes are issued in-process (the consent page is not what is measured).
    let verifier = "bench-verifier-bench-verifier-bench-verifier-0123456789".to_owned();
    let challenge = coderd::oauth::pkce::s256_challenge(&verifier);
    let mut codes = Vec::with_capacity(GRANTS);
    for _ in 0..GRANTS {
        let params = AuthorizeParams::from_pairs([
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        let trusted = state
            .oauth
            .trust_client(&params, "127.0.0.1")
            .await
            .unwrap();
        let validated = state
            .oauth
            .validate_authorization(trusted, &params, &user)
            .unwrap();
        let redirect = state
            .oauth
            .approve(&validated, &user, "127.0.0.1")
            .await
            .unwrap();
        let url = url::Url::parse(&redirect).unwrap();
        codes.push(
            url.query_pairs()
                .find(|(k, _)| k == "code")
                .unwrap()
                .1
                .into_owned(),
        );
    }

    let form = |extra: Vec<(&'static str, String)>| {
        let mut f = vec![
            ("client_id", client_id.clone()),
            ("client_secret", secret.clone()),
        ];
        f.extend(extra);
        f
    };
    let exchanges: Vec<Vec<(&'static str, String)>> = codes
        .into_iter()
        .map(|code| {
            form(vec![
                ("grant_type", "authorization_code".into()),
                ("code", code),
                ("code_verifier", verifier.clone()),
                ("redirect_uri", CALLBACK.into()),
            ])
        })
        .collect();
    let (code_stats, responses) = run(&http, &format!("{base}/oauth2/tokens"), exchanges).await;
    let refreshes: Vec<Vec<(&'static str, String)>> = responses
        .iter()
        .map(|r| {
            form(vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", r["refresh_token"].as_str().unwrap().into()),
            ])
        })
        .collect();
    let (refresh_stats, _) = run(&http, &format!("{base}/oauth2/tokens"), refreshes).await;

    // Verification: first sight of a token (signature check) and every later request (cache).
    let tokens: Vec<String> = responses
        .iter()
        .map(|r| r["access_token"].as_str().unwrap().to_owned())
        .collect();
    let started = Instant::now();
    for token in &tokens {
        state.access_tokens.verify(token).await.unwrap();
    }
    let first_seen = started.elapsed() / tokens.len() as u32;
    let rounds = 200_000;
    let started = Instant::now();
    for i in 0..rounds {
        state.access_tokens.verify(&tokens[i % 64]).await.unwrap();
    }
    let cached = started.elapsed() / rounds as u32;

    println!(
        "\n## OAuth benchmark ({backend}, {GRANTS} grants, {CONCURRENCY} concurrent requests)\n"
    );
    println!("| measurement | throughput | p50 | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| POST /oauth2/tokens, authorization_code | {:.0} req/s | {:.2} ms | {:.2} ms |",
        code_stats.rps, code_stats.p50, code_stats.p99
    );
    println!(
        "| POST /oauth2/tokens, refresh_token | {:.0} req/s | {:.2} ms | {:.2} ms |",
        refresh_stats.rps, refresh_stats.p50, refresh_stats.p99
    );
    println!(
        "| verify access token, first sight (signature) | {:.0} /s | {:.1} µs | |",
        1.0 / first_seen.as_secs_f64(),
        first_seen.as_secs_f64() * 1e6
    );
    println!(
        "| verify access token, cached (per request) | {:.0} /s | {:.2} µs | |",
        1.0 / cached.as_secs_f64(),
        cached.as_secs_f64() * 1e6
    );
}

struct Stats {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// Posts every form with `CONCURRENCY` requests in flight; all must succeed.
async fn run(
    http: &reqwest::Client,
    url: &str,
    forms: Vec<Vec<(&'static str, String)>>,
) -> (Stats, Vec<Value>) {
    let total = forms.len();
    let queue = Arc::new(tokio::sync::Mutex::new(
        forms.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let queue = queue.clone();
        let http = http.clone();
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut done: Vec<(usize, Duration, Value)> = Vec::new();
            loop {
                let Some((i, form)) = queue.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                let res = http.post(&url).form(&form).send().await.unwrap();
                assert_eq!(
                    res.status(),
                    200,
                    "{}",
                    res.text().await.unwrap_or_default()
                );
                let body: Value = res.json().await.unwrap();
                done.push((i, t.elapsed(), body));
            }
            done
        }));
    }
    let mut results = Vec::with_capacity(total);
    for w in workers {
        results.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    results.sort_by_key(|(i, _, _)| *i);
    let mut latencies: Vec<f64> = results
        .iter()
        .map(|(_, d, _)| d.as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let stats = Stats {
        rps: total as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    };
    (stats, results.into_iter().map(|(_, _, v)| v).collect())
}

/// A fresh `coderd_bench` schema for the run, leaving everything else in the database alone.
async fn bench_schema(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("DROP SCHEMA IF EXISTS coderd_bench CASCADE")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE SCHEMA coderd_bench")
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3Dcoderd_bench")
}
