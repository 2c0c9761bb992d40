//! Discovery, gating and dynamic client registration: RFC 8414, RFC 9728, RFC 7591, RFC 7592
//! and the owner's registration switch.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use coderd::domain::{Experiment, Experiments};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_invalid_token, json_body};
use crate::oauth_client::{CLAUDE_CALLBACK, Client, MCP_PATH};

both_backends!(
    as_metadata_has_every_field_and_is_cacheable,
    as_metadata_answers_any_path_suffix,
    protected_resource_metadata_is_path_aware,
    jwks_publishes_an_ed25519_key,
    everything_is_404_when_the_experiment_is_off,
    admin_api_names_the_experiment_when_it_is_off,
    oauth2_responses_are_not_stored,
    claude_registration_gets_a_secret_and_echoes_its_method,
    cursor_registration_is_public_and_keeps_every_redirect_uri,
    default_method_is_client_secret_basic_and_unknown_fields_are_ignored,
    bad_redirect_uris_are_invalid_redirect_uri,
    bad_metadata_is_invalid_client_metadata,
    duplicate_names_and_many_registrations_from_one_ip_are_fine,
    registration_is_rate_limited_per_ip_when_configured,
    rfc7592_read_hides_the_secrets,
    rfc7592_refuses_every_wrong_credential_alike,
    rfc7592_put_replaces_metadata,
    rfc7592_put_cannot_switch_client_type,
    rfc7592_put_refuses_another_client_id_and_wider_scope,
    rfc7592_delete_revokes_everything_issued,
    owner_can_turn_registration_off_and_on,
);

const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
const PRM: &str = "/.well-known/oauth-protected-resource";

fn header<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Sends a registration body and returns the raw response.
async fn register_raw(app: &TestApp, body: &Value) -> Response {
    app.post_json("/oauth2/register", None, body).await
}

/// A registration that must fail with `status` and the OAuth `error` code.
async fn assert_register_error(app: &TestApp, body: Value, status: StatusCode, error: &str) {
    let res = register_raw(app, &body).await;
    assert_eq!(res.status(), status, "registering {body}");
    let err = json_body(res).await;
    assert_eq!(err["error"], error, "registering {body}: {err}");
    assert!(err["error_description"].is_string(), "{err}");
}

fn client_path(id: &str) -> String {
    format!("/oauth2/clients/{id}")
}

async fn rfc7592(
    app: &TestApp,
    method: Method,
    id: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut req = app.request(method, &client_path(id), None);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.expect("request")
}

/// RFC 7592 §2: a bad registration access token is a Bearer `invalid_token`, in the OAuth body.
async fn assert_invalid_registration_token(res: Response) {
    let (_, _, body) = assert_invalid_token(res).await;
    assert_eq!(body["error"], "invalid_token", "{body}");
}

// --- A) discovery and gating -------------------------------------------------------------

async fn as_metadata_has_every_field_and_is_cacheable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .request(Method::GET, AS_METADATA, None)
        .header("Origin", "https://inspector.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cache = header(&res, "cache-control").unwrap_or_default().to_owned();
    assert!(!cache.contains("no-store"), "cache-control: {cache}");
    assert!(cache.contains("public"), "cache-control: {cache}");
    assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
    let doc = json_body(res).await;
    let issuer = app.url.clone();
    assert_eq!(
        doc["issuer"].as_str(),
        Some(issuer.as_str()),
        "byte-identical issuer"
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth2/tokens"));
    assert_eq!(
        doc["registration_endpoint"],
        format!("{issuer}/oauth2/register")
    );
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{issuer}/oauth2/revoke")
    );
    assert_eq!(doc["jwks_uri"], format!("{issuer}/oauth2/jwks"));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(
        doc["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("auth methods");
    for m in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(methods.contains(&json!(m)), "{m} in {methods:?}");
    }
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let scopes = doc["scopes_supported"].as_array().expect("scopes");
    assert!(scopes.contains(&json!("workspaces:read")), "{scopes:?}");

    // Browser-based clients (the MCP Inspector) preflight discovery and the machine endpoints
    // from other origins.
    let client_uri = format!("/oauth2/clients/{}", uuid::Uuid::new_v4());
    for (path, method, headers) in [
        (AS_METADATA, "GET", "mcp-protocol-version"),
        (PRM, "GET", "mcp-protocol-version"),
        ("/oauth2/register", "POST", "content-type"),
        ("/oauth2/tokens", "POST", "content-type,authorization"),
        ("/oauth2/revoke", "POST", "content-type,authorization"),
        (client_uri.as_str(), "PUT", "content-type,authorization"),
    ] {
        let res = app
            .request(Method::OPTIONS, path, None)
            .header("Origin", "https://inspector.example")
            .header("Access-Control-Request-Method", method)
            .header("Access-Control-Request-Headers", headers)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "OPTIONS {path}: {}",
            res.status()
        );
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let allowed = header(&res, "access-control-allow-methods").unwrap_or_default();
        assert!(allowed.contains(method), "{path}: {allowed}");
        let allowed = header(&res, "access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for h in headers.split(',') {
            assert!(allowed.contains(h), "{path}: {h} in {allowed}");
        }
    }
}

async fn as_metadata_answers_any_path_suffix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bare = json_body(app.get(AS_METADATA, None).await).await;
    let res = app.get(&format!("{AS_METADATA}/anything"), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await, bare);
    let res = app.get(&format!("{AS_METADATA}{MCP_PATH}"), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["issuer"].as_str(),
        Some(app.url.as_str())
    );
}

async fn protected_resource_metadata_is_path_aware(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .request(Method::GET, PRM, None)
        .header("Origin", "https://claude.ai")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "access-control-allow-origin"), Some("*"));
    let cache = header(&res, "cache-control").unwrap_or_default().to_owned();
    assert!(!cache.contains("no-store"), "cache-control: {cache}");
    let bare = json_body(res).await;
    assert_eq!(bare["resource"].as_str(), Some(app.url.as_str()));
    assert_eq!(bare["authorization_servers"], json!([app.url]));
    assert_eq!(bare["bearer_methods_supported"], json!(["header"]));
    assert!(
        bare["scopes_supported"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );

    let res = app.get(&format!("{PRM}{MCP_PATH}"), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mcp = json_body(res).await;
    assert_eq!(mcp["resource"], format!("{}{MCP_PATH}", app.url));
    assert_eq!(mcp["authorization_servers"], json!([app.url]));
    assert_eq!(mcp["bearer_methods_supported"], json!(["header"]));

    for other in ["/api/v2/users", "/other", "/api/experimental/mcp"] {
        let res = app.get(&format!("{PRM}{other}"), None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{other}");
        assert_eq!(json_body(res).await, json!({"message": "Route not found."}));
    }
}

async fn jwks_publishes_an_ed25519_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/oauth2/jwks", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let jwks = json_body(res).await;
    let keys = jwks["keys"].as_array().expect("keys");
    let key = keys
        .iter()
        .find(|k| k["kty"] == "OKP" && k["crv"] == "Ed25519")
        .unwrap_or_else(|| panic!("an Ed25519 key in {jwks}"));
    assert!(key["x"].as_str().is_some_and(|x| !x.is_empty()), "{key}");
    assert!(key["kid"].is_string(), "{key}");
    assert!(key.get("d").is_none(), "no private part: {key}");
}

async fn everything_is_404_when_the_experiment_is_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.experiments = Experiments::default()).await;
    let routes = [
        (Method::GET, AS_METADATA.to_owned()),
        (Method::GET, format!("{AS_METADATA}/anything")),
        (Method::GET, PRM.to_owned()),
        (Method::GET, format!("{PRM}{MCP_PATH}")),
        (Method::GET, "/oauth2/authorize".to_owned()),
        (Method::POST, "/oauth2/authorize".to_owned()),
        (Method::POST, "/oauth2/tokens".to_owned()),
        (Method::DELETE, "/oauth2/tokens?client_id=x".to_owned()),
        (Method::POST, "/oauth2/token".to_owned()),
        (Method::POST, "/oauth2/revoke".to_owned()),
        (Method::POST, "/oauth2/register".to_owned()),
        (Method::GET, "/oauth2/clients/x".to_owned()),
        (Method::PUT, "/oauth2/clients/x".to_owned()),
        (Method::DELETE, "/oauth2/clients/x".to_owned()),
        (Method::GET, "/oauth2/jwks".to_owned()),
        // Methods the routes would not take, too: no 405 betrays them.
        (Method::GET, "/oauth2/tokens".to_owned()),
        (Method::GET, "/oauth2/register".to_owned()),
        (Method::POST, AS_METADATA.to_owned()),
    ];
    for (method, path) in routes {
        let mut req = app.request(method.clone(), &path, None);
        if method == Method::POST && path == "/oauth2/register" {
            req = req.json(&json!({"redirect_uris": [CLAUDE_CALLBACK]}));
        } else if method == Method::POST {
            req = req.form(&[("grant_type", "authorization_code")]);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let text = res.text().await.unwrap();
        assert_eq!(text, r#"{"message":"Route not found."}"#, "{method} {path}");
    }
    // A CORS preflight gets no answer either.
    for path in [AS_METADATA, "/oauth2/register", "/oauth2/tokens"] {
        let res = app
            .request(Method::OPTIONS, path, None)
            .header("Origin", "https://inspector.example")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "OPTIONS {path}");
        assert!(
            header(&res, "access-control-allow-origin").is_none(),
            "OPTIONS {path}"
        );
        assert_eq!(json_body(res).await, json!({"message": "Route not found."}));
    }
}

async fn admin_api_names_the_experiment_when_it_is_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.experiments = Experiments::default()).await;
    let res = app.get("/api/v2/oauth2-provider/apps", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let owner = app.create_owner().await;
    for (method, path) in [
        (Method::GET, "/api/v2/oauth2-provider/apps"),
        (Method::POST, "/api/v2/oauth2-provider/apps"),
        (Method::GET, "/api/v2/oauth2-provider/settings"),
    ] {
        let mut req = app.request(method.clone(), path, Some(&owner));
        if method == Method::POST {
            req = req.json(&json!({"name": "x", "redirect_uris": [CLAUDE_CALLBACK]}));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method} {path}");
        let body = json_body(res).await;
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("'oauth2'"), "{method} {path}: {body}");
    }
}

async fn oauth2_responses_are_not_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let assert_no_store = |res: &Response, what: &str| {
        assert_eq!(header(res, "cache-control"), Some("no-store"), "{what}");
        assert_eq!(header(res, "pragma"), Some("no-cache"), "{what}");
    };

    let token_error = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(token_error.status(), StatusCode::BAD_REQUEST);
    assert_no_store(&token_error, "token error");
    assert_eq!(
        json_body(token_error).await["error"],
        "unsupported_grant_type"
    );

    let registered = register_raw(
        &app,
        &json!({"token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/cb"]}),
    )
    .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    assert_no_store(&registered, "register 201");
    let client_id = json_body(registered).await["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let revoked = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[("client_id", client_id.as_str()), ("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_no_store(&revoked, "revoke 200");
}

// --- B) RFC 7591 registration ------------------------------------------------------------

async fn claude_registration_gets_a_secret_and_echoes_its_method(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = register_raw(
        &app,
        &json!({
            "client_name": "claudeai",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "claudeai",
            "redirect_uris": [CLAUDE_CALLBACK],
        }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(
        header(&res, "content-type").is_some_and(|c| c.starts_with("application/json")),
        "JSON response"
    );
    let info = json_body(res).await;
    let id = info["client_id"].as_str().expect("client_id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert!(
        info["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 32),
        "{info}"
    );
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_post");
    assert!(
        info["registration_access_token"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        info["registration_client_uri"],
        format!("{}/oauth2/clients/{id}", app.url)
    );
    assert!(
        info["client_id_issued_at"].as_i64().is_some_and(|t| t > 0),
        "{info}"
    );
    assert_eq!(info["redirect_uris"], json!([CLAUDE_CALLBACK]));
    assert_eq!(
        info["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(info["response_types"], json!(["code"]));
    assert_eq!(info["client_name"], "claudeai");
}

async fn cursor_registration_is_public_and_keeps_every_redirect_uri(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let uris = json!([
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "https://www.cursor.com/agents/mcp/oauth/callback",
        "http://localhost:8787/callback",
    ]);
    let res = register_raw(
        &app,
        &json!({"client_name": "Cursor", "token_endpoint_auth_method": "none", "redirect_uris": uris}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let info = json_body(res).await;
    assert!(info.get("client_secret").is_none(), "{info}");
    assert!(info.get("client_secret_expires_at").is_none(), "{info}");
    assert_eq!(info["token_endpoint_auth_method"], "none");
    assert_eq!(info["redirect_uris"], uris);
    assert!(info["registration_access_token"].is_string(), "{info}");
}

async fn default_method_is_client_secret_basic_and_unknown_fields_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = register_raw(
        &app,
        &json!({
            "redirect_uris": ["https://app.example.com/callback"],
            "application_type": "web",
            "foo": {"bar": [1, 2, 3]},
            "software_statement": "eyJhbGciOiJub25lIn0.e30.",
            "jwks": {"keys": []},
        }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let info = json_body(res).await;
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_basic");
    assert!(info["client_secret"].is_string(), "{info}");
    assert!(info.get("foo").is_none(), "{info}");
    assert_eq!(
        info["client_name"], "app.example.com",
        "named after the redirect host"
    );

    // The default method is the one the token endpoint expects.
    let client = Client {
        id: info["client_id"].as_str().unwrap().to_owned(),
        secret: info["client_secret"].as_str().map(str::to_owned),
        registration_token: None,
        redirect_uri: "https://app.example.com/callback".into(),
        method: "client_secret_basic".into(),
    };
    let owner = app.create_owner().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
}

async fn bad_redirect_uris_are_invalid_redirect_uri(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad = [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "http://example.com/callback",
        "https://example.com/callback#fragment",
        "https://example.com/callback#",
        "not a uri",
    ];
    for method in ["client_secret_post", "none"] {
        for uri in bad {
            assert_register_error(
                &app,
                json!({"token_endpoint_auth_method": method, "redirect_uris": [uri]}),
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
            )
            .await;
            // One bad URI among good ones still fails the registration.
            assert_register_error(
                &app,
                json!({"token_endpoint_auth_method": method, "redirect_uris": [CLAUDE_CALLBACK, uri]}),
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
            )
            .await;
        }
    }
    assert_register_error(
        &app,
        json!({"client_name": "no uris"}),
        StatusCode::BAD_REQUEST,
        "invalid_redirect_uri",
    )
    .await;
    assert_register_error(
        &app,
        json!({"redirect_uris": []}),
        StatusCode::BAD_REQUEST,
        "invalid_redirect_uri",
    )
    .await;
}

async fn bad_metadata_is_invalid_client_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let uris = json!([CLAUDE_CALLBACK]);
    for body in [
        json!({"redirect_uris": uris, "grant_types": ["client_credentials"]}),
        json!({"redirect_uris": uris, "grant_types": ["authorization_code", "client_credentials"]}),
        json!({"redirect_uris": uris, "grant_types": ["refresh_token"]}),
        json!({"redirect_uris": uris, "response_types": ["token"]}),
        json!({"redirect_uris": uris, "response_types": ["code", "token"]}),
        json!({"redirect_uris": uris, "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"redirect_uris": uris, "token_endpoint_auth_method": "client_secret_jwt"}),
        json!({"redirect_uris": CLAUDE_CALLBACK}),
        json!({"redirect_uris": uris, "client_name": 42}),
        json!({"redirect_uris": uris, "grant_types": "authorization_code"}),
        json!({"redirect_uris": uris, "token_endpoint_auth_method": true}),
        json!({"redirect_uris": uris, "client_uri": "javascript:alert(1)"}),
        json!([{"redirect_uris": uris}]),
        json!("a string"),
        json!(null),
    ] {
        assert_register_error(
            &app,
            body,
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
        )
        .await;
    }

    for raw in [
        "{not json",
        "",
        "{\"redirect_uris\": [\"https://claude.ai/cb\"]",
    ] {
        let res = app
            .client
            .post(app.url("/oauth2/register"))
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{raw:?}");
        assert_eq!(
            json_body(res).await["error"],
            "invalid_client_metadata",
            "{raw:?}"
        );
    }

    let good = json!({"redirect_uris": uris}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = app
            .client
            .post(app.url("/oauth2/register"))
            .body(good.clone());
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{content_type:?}");
        assert!(
            json_body(res).await["error"].is_string(),
            "{content_type:?}"
        );
    }
    // Bodies over the size limit are refused before they are parsed.
    let big = json!({"redirect_uris": uris, "client_name": "x".repeat(100_000)});
    let res = register_raw(&app, &big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_body(res).await["error"], "invalid_client_metadata");

    // A charset parameter is fine.
    let res = app
        .client
        .post(app.url("/oauth2/register"))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

async fn duplicate_names_and_many_registrations_from_one_ip_are_fine(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // claude.ai registers anew on every connection, from shared egress addresses.
    let mut ids = std::collections::HashSet::new();
    for _ in 0..30 {
        let client = app.register_claude().await;
        assert!(ids.insert(client.id), "client ids are unique");
    }
    assert_eq!(ids.len(), 30);
}

async fn registration_is_rate_limited_per_ip_when_configured(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.oauth2.rate_limit_per_ip = 3;
    })
    .await;
    for _ in 0..3 {
        app.register_claude().await;
    }
    let body = json!({"redirect_uris": [CLAUDE_CALLBACK]});
    let res = register_raw(&app, &body).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = header(&res, "retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a numeric Retry-After");
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(json_body(res).await["error"].is_string());

    // The window is per minute: after it the client may register again.
    app.clock.advance(chrono::Duration::seconds(61));
    let res = register_raw(&app, &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

// --- C) RFC 7592 client configuration ----------------------------------------------------

async fn rfc7592_read_hides_the_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_claude().await;
    let token = client
        .registration_token
        .clone()
        .expect("registration token");
    let res = rfc7592(&app, Method::GET, &client.id, Some(&token), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    let info = json_body(res).await;
    assert_eq!(info["client_id"], client.id.as_str());
    assert_eq!(info["client_name"], "claudeai");
    assert_eq!(info["redirect_uris"], json!([CLAUDE_CALLBACK]));
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(
        info["registration_client_uri"],
        format!("{}/oauth2/clients/{}", app.url, client.id)
    );
    let text = info.to_string();
    assert!(
        info.get("registration_access_token")
            .is_none_or(Value::is_null),
        "{info}"
    );
    assert!(
        info.get("client_secret").is_none_or(Value::is_null),
        "{info}"
    );
    assert!(!text.contains(&token), "the token never comes back");
    assert!(
        !text.contains(client.secret.as_deref().unwrap()),
        "the secret never comes back"
    );
}

async fn rfc7592_refuses_every_wrong_credential_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.register_claude().await;
    let b = app.register_cursor().await;
    let a_token = a.registration_token.clone().unwrap();
    let b_token = b.registration_token.clone().unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: [(&str, Option<&str>); 6] = [
        (&a.id, None),
        (&a.id, Some("wrong-token")),
        (&a.id, Some(&b_token)),
        (&a.id, Some(a.secret.as_deref().unwrap())),
        ("not-a-uuid", Some(&a_token)),
        (&unknown, Some(&a_token)),
    ];
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for (id, token) in cases {
            let body = (method == Method::PUT).then(|| json!({"redirect_uris": [CLAUDE_CALLBACK]}));
            let res = rfc7592(&app, method.clone(), id, token, body.as_ref()).await;
            assert_invalid_registration_token(res).await;
        }
    }
    // A Basic header is not a registration token.
    let res = app
        .request(Method::GET, &client_path(&a.id), None)
        .basic_auth(&a.id, Some(&a_token))
        .send()
        .await
        .unwrap();
    assert_invalid_registration_token(res).await;
    // Nothing was changed or deleted by the refused calls.
    let res = rfc7592(&app, Method::GET, &a.id, Some(&a_token), None).await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn rfc7592_put_replaces_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_claude().await;
    let token = client.registration_token.clone().unwrap();
    let before = json_body(rfc7592(&app, Method::GET, &client.id, Some(&token), None).await).await;
    let new_uri = "https://claude.ai/api/mcp/auth_callback_v2";
    let body = json!({
        "client_id": client.id,
        "client_name": "Claude (renamed)",
        "redirect_uris": [new_uri],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
    });
    let res = rfc7592(&app, Method::PUT, &client.id, Some(&token), Some(&body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let info = json_body(res).await;
    assert_eq!(info["client_name"], "Claude (renamed)");
    assert_eq!(info["redirect_uris"], json!([new_uri]));
    assert_eq!(info["client_id_issued_at"], before["client_id_issued_at"]);
    assert!(
        info.get("registration_access_token")
            .is_none_or(Value::is_null)
    );

    let read = json_body(rfc7592(&app, Method::GET, &client.id, Some(&token), None).await).await;
    assert_eq!(read["client_name"], "Claude (renamed)");
    assert_eq!(read["redirect_uris"], json!([new_uri]));

    // The old redirect URI no longer authorizes; the new one does, and the secret still works.
    let owner = app.create_owner().await;
    let moved = Client {
        redirect_uri: new_uri.into(),
        ..client.clone()
    };
    let tokens = app.obtain_tokens(&owner, &moved).await;
    assert!(tokens["access_token"].is_string());
    let old = crate::oauth_client::AuthRequest::for_client(&client);
    let res = app.authorize_get(Some(&owner), &old).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "old redirect URI refused"
    );

    // Bad metadata in a PUT is refused like at registration.
    let bad = json!({"redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "client_secret_post"});
    let res = rfc7592(&app, Method::PUT, &client.id, Some(&token), Some(&bad)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_redirect_uri");
}

async fn rfc7592_put_cannot_switch_client_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let claude = app.register_claude().await;
    let cursor = app.register_cursor().await;
    let to_public =
        json!({"redirect_uris": [CLAUDE_CALLBACK], "token_endpoint_auth_method": "none"});
    let res = rfc7592(
        &app,
        Method::PUT,
        &claude.id,
        claude.registration_token.as_deref(),
        Some(&to_public),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_client_metadata");

    let to_confidential = json!({
        "redirect_uris": ["http://localhost:8787/callback"],
        "token_endpoint_auth_method": "client_secret_post",
    });
    let res = rfc7592(
        &app,
        Method::PUT,
        &cursor.id,
        cursor.registration_token.as_deref(),
        Some(&to_confidential),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_client_metadata");

    // Both clients are unchanged.
    let info = json_body(
        rfc7592(
            &app,
            Method::GET,
            &cursor.id,
            cursor.registration_token.as_deref(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(info["token_endpoint_auth_method"], "none");
    let info = json_body(
        rfc7592(
            &app,
            Method::GET,
            &claude.id,
            claude.registration_token.as_deref(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_post");
}

async fn rfc7592_put_refuses_another_client_id_and_wider_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app
        .register_client(json!({
            "client_name": "narrow",
            "token_endpoint_auth_method": "none",
            "scope": "workspaces:read",
            "redirect_uris": ["http://127.0.0.1/callback"],
        }))
        .await;
    let token = client.registration_token.clone().unwrap();
    let base = json!({"token_endpoint_auth_method": "none", "redirect_uris": ["http://127.0.0.1/callback"]});

    let mut other_id = base.clone();
    other_id["client_id"] = json!(uuid::Uuid::new_v4().to_string());
    let res = rfc7592(&app, Method::PUT, &client.id, Some(&token), Some(&other_id)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_client_metadata");

    let mut wider = base.clone();
    wider["scope"] = json!("workspaces:read workspaces:exec");
    let res = rfc7592(&app, Method::PUT, &client.id, Some(&token), Some(&wider)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_client_metadata");

    let info = json_body(rfc7592(&app, Method::GET, &client.id, Some(&token), None).await).await;
    assert_eq!(info["scope"], "workspaces:read");

    // The same scope (and the matching client_id) is accepted.
    let mut same = base.clone();
    same["scope"] = json!("workspaces:read");
    same["client_id"] = json!(client.id);
    let res = rfc7592(&app, Method::PUT, &client.id, Some(&token), Some(&same)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["scope"], "workspaces:read");
}

async fn rfc7592_delete_revokes_everything_issued(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let token = client.registration_token.clone().unwrap();
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        app.state.access_tokens.verify(&access).await.is_ok(),
        "valid before delete"
    );

    let res = rfc7592(&app, Method::DELETE, &client.id, Some(&token), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));

    assert_invalid_registration_token(
        rfc7592(&app, Method::GET, &client.id, Some(&token), None).await,
    )
    .await;
    assert_invalid_registration_token(
        rfc7592(&app, Method::DELETE, &client.id, Some(&token), None).await,
    )
    .await;
    assert!(
        app.state.access_tokens.verify(&access).await.is_err(),
        "revoked with its client"
    );

    let res = app.refresh_tokens(&client, &refresh).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(res).await["error"], "invalid_client");
}

// --- D) the registration switch ----------------------------------------------------------

async fn owner_can_turn_registration_off_and_on(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let settings = "/api/v2/oauth2-provider/settings";
    let put = |token: String, enabled: bool| {
        let req = app
            .request(Method::PUT, settings, Some(&token))
            .json(&json!({"dynamic_client_registration_enabled": enabled}));
        async move { req.send().await.unwrap() }
    };

    let res = app.get(settings, Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["dynamic_client_registration_enabled"],
        true
    );

    let res = put(member.clone(), false).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.get(settings, Some(&member)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = put(owner.clone(), false).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["dynamic_client_registration_enabled"],
        false
    );
    let res = app.get(settings, Some(&owner)).await;
    assert_eq!(
        json_body(res).await["dynamic_client_registration_enabled"],
        false
    );

    let res = register_raw(&app, &json!({"redirect_uris": [CLAUDE_CALLBACK]})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&res, "cache-control"), Some("no-store"));
    let err = json_body(res).await;
    assert!(err["error"].is_string(), "an OAuth error: {err}");
    assert!(err["error_description"].is_string(), "{err}");
    let doc = json_body(app.get(AS_METADATA, None).await).await;
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    assert_eq!(doc["issuer"].as_str(), Some(app.url.as_str()));

    let res = put(owner.clone(), true).await;
    assert_eq!(res.status(), StatusCode::OK);
    let doc = json_body(app.get(AS_METADATA, None).await).await;
    assert_eq!(
        doc["registration_endpoint"],
        format!("{}/oauth2/register", app.url)
    );
    app.register_claude().await;
}
