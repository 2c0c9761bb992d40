//! Client ID Metadata Documents: clients that send an https URL as `client_id` (claude.ai,
//! VS Code), the document served over local HTTPS with a throw-away CA; the SSRF defences with
//! the protections on; the cache on the manual clock; the owners' policy.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::cimd_support::{DocServer, Route};
use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::rpc;
use crate::oauth_client::{AuthRequest, CLAUDE_CALLBACK, Client, MCP_PATH, Pkce};

both_backends!(
    claude_ai_and_vscode_flows_end_to_end,
    metadata_advertises_documents_only_while_accepted,
    addresses_outside_the_public_internet_are_refused,
    redirects_oversized_slow_and_mismatched_documents_are_refused,
    documents_are_validated_as_client_metadata,
    documents_are_cached_by_their_headers_within_bounds,
    one_fetch_per_url_at_a_time_and_a_per_host_rate_limit,
    owners_policy_any_listed_hosts_or_none,
    private_key_jwt_clients_authenticate_with_signed_assertions,
    first_sight_at_the_token_endpoint_is_audited_with_the_ip,
);

const SETTINGS: &str = "/api/v2/oauth2-provider/settings";
const VSCODE_REDIRECT: &str = "http://127.0.0.1:33418/";

async fn spawn(backend: Backend, docs: &DocServer) -> TestApp {
    let trust = docs.trust();
    TestApp::spawn_with(backend, move |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.cimd_test_trust = Some(trust);
    })
    .await
}

fn client(id: &str, redirect_uri: &str) -> Client {
    Client {
        id: id.to_owned(),
        secret: None,
        registration_token: None,
        redirect_uri: redirect_uri.to_owned(),
        method: "none".to_owned(),
    }
}

fn request(client_id: &str, redirect_uri: &str) -> AuthRequest {
    AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: Some(redirect_uri.to_owned()),
        scope: None,
        resource: None,
        state: Some("s1".into()),
        pkce: Pkce::new(),
    }
}

/// The authorization error page for `client_id`: its status and text.
async fn authorize_page(
    app: &TestApp,
    session: &str,
    client_id: &str,
    redirect: &str,
) -> (StatusCode, String) {
    let res = app
        .authorize_get(Some(session), &request(client_id, redirect))
        .await;
    (res.status(), res.text().await.unwrap())
}

async fn assert_refused(app: &TestApp, session: &str, client_id: &str, reason: &str) {
    let (status, html) = authorize_page(app, session, client_id, VSCODE_REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{client_id}: {html}");
    assert!(
        html.contains("Client metadata document refused"),
        "{client_id}: {html}"
    );
    assert!(
        html.contains(client_id),
        "the page names {client_id}: {html}"
    );
    assert!(
        html.contains(reason),
        "{client_id}: expected {reason:?} in {html}"
    );
}

/// The claims of an access token, unverified.
fn claims(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Consent, code exchange, `tools/list`, refresh, revocation: one client's whole life.
async fn play(app: &TestApp, owner: &str, docs: &DocServer, id: &str, redirect: &str, name: &str) {
    let mut req = request(id, redirect);
    req.resource = Some(app.url(MCP_PATH));
    // Signed out, the request sends the visitor to sign in, which names the client.
    let res = app.authorize_get(None, &req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    let html = app
        .client
        .get(app.url(&login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("Sign in to continue to <strong>{name}</strong>")),
        "{html}"
    );
    let page = app.authorize_get(Some(owner), &req).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let doc_host = docs.base.trim_start_matches("https://");
    assert!(html.contains(name), "{html}");
    assert!(
        html.contains(&format!("identified by <strong>{doc_host}</strong>")),
        "{html}"
    );
    assert!(!html.contains("registered itself"), "{html}");
    let dest = coderd::domain::redirect_uri::redirect_host(redirect);
    assert!(html.contains(&dest), "{html}");

    let c = client(id, redirect);
    let code = app.authorize_code(owner, &req).await;
    let res = app.exchange_code(&c, &code, &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // RFC 9068 §2.2: `client_id` is the identifier the client used, its document's URL.
    assert_eq!(claims(&access)["client_id"], id, "{access}");
    let (status, listed) = rpc(app, &access, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(
        listed["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{listed}"
    );

    let res = app
        .refresh_tokens(&c, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed = json_body(res).await;
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&access)["client_id"], id, "{access}");
    assert_eq!(
        rpc(app, &access, "tools/list", json!({})).await.0,
        StatusCode::OK
    );

    let mine = json_body(
        app.get("/api/v2/oauth2-provider/apps?user_id=me", Some(owner))
            .await,
    )
    .await;
    let listed = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["client_id"] == id)
        .unwrap_or_else(|| panic!("{id} among the authorized apps: {mine}"));
    assert_eq!(listed["name"], name);
    assert_eq!(listed["client_id_metadata_document"], true);
    let owners_list = app
        .client
        .get(app.url("/deployment/oauth2-provider/apps"))
        .header("Cookie", format!("coder_session_token={owner}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        owners_list.contains("By its metadata document"),
        "{owners_list}"
    );

    let res = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[("token", refresh.as_str()), ("client_id", id)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        rpc(app, &access, "tools/list", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let res = app.refresh_tokens(&c, &refresh).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_grant");
}

async fn claude_ai_and_vscode_flows_end_to_end(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    let claude = docs.document(
        "/oauth/claude-code-client-metadata",
        json!({
            "client_name": "Claude",
            "client_uri": "https://claude.ai",
            "redirect_uris": [CLAUDE_CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "claudeai",
        }),
    );
    let vscode = docs.document(
        "/oauth/client-metadata.json",
        json!({
            "client_name": "Visual Studio Code",
            "redirect_uris": [VSCODE_REDIRECT, "http://localhost:33418/"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        }),
    );
    play(&app, &owner, &docs, &claude, CLAUDE_CALLBACK, "Claude").await;
    play(
        &app,
        &owner,
        &docs,
        &vscode,
        VSCODE_REDIRECT,
        "Visual Studio Code",
    )
    .await;

    // The user withdraws VS Code's access, naming it by its URL.
    let c = client(&vscode, VSCODE_REDIRECT);
    let tokens = app.obtain_tokens(&owner, &c).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        rpc(&app, access, "tools/list", json!({})).await.0,
        StatusCode::OK
    );
    let withdraw = format!(
        "/oauth2/tokens?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &vscode)
            .finish()
    );
    let res = app.delete(&withdraw, Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        rpc(&app, access, "tools/list", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let res = app
        .refresh_tokens(&c, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // VS Code's redirect URIs are all on localhost: the consent page warns.
    let (_, html) = authorize_page(&app, &owner, &vscode, "http://127.0.0.1:40000/").await;
    assert!(html.contains("only sends you back to"), "{html}");
    let (_, html) = authorize_page(&app, &owner, &claude, CLAUDE_CALLBACK).await;
    assert!(!html.contains("only sends you back to"), "{html}");

    // Each client is one stored row, refreshed from its document, and audited.
    let entries = app.audit_logs().await;
    let mut first_seen: Vec<String> = entries
        .iter()
        .filter(|e| e.action == "oauth2.client.metadata_document")
        .map(|e| {
            e.details["client_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    first_seen.sort();
    let mut expected = vec![claude.clone(), vscode.clone()];
    expected.sort();
    assert_eq!(first_seen, expected);
    assert!(
        entries
            .iter()
            .filter(|e| e.action == "oauth2.token.issue")
            .count()
            >= 4
    );
}

async fn metadata_advertises_documents_only_while_accepted(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend.clone(), &docs).await;
    let owner = app.create_owner().await;
    let meta = json_body(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    let res = app
        .request(Method::PUT, SETTINGS, Some(&owner))
        .json(&json!({"client_id_metadata_document_policy": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let meta = json_body(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert!(
        meta.get("client_id_metadata_document_supported").is_none(),
        "{meta}"
    );

    // The server flag turns them off whatever the policy says.
    let off = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.client_id_metadata_documents = false;
    })
    .await;
    let owner = off.create_owner().await;
    let meta = json_body(
        off.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert!(
        meta.get("client_id_metadata_document_supported").is_none(),
        "{meta}"
    );
    let settings = json_body(off.get(SETTINGS, Some(&owner)).await).await;
    assert_eq!(settings["client_id_metadata_document_enabled"], false);
    let url = docs.document("/m", json!({"redirect_uris": [VSCODE_REDIRECT]}));
    let (status, html) = authorize_page(&off, &owner, &url, VSCODE_REDIRECT).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("does not accept clients identified by a metadata document"),
        "{html}"
    );
    assert_eq!(docs.hits("/m"), 0);
}

async fn addresses_outside_the_public_internet_are_refused(backend: Backend) {
    let docs = DocServer::start().await;
    // Protections on: no test-only trust at all.
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let port = docs.base.rsplit(':').next().unwrap().to_owned();
    for path in ["/a", "/b", "/c"] {
        docs.document(path, json!({"redirect_uris": [VSCODE_REDIRECT]}));
    }
    assert_refused(
        &app,
        &owner,
        &format!("https://127.0.0.1:{port}/a"),
        "non-public address (127.0.0.1)",
    )
    .await;
    assert_refused(
        &app,
        &owner,
        &format!("https://[::1]:{port}/b"),
        "non-public address (::1)",
    )
    .await;
    // A name resolving to loopback is refused after resolution.
    assert_refused(
        &app,
        &owner,
        &format!("https://localhost:{port}/c"),
        "non-public address",
    )
    .await;
    assert_refused(
        &app,
        &owner,
        "https://10.0.0.1/m",
        "non-public address (10.0.0.1)",
    )
    .await;
    assert_refused(
        &app,
        &owner,
        "https://169.254.169.254/latest/meta-data",
        "non-public address (169.254.169.254)",
    )
    .await;
    assert_refused(
        &app,
        &owner,
        "https://[::ffff:c0a8:1]/m",
        "non-public address (::ffff:192.168.0.1)",
    )
    .await;
    assert_refused(
        &app,
        &owner,
        "https://100.64.0.1/m",
        "non-public address (100.64.0.1)",
    )
    .await;
    for path in ["/a", "/b", "/c"] {
        assert_eq!(docs.hits(path), 0, "{path} was never fetched");
    }
    // Not https at all: never a metadata document, and never fetched.
    let (status, html) = authorize_page(
        &app,
        &owner,
        &format!("http://127.0.0.1:{port}/a"),
        VSCODE_REDIRECT,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Unknown application"), "{html}");
}

async fn redirects_oversized_slow_and_mismatched_documents_are_refused(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    let target = docs.document("/target", json!({"redirect_uris": [VSCODE_REDIRECT]}));
    docs.set(
        "/redirect",
        Route {
            status: 302,
            headers: vec![("Location".into(), target.clone())],
            body: Vec::new(),
            delay: None,
            streamed: false,
        },
    );
    assert_refused(
        &app,
        &owner,
        &docs.url("/redirect"),
        "redirects are not followed",
    )
    .await;
    assert_eq!(docs.hits("/redirect"), 1);
    assert_eq!(docs.hits("/target"), 0);

    let padding = "x".repeat(6 * 1024);
    let big = json!({"client_id": docs.url("/big"), "redirect_uris": [VSCODE_REDIRECT], "client_name": padding});
    docs.set("/big", Route::json(&big));
    assert_refused(&app, &owner, &docs.url("/big"), "larger than 5120 bytes").await;
    let mut streamed = Route::json(
        &json!({"client_id": docs.url("/streamed"), "redirect_uris": [VSCODE_REDIRECT], "client_name": padding}),
    );
    streamed.streamed = true;
    docs.set("/streamed", streamed);
    assert_refused(
        &app,
        &owner,
        &docs.url("/streamed"),
        "larger than 5120 bytes",
    )
    .await;
    assert!(!padding.is_empty());

    let mut slow =
        Route::json(&json!({"client_id": docs.url("/slow"), "redirect_uris": [VSCODE_REDIRECT]}));
    slow.delay = Some(std::time::Duration::from_secs(4));
    docs.set("/slow", slow);
    let started = std::time::Instant::now();
    assert_refused(
        &app,
        &owner,
        &docs.url("/slow"),
        "did not answer within 2 seconds",
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4));

    docs.set(
        "/other",
        Route::json(
            &json!({"client_id": docs.url("/elsewhere"), "redirect_uris": [VSCODE_REDIRECT]}),
        ),
    );
    assert_refused(
        &app,
        &owner,
        &docs.url("/other"),
        "client_id is not exactly the URL",
    )
    .await;

    docs.set(
        "/missing-secret",
        Route {
            status: 500,
            headers: vec![],
            body: b"internal secret: hunter2".to_vec(),
            delay: None,
            streamed: false,
        },
    );
    let (_, html) =
        authorize_page(&app, &owner, &docs.url("/missing-secret"), VSCODE_REDIRECT).await;
    assert!(html.contains("HTTP 500"), "{html}");
    assert!(
        !html.contains("hunter2"),
        "the page never shows the fetched body: {html}"
    );
    let mut not_json = Route::json(&json!(null));
    not_json.body = b"<html>internal admin console</html>".to_vec();
    docs.set("/html", not_json);
    let (_, html) = authorize_page(&app, &owner, &docs.url("/html"), VSCODE_REDIRECT).await;
    assert!(html.contains("not a JSON object"), "{html}");
    assert!(!html.contains("admin console"), "{html}");
}

async fn documents_are_validated_as_client_metadata(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    for (path, fields, reason) in [
        (
            "/secret-post",
            json!({"redirect_uris": [VSCODE_REDIRECT], "token_endpoint_auth_method": "client_secret_post"}),
            "client_secret_* is refused",
        ),
        (
            "/secret-basic",
            json!({"redirect_uris": [VSCODE_REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}),
            "client_secret_* is refused",
        ),
        (
            "/jwt-no-keys",
            json!({"redirect_uris": [VSCODE_REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "jwks or jwks_uri",
        ),
        (
            "/no-redirects",
            json!({"redirect_uris": []}),
            "redirect_uris must list at least one URI",
        ),
        (
            "/js",
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "not allowed",
        ),
        (
            "/implicit",
            json!({"redirect_uris": [VSCODE_REDIRECT], "response_types": ["token"]}),
            "response_types may only contain code",
        ),
    ] {
        let url = docs.document(path, fields);
        assert_refused(&app, &owner, &url, reason).await;
    }
    // Exact redirect matching, with the loopback port rule of RFC 8252 §7.3.
    let url = docs.document("/ok", json!({"client_name": "Loopback", "redirect_uris": ["http://127.0.0.1/callback", "https://app.example/cb"]}));
    let (status, _) = authorize_page(&app, &owner, &url, "http://127.0.0.1:51234/callback").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = authorize_page(&app, &owner, &url, "https://app.example/cb").await;
    assert_eq!(status, StatusCode::OK);
    for bad in [
        "https://app.example/cb/",
        "https://app.example/other",
        "http://127.0.0.1:51234/other",
    ] {
        let (status, html) = authorize_page(&app, &owner, &url, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("Invalid redirect URI"), "{bad}: {html}");
    }
    // A metadata-document client has no secret to present at the token endpoint.
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .basic_auth(&url, Some("guess"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("code_verifier", &"v".repeat(43)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(res).await["error"], "invalid_client");
}

async fn documents_are_cached_by_their_headers_within_bounds(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    app.create_owner().await;
    // Each check signs in afresh: the clock moves past the session's lifetime.
    let fetch = |url: String| {
        let app = &app;
        async move {
            let session = app
                .login("owner@example.com", crate::helpers::PASSWORD)
                .await;
            let (status, _) = authorize_page(app, &session, &url, VSCODE_REDIRECT).await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    // No caching headers: used for the 5-minute minimum.
    let plain = docs.document("/plain", json!({"redirect_uris": [VSCODE_REDIRECT]}));
    fetch(plain.clone()).await;
    fetch(plain.clone()).await;
    assert_eq!(docs.hits("/plain"), 1);
    app.clock.advance(Duration::minutes(4));
    fetch(plain.clone()).await;
    assert_eq!(docs.hits("/plain"), 1);
    app.clock.advance(Duration::minutes(2));
    fetch(plain.clone()).await;
    assert_eq!(docs.hits("/plain"), 2);

    // max-age is honoured.
    let doc = json!({"client_id": docs.url("/hour"), "redirect_uris": [VSCODE_REDIRECT]});
    docs.set(
        "/hour",
        Route::json(&doc).header("Cache-Control", "public, max-age=3600"),
    );
    fetch(docs.url("/hour")).await;
    app.clock.advance(Duration::minutes(59));
    fetch(docs.url("/hour")).await;
    assert_eq!(docs.hits("/hour"), 1);
    app.clock.advance(Duration::minutes(2));
    fetch(docs.url("/hour")).await;
    assert_eq!(docs.hits("/hour"), 2);

    // no-store is raised to the minimum, a week is cut to a day.
    let doc = json!({"client_id": docs.url("/nostore"), "redirect_uris": [VSCODE_REDIRECT]});
    docs.set(
        "/nostore",
        Route::json(&doc).header("Cache-Control", "no-store"),
    );
    fetch(docs.url("/nostore")).await;
    fetch(docs.url("/nostore")).await;
    assert_eq!(docs.hits("/nostore"), 1);
    let doc = json!({"client_id": docs.url("/week"), "redirect_uris": [VSCODE_REDIRECT]});
    docs.set(
        "/week",
        Route::json(&doc).header("Cache-Control", "max-age=604800"),
    );
    fetch(docs.url("/week")).await;
    app.clock.advance(Duration::hours(23));
    fetch(docs.url("/week")).await;
    assert_eq!(docs.hits("/week"), 1);
    app.clock.advance(Duration::hours(2));
    fetch(docs.url("/week")).await;
    assert_eq!(docs.hits("/week"), 2);

    // A changed document refreshes the stored client once it is fetched again.
    let changed = json!({"client_id": docs.url("/week"), "client_name": "Renamed", "redirect_uris": [VSCODE_REDIRECT]});
    docs.set("/week", Route::json(&changed));
    app.clock.advance(Duration::hours(25));
    let session = app
        .login("owner@example.com", crate::helpers::PASSWORD)
        .await;
    let (_, html) = authorize_page(&app, &session, &docs.url("/week"), VSCODE_REDIRECT).await;
    assert!(html.contains("Renamed"), "{html}");
}

async fn one_fetch_per_url_at_a_time_and_a_per_host_rate_limit(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    let mut slow =
        Route::json(&json!({"client_id": docs.url("/slow"), "redirect_uris": [VSCODE_REDIRECT]}));
    slow.delay = Some(std::time::Duration::from_millis(500));
    docs.set("/slow", slow);
    let url = docs.url("/slow");
    let pages = futures_util::future::join_all(
        (0..5).map(|_| authorize_page(&app, &owner, &url, VSCODE_REDIRECT)),
    )
    .await;
    assert!(pages.iter().all(|(s, _)| *s == StatusCode::OK));
    assert_eq!(docs.hits("/slow"), 1);

    // Ten fetches a minute per host (the one above counted); then refused without fetching.
    for i in 0..9 {
        let url = docs.document(
            &format!("/n{i}"),
            json!({"redirect_uris": [VSCODE_REDIRECT]}),
        );
        let (status, _) = authorize_page(&app, &owner, &url, VSCODE_REDIRECT).await;
        assert_eq!(status, StatusCode::OK);
    }
    let url = docs.document("/n9", json!({"redirect_uris": [VSCODE_REDIRECT]}));
    assert_refused(
        &app,
        &owner,
        &url,
        "too many documents were fetched from 127.0.0.1",
    )
    .await;
    assert_eq!(docs.hits("/n9"), 0);
    app.clock.advance(Duration::minutes(1));
    let (status, _) = authorize_page(&app, &owner, &url, VSCODE_REDIRECT).await;
    assert_eq!(status, StatusCode::OK);
}

async fn put_policy(app: &TestApp, owner: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .request(Method::PUT, SETTINGS, Some(owner))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status(), json_body(res).await)
}

async fn owners_policy_any_listed_hosts_or_none(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "member").await;
    let url = docs.document(
        "/m",
        json!({"client_name": "Policy", "redirect_uris": [VSCODE_REDIRECT]}),
    );

    let settings = json_body(app.get(SETTINGS, Some(&owner)).await).await;
    assert_eq!(settings["client_id_metadata_document_policy"], "any");
    assert_eq!(settings["client_id_metadata_document_hosts"], json!([]));
    assert_eq!(settings["client_id_metadata_document_enabled"], true);
    let (status, _) = put_policy(
        &app,
        &member,
        json!({"client_id_metadata_document_policy": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A code obtained under "any" ...
    let req = request(&url, VSCODE_REDIRECT);
    let code = app.authorize_code(&owner, &req).await;

    // ... is refused at the token endpoint once the policy says none.
    let (status, body) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_policy": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client_id_metadata_document_enabled"], false);
    assert_refused(&app, &owner, &url, "an owner turned off").await;
    let res = app
        .exchange_code(&client(&url, VSCODE_REDIRECT), &code, &req)
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let err = json_body(res).await;
    assert_eq!(err["error"], "invalid_client");
    assert!(
        err["error_description"].as_str().unwrap().contains(&url),
        "{err}"
    );

    // Listed hosts: only documents on them.
    let (status, body) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_policy": "listed_hosts"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_hosts": ["https://x.io/"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_policy": "listed_hosts", "client_id_metadata_document_hosts": ["Claude.AI", "vscode.dev"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["client_id_metadata_document_hosts"],
        json!(["claude.ai", "vscode.dev"])
    );
    assert_refused(&app, &owner, &url, "127.0.0.1 is not one").await;
    let (status, _) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_hosts": ["claude.ai", "127.0.0.1"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let req = request(&url, VSCODE_REDIRECT);
    let code = app.authorize_code(&owner, &req).await;
    let res = app
        .exchange_code(&client(&url, VSCODE_REDIRECT), &code, &req)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Any again; the dynamic-registration switch is untouched by all this.
    let (status, body) = put_policy(
        &app,
        &owner,
        json!({"client_id_metadata_document_policy": "any"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["dynamic_client_registration_enabled"], true);
    let entries = app.audit_logs().await;
    assert!(entries.iter().any(|e| e.action == "oauth2.settings.update"
        && e.details["client_id_metadata_document_policy"] == "listed_hosts"));
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT over `claims` signed by `sign`.
fn signed_jwt(header: Value, claims: Value, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

async fn private_key_jwt_clients_authenticate_with_signed_assertions(backend: Backend) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let owner = app.create_owner().await;
    let rng = ring::rand::SystemRandom::new();
    let ed =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let ec_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_der.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref().to_vec();

    // One client with its Ed25519 key inline, one with its P-256 key at a jwks_uri.
    let inline = docs.document(
        "/inline",
        json!({"client_name": "Keyed", "redirect_uris": ["https://keyed.example/cb"],
               "token_endpoint_auth_method": "private_key_jwt",
               "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64(ed.public_key().as_ref())}]}}),
    );
    docs.set(
        "/jwks",
        Route::json(&json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e1",
        "x": b64(&point[1..33]), "y": b64(&point[33..])}]})),
    );
    let remote = docs.document(
        "/remote",
        json!({"client_name": "Remote keys", "redirect_uris": ["https://keyed.example/cb"],
               "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": docs.url("/jwks")}),
    );
    let token_endpoint = app.url("/oauth2/tokens");
    let claims = |client: &str, aud: &str, jti: &str| {
        json!({"iss": client, "sub": client, "aud": aud, "jti": jti,
               "exp": coderd::clock::Clock::now(&app.clock).timestamp() + 300})
    };
    let ed_sign = |m: &[u8]| ed.sign(m).as_ref().to_vec();
    let ec_sign = |m: &[u8]| ec.sign(&rng, m).unwrap().as_ref().to_vec();

    let exchange = |client: String, assertion: String, req: AuthRequest, code: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .post(app.url("/oauth2/tokens"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("code_verifier", req.pkce.verifier.as_str()),
                    ("redirect_uri", "https://keyed.example/cb"),
                    ("client_id", client.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, json_body(res).await)
        }
    };

    for (client, header, sign) in [
        (
            &inline,
            json!({"alg": "EdDSA", "kid": "k1"}),
            &ed_sign as &dyn Fn(&[u8]) -> Vec<u8>,
        ),
        (&remote, json!({"alg": "ES256", "kid": "e1"}), &ec_sign),
    ] {
        // Without an assertion, or with one signed by another key: invalid_client.
        let req = request(client, "https://keyed.example/cb");
        let code = app.authorize_code(&owner, &req).await;
        let res = app
            .exchange_code(
                &self::client(client, "https://keyed.example/cb"),
                &code,
                &req,
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let other = if client == &inline {
            &ec_sign as &dyn Fn(&[u8]) -> Vec<u8>
        } else {
            &ed_sign
        };
        let forged = signed_jwt(
            header.clone(),
            claims(client, &token_endpoint, "forged"),
            other,
        );
        let (status, body) = exchange(client.clone(), forged, req.clone(), code.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let wrong_aud = signed_jwt(
            header.clone(),
            claims(client, "https://elsewhere.example/token", "aud"),
            sign,
        );
        let (status, body) = exchange(client.clone(), wrong_aud, req.clone(), code.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains("aud"),
            "{body}"
        );

        // The right key: tokens. The same assertion again is a replay.
        let good = signed_jwt(
            header.clone(),
            claims(client, &token_endpoint, "once"),
            sign,
        );
        let (status, body) =
            exchange(client.clone(), good.clone(), req.clone(), code.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["access_token"].is_string());
        let req2 = request(client, "https://keyed.example/cb");
        let code2 = app.authorize_code(&owner, &req2).await;
        let (status, body) = exchange(client.clone(), good, req2.clone(), code2.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{body}"
        );
        // The issuer is also an accepted audience.
        let fresh = signed_jwt(header.clone(), claims(client, &app.url, "issuer-aud"), sign);
        let (status, body) = exchange(client.clone(), fresh, req2, code2).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(docs.hits("/jwks"), 1, "the key set is cached");
}

/// A metadata-document client whose first request is to the token endpoint (here with a refresh
/// token it never had) is stored and audited from the request's address, as on the
/// authorization endpoint.
async fn first_sight_at_the_token_endpoint_is_audited_with_the_ip(backend: Backend) {
    let docs = DocServer::start().await;
    let app = spawn(backend, &docs).await;
    let id = docs.document(
        "/oauth/first-seen-at-the-token-endpoint",
        json!({
            "client_name": "Token First",
            "redirect_uris": [CLAUDE_CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }),
    );
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                "coder_abcdefghij_0123456789abcdef0123456789abcdef",
            ),
            ("client_id", id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_grant");
    let entries = app.audit_logs().await;
    let seen: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "oauth2.client.metadata_document")
        .collect();
    assert_eq!(seen.len(), 1, "{entries:?}");
    assert_eq!(seen[0].details["client_id"], id.as_str());
    assert_eq!(seen[0].ip, "127.0.0.1", "{:?}", seen[0]);
}
