//! Request-level fuzzing: generated requests (methods, real routes with hostile path segments and
//! queries, headers, hostile bodies and content types) sent to the real app on both backends.
//! Whatever arrives, the answer is never a 5xx, and the server stays healthy.
//!
//! The generators are proptest strategies driven by a fixed seed, so a run is reproducible; set
//! `PROPTEST_CASES` to send more requests than the default.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::oauth_client::MCP_PATH;

both_backends!(generated_requests_never_get_a_server_error);

/// Requests per backend unless `PROPTEST_CASES` says otherwise.
const DEFAULT_REQUESTS: usize = 300;

/// Every route the server mounts, `{}` marking a path parameter, with the methods it serves
/// (G GET, P POST, U PUT, A PATCH, D DELETE).
const ROUTES: &[(&str, &str)] = &[
    ("/", "G"),
    ("/healthz", "G"),
    ("/login", "GP"),
    ("/logout", "P"),
    ("/setup", "GP"),
    ("/settings/oauth2-provider", "G"),
    ("/settings/oauth2-provider/revoke", "P"),
    ("/deployment/oauth2-provider/apps", "GP"),
    ("/deployment/oauth2-provider/settings", "P"),
    ("/deployment/oauth2-provider/apps/{}", "GP"),
    ("/deployment/oauth2-provider/apps/{}/delete", "P"),
    ("/deployment/oauth2-provider/apps/{}/secrets", "P"),
    ("/.well-known/oauth-authorization-server", "G"),
    ("/.well-known/oauth-authorization-server/{}", "G"),
    ("/.well-known/oauth-protected-resource", "G"),
    ("/.well-known/oauth-protected-resource/{}", "G"),
    ("/oauth2/authorize", "GP"),
    ("/oauth2/token", "P"),
    ("/oauth2/revoke", "P"),
    ("/oauth2/register", "P"),
    ("/oauth2/jwks", "G"),
    ("/oauth2/tokens", "PD"),
    ("/oauth2/clients/{}", "GUD"),
    ("/api/v2/audit", "G"),
    ("/api/v2/buildinfo", "G"),
    ("/api/v2/experiments", "G"),
    ("/api/v2/experiments/available", "G"),
    ("/api/v2/files", "P"),
    ("/api/v2/files/{}", "G"),
    ("/api/v2/oauth2-provider/apps", "GP"),
    ("/api/v2/oauth2-provider/apps/{}", "GUD"),
    ("/api/v2/oauth2-provider/apps/{}/secrets", "GP"),
    ("/api/v2/oauth2-provider/apps/{}/secrets/{}", "D"),
    ("/api/v2/oauth2-provider/settings", "GU"),
    ("/api/v2/organizations/{}", "G"),
    ("/api/v2/organizations/{}/templates", "GP"),
    ("/api/v2/organizations/{}/templates/{}", "G"),
    ("/api/v2/organizations/{}/templateversions", "P"),
    ("/api/v2/templates", "G"),
    ("/api/v2/templates/{}", "GD"),
    ("/api/v2/templates/{}/versions", "GA"),
    ("/api/v2/templateversions/{}", "G"),
    ("/api/v2/templateversions/{}/logs", "G"),
    ("/api/v2/templateversions/{}/rich-parameters", "G"),
    ("/api/v2/users", "GP"),
    ("/api/v2/users/first", "GP"),
    ("/api/v2/users/login", "P"),
    ("/api/v2/users/{}", "GD"),
    ("/api/v2/users/{}/keys/tokens", "GP"),
    ("/api/v2/users/{}/keys/{}", "D"),
    ("/api/v2/users/{}/workspace/{}", "G"),
    ("/api/v2/users/{}/workspaces", "GP"),
    ("/api/v2/organizations/{}/provisionerkeys", "GP"),
    ("/api/v2/organizations/{}/provisionerkeys/{}", "D"),
    ("/api/v2/organizations/{}/provisionerdaemons", "G"),
    ("/api/v2/organizations/{}/provisionerdaemons/serve", "G"),
    ("/api/v2/replicas/relay/agents/{}", "P"),
    ("/api/v2/workspaceagents/me/manifest", "G"),
    ("/api/v2/workspaceagents/me/logs", "A"),
    ("/api/v2/workspaceagents/me/report-lifecycle", "P"),
    ("/api/v2/workspaceagents/me/rpc", "G"),
    ("/api/v2/workspaceagents/{}", "G"),
    ("/api/v2/workspaceagents/{}/apps", "G"),
    ("/api/v2/workspaceagents/{}/logs", "G"),
    ("/api/v2/workspaceagents/{}/execute", "P"),
    ("/api/v2/workspaceagents/{}/ls", "G"),
    ("/api/v2/workspaceagents/{}/read-file", "G"),
    ("/api/v2/workspaceagents/{}/write-file", "P"),
    ("/api/v2/workspaceagents/{}/edit-files", "P"),
    ("/api/v2/workspaceagents/{}/processes", "G"),
    ("/api/v2/workspaceagents/{}/processes/{}/output", "G"),
    ("/api/v2/workspaceagents/{}/processes/{}/signal", "P"),
    ("/api/v2/workspacebuilds/{}", "G"),
    ("/api/v2/workspacebuilds/{}/cancel", "A"),
    ("/api/v2/workspacebuilds/{}/logs", "G"),
    ("/api/v2/workspacebuilds/{}/parameters", "G"),
    ("/api/v2/workspaces", "G"),
    ("/api/v2/workspaces/{}", "G"),
    ("/api/v2/workspaces/{}/builds", "GP"),
    (MCP_PATH, "P"),
    ("/no/such/route", "G"),
];

/// Field names the handlers read, so that generated objects reach validation, not only parsing.
const FIELDS: &[&str] = &[
    "command",
    "timeout_ms",
    "background",
    "path",
    "content",
    "files",
    "signal",
    "tags",
    "logs",
    "state",
    "email",
    "username",
    "password",
    "name",
    "display_name",
    "description",
    "icon",
    "message",
    "token_name",
    "lifetime",
    "file_id",
    "template_id",
    "template_version_id",
    "transition",
    "rich_parameter_values",
    "redirect_uris",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "contacts",
    "software_id",
    "scope",
    "grant_type",
    "code",
    "refresh_token",
    "client_id",
    "client_secret",
    "code_verifier",
    "token",
    "callback_url",
    "jsonrpc",
    "id",
    "method",
    "params",
];

/// Strings known to have broken parsers and databases.
fn hostile_string() -> impl Strategy<Value = String> {
    hostile_string_up_to(70_000)
}

/// `hostile_string`, at most `max` characters long (URLs have a practical limit).
fn hostile_string_up_to(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("<script>alert(1)</script>@example.com".to_owned()),
        Just("\u{202e}\u{1b}[31m\r\n\t\u{7f}\u{85}".to_owned()),
        Just("me".to_owned()),
        Just("coder".to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        Just("coder_0123456789_0123456789012345678901234567890123456789".to_owned()),
        Just("https://example.com/\u{0}".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("' OR 1=1 --".to_owned()),
        Just("%00%ff%fe".to_owned()),
        Just("9".repeat(400)),
        (1usize..max).prop_map(|n| "x".repeat(n)),
        "[a-z0-9-]{1,16}",
        any::<String>(),
    ]
}

/// Hostile JSON values: extreme numbers, hostile strings, nested containers.
fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A request body and the content type it claims.
fn body() -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let content_type = prop::sample::select(vec![
        None,
        Some("application/json"),
        Some("application/json; charset=utf-16"),
        Some("application/x-www-form-urlencoded"),
        Some("application/x-tar"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("APPLICATION/JSON ; charset=\"x\"\t"),
    ]);
    let bytes = prop_oneof![
        Just(Vec::new()),
        hostile_json().prop_map(|v| v.to_string().into_bytes()),
        (1usize..100_000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..20_000)
            .prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
        Just(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#.to_vec()),
        Just(br#"{"email":"a@example.com","email":"b@example.com"}"#.to_vec()),
        Just(b"{\"name\":\"\\u0000\",\"description\":\"\\ud800\"}".to_vec()),
        Just(b"[1e999999, -0, 18446744073709551616]".to_vec()),
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec((prop::sample::select(FIELDS), hostile_string()), 0..6).prop_map(
            |pairs| {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    form.append_pair(k, &v);
                }
                form.finish().into_bytes()
            }
        ),
    ];
    (content_type, bytes)
}

/// One generated request.
#[derive(Debug, Clone)]
struct Generated {
    method: Method,
    path: String,
    query: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    auth: Auth,
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, Copy)]
enum Auth {
    None,
    Owner,
    Garbage,
}

fn percent_encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn served_method(letter: char) -> Method {
    match letter {
        'P' => Method::POST,
        'U' => Method::PUT,
        'A' => Method::PATCH,
        'D' => Method::DELETE,
        _ => Method::GET,
    }
}

fn request() -> impl Strategy<Value = Generated> {
    let any_method = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::HEAD,
    ]);
    // Mostly a method the route serves, so that requests reach the handlers; sometimes any.
    let route_and_method = prop::sample::select(ROUTES).prop_flat_map(move |(route, served)| {
        let letters: Vec<char> = served.chars().collect();
        let served = prop::sample::select(letters).prop_map(served_method);
        let method = prop_oneof![6 => served, 1 => any_method.clone()];
        (Just(route), method)
    });
    let path = (
        route_and_method,
        prop::collection::vec(
            prop_oneof![
                hostile_string_up_to(2_000).prop_map(|s| percent_encoded(&s)),
                Just("%00".to_owned()),
                Just("a%00b".to_owned()),
                Just("%2e%2e%2f%2e%2e%2f".to_owned()),
                Just("%ff%fe".to_owned()),
            ],
            2,
        ),
    )
        .prop_map(|((route, method), segments)| {
            let mut path = route.to_owned();
            for segment in segments {
                path = path.replacen("{}", &segment, 1);
            }
            (method, path)
        });
    let query = prop::collection::vec(
        (
            prop::sample::select(vec![
                "q",
                "limit",
                "offset",
                "after",
                "redirect",
                "client_id",
                "redirect_uri",
                "response_type",
                "state",
                "scope",
                "code_challenge",
                "code_challenge_method",
                "resource",
                "toolset",
            ]),
            hostile_string_up_to(2_000),
        ),
        0..4,
    )
    .prop_map(|pairs| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, &v);
        }
        query.finish()
    });
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec![
                "Origin",
                "Accept",
                "MCP-Protocol-Version",
                "Mcp-Method",
                "X-Forwarded-For",
                "Cookie",
                "Authorization",
                "Content-Encoding",
            ]),
            "[ -~]{0,64}",
        ),
        0..3,
    );
    let auth = prop::sample::select(vec![Auth::None, Auth::Owner, Auth::Owner, Auth::Garbage]);
    (path, query, body(), auth, headers).prop_map(
        |((method, path), query, (content_type, body), auth, headers)| Generated {
            method,
            path,
            query,
            content_type,
            body,
            auth,
            headers,
        },
    )
}

fn requests_to_send() -> usize {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS)
}

async fn generated_requests_never_get_a_server_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[14; 32]),
    );
    let strategy = request();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let count = requests_to_send();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut unbuildable = 0;
    for i in 0..count {
        let generated = strategy.new_tree(&mut runner).unwrap().current();
        let url = if generated.query.is_empty() {
            app.url(&generated.path)
        } else {
            format!("{}?{}", app.url(&generated.path), generated.query)
        };
        let mut req = client.request(generated.method.clone(), &url);
        // Signing out would end the owner's session for the rest of the run.
        let signs_out = generated.path.ends_with("logout");
        match generated.auth {
            Auth::Owner if !signs_out => req = req.header("Coder-Session-Token", &owner),
            // An unsigned JWT (`alg: none`) and an opaque token of the right shape but unknown.
            Auth::Garbage if i % 2 == 0 => {
                req = req.header("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
            }
            Auth::Garbage => {
                req = req.header("Coder-Session-Token", "0123456789-abcdefghijklmnopqrstuvwx")
            }
            _ => {}
        }
        for (name, value) in &generated.headers {
            if *name == "Cookie" && signs_out {
                continue;
            }
            req = req.header(*name, value.as_str());
        }
        if let Some(ct) = generated.content_type {
            req = req.header("Content-Type", ct);
        }
        if !generated.body.is_empty() {
            req = req.body(generated.body.clone());
        }
        let shown = || {
            let mut shown = format!("{} {url}\n{generated:?}", generated.method);
            shown.truncate(4000);
            shown
        };
        let res = match req.send().await {
            Ok(res) => res,
            // A request the client itself refuses to build never reached the server.
            Err(e) if e.is_builder() => {
                unbuildable += 1;
                continue;
            }
            Err(e) => panic!("request {i} failed ({e}): {}", shown()),
        };
        let status = res.status();
        *statuses.entry(status.as_u16()).or_default() += 1;
        let text = res.text().await.unwrap_or_default();
        assert!(
            !status.is_server_error(),
            "request {i} got {status}: {text}\n{}",
            shown()
        );
    }
    let took = started.elapsed();
    eprintln!(
        "{count} generated requests in {took:?}; statuses {statuses:?}; {unbuildable} not sendable"
    );
    assert!(
        unbuildable < count / 10,
        "the generators make too few sendable requests"
    );
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    // The owner can still work: the server kept its state consistent.
    let me = app.get("/api/v2/users/me", Some(&owner)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let created = app
        .post_json(
            "/api/v2/users",
            Some(&owner),
            &json!({"email": "after@example.com", "username": "after", "password": "correct-horse-battery"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    app.stop().await.unwrap();
}
