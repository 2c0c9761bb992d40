//! Issue 15's device authorization grant (RFC 8628): the device authorization endpoint, who may
//! use it, and its advertisement in the authorization server metadata.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body, location};
use crate::oauth_client::Client;
use crate::oauth_pages::Browser;

both_backends!(
    device_authorization_issues_codes,
    device_authorization_authenticates_confidential_clients,
    device_authorization_refuses_bad_requests,
    device_authorization_is_rate_limited_per_ip,
    device_grant_is_advertised,
    verification_page_approves_after_sign_in,
    verification_page_denies,
    verification_page_checks_csrf,
    verification_page_limits_wrong_codes,
    device_grant_issues_tokens_once_after_approval,
    device_grant_reports_denial_and_expiry,
    denied_device_code_is_used_up,
    device_only_clients_register_without_redirect_uris,
    owners_give_apps_the_device_grant,
);

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const USER_CODE_ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";

impl TestApp {
    /// A public client (a CLI) registered for the device grant.
    async fn register_device_client(&self) -> Client {
        self.register_client(json!({
            "client_name": "Device CLI",
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
        }))
        .await
    }

    /// A device request from the device client; the user code as shown.
    async fn start_device(&self, client: &Client) -> Value {
        let res = self
            .device_request(&[
                ("client_id", &client.id),
                ("scope", "workspaces:read user:read"),
            ])
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        json_body(res).await
    }

    async fn poll(&self, client: &Client, device_code: &str) -> Response {
        self.token_request(
            client,
            vec![
                ("grant_type", DEVICE_GRANT.to_owned()),
                ("device_code", device_code.to_owned()),
            ],
        )
        .await
    }

    async fn device_request(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/oauth2/device"))
            .form(form)
            .send()
            .await
            .expect("request")
    }
}

async fn oauth_error(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status);
    let body = json_body(res).await;
    assert_eq!(body["error"], code, "{body}");
    body
}

fn is_user_code(shown: &str) -> bool {
    let (head, tail) = shown.split_once('-').unwrap_or_default();
    head.len() == 4
        && tail.len() == 4
        && head
            .chars()
            .chain(tail.chars())
            .all(|c| USER_CODE_ALPHABET.contains(c))
}

/// RFC 8628 §3.2: every field, with the verification URI under the access URL and the code
/// prefilled in the complete one; never cached; a fresh pair each time.
async fn device_authorization_issues_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_device_client().await;
    let res = app
        .device_request(&[("client_id", &client.id), ("scope", "workspaces:read")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
    assert_eq!(cache, "no-store");
    let body = json_body(res).await;
    let user_code = body["user_code"].as_str().unwrap();
    assert!(is_user_code(user_code), "{user_code}");
    let verify = format!("{}/oauth2/device/verify", app.url);
    assert_eq!(body["verification_uri"], verify);
    assert_eq!(
        body["verification_uri_complete"],
        format!("{verify}?user_code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    let device_code = body["device_code"].as_str().unwrap();
    assert!(device_code.len() >= 40, "{device_code}");

    let again = json_body(app.device_request(&[("client_id", &client.id)]).await).await;
    assert_ne!(again["device_code"], body["device_code"]);
    assert_ne!(again["user_code"], body["user_code"]);
}

/// §3.1: a confidential client authenticates as at the token endpoint.
async fn device_authorization_authenticates_confidential_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app
        .register_client(json!({
            "client_name": "TV app",
            "token_endpoint_auth_method": "client_secret_basic",
            "redirect_uris": ["https://tv.example/cb"],
            "grant_types": ["authorization_code", DEVICE_GRANT],
        }))
        .await;
    let secret = client.secret.clone().unwrap();
    let res = app
        .client
        .post(app.url("/oauth2/device"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[("scope", "user:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(json_body(res).await["device_code"].is_string());

    let no_secret = app.device_request(&[("client_id", &client.id)]).await;
    oauth_error(no_secret, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let wrong = app
        .client
        .post(app.url("/oauth2/device"))
        .basic_auth(
            &client.id,
            Some("coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        )
        .form(&[("scope", "user:read")])
        .send()
        .await
        .unwrap();
    oauth_error(wrong, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// Each refusal with its RFC 6749 §5.2 / RFC 8707 code.
async fn device_authorization_refuses_bad_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let device = app.register_device_client().await;

    // A client that did not register the device grant.
    let cursor = app.register_cursor().await;
    let res = app.device_request(&[("client_id", &cursor.id)]).await;
    let body = oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(DEVICE_GRANT)
    );

    let unknown = app
        .device_request(&[("client_id", "5f0e5a43-0000-4000-8000-000000000000")])
        .await;
    oauth_error(unknown, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let none = app.device_request(&[("scope", "user:read")]).await;
    oauth_error(none, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let elsewhere = app
        .device_request(&[
            ("client_id", &device.id),
            ("resource", "https://elsewhere.example/"),
        ])
        .await;
    oauth_error(elsewhere, StatusCode::BAD_REQUEST, "invalid_target").await;
    let mcp = format!("{}/api/experimental/mcp/http", app.url);
    let ok = app
        .device_request(&[("client_id", &device.id), ("resource", &mcp)])
        .await;
    assert_eq!(ok.status(), StatusCode::OK);

    // The client's allowlist leaves nothing of what was asked.
    let narrow = app
        .register_client(json!({
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", DEVICE_GRANT],
            "scope": "user:read",
        }))
        .await;
    let res = app
        .device_request(&[("client_id", &narrow.id), ("scope", "templates:write")])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_scope").await;

    let repeated = app
        .device_request(&[
            ("client_id", &device.id),
            ("scope", "user:read"),
            ("scope", "x"),
        ])
        .await;
    oauth_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Registration accepts the device grant, and still nothing it does not serve.
    let res = app
        .post_json(
            "/oauth2/register",
            None,
            &json!({
                "redirect_uris": ["https://x.example/cb"],
                "grant_types": ["authorization_code", DEVICE_GRANT, "client_credentials"],
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

/// Counted per IP before anything is read, like the other OAuth endpoints.
async fn device_authorization_is_rate_limited_per_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.rate_limit_per_ip = 2;
    })
    .await;
    let client = app.register_device_client().await;
    for _ in 0..2 {
        let res = app.device_request(&[("client_id", &client.id)]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = app.device_request(&[("client_id", &client.id)]).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

/// RFC 8628 §4: the endpoint and the grant type in the authorization server metadata.
async fn device_grant_is_advertised(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = json_body(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{}/oauth2/device", app.url)
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_GRANT)),
        "{doc}"
    );
}

fn verify_path(user_code: &str) -> String {
    format!("/oauth2/device/verify?user_code={user_code}")
}

/// RFC 8628 §3.3: a visitor signs in first and comes back to the code; the page names the client
/// and the scopes; approving is audited as consent is, and a code is decided once.
async fn verification_page_approves_after_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;
    let started = app.start_device(&client).await;
    let user_code = started["user_code"].as_str().unwrap();

    let mut visitor = Browser::new(&app, None);
    let res = visitor.get(&verify_path(user_code)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back: String =
        url::form_urlencoded::byte_serialize(verify_path(user_code).as_bytes()).collect();
    assert_eq!(location(&res), format!("/login?redirect={back}"));

    let mut browser = Browser::new(&app, Some(&owner));
    let form = browser.page("/oauth2/device/verify").await;
    assert!(form.contains("name=\"user_code\""), "{form}");
    // Typed in lower case without the dash: the same code.
    let html = browser
        .page(&verify_path(&user_code.replace('-', "").to_lowercase()))
        .await;
    assert!(html.contains("Device CLI"), "{html}");
    assert!(
        html.contains("workspaces:read") && html.contains("user:read"),
        "{html}"
    );
    assert!(html.contains(user_code), "{html}");
    let normalized = user_code.replace('-', "");
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", &normalized), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Device connected"));

    let logs = app.audit_logs().await;
    let allow = logs
        .iter()
        .find(|e| e.action == "oauth2.consent.allow")
        .expect("consent audited");
    assert_eq!(
        allow.client_id.map(|c| c.0.to_string()),
        Some(client.id.clone())
    );
    assert_eq!(allow.details["grant_type"], DEVICE_GRANT);

    let again = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", &normalized), ("action", "allow")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("already used"));
    assert!(!html.contains("Powerful permissions"), "{html}");

    // A request for a powerful scope shows it apart, under a warning.
    let res = app
        .device_request(&[
            ("client_id", &client.id),
            ("scope", "user:read workspaces:exec"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let code = json_body(res).await["user_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let html = browser.page(&verify_path(&code)).await;
    let (ordinary, powerful) = html
        .split_once("<h2 id=\"powerful-heading\">Powerful permissions</h2>")
        .expect("the warning heading");
    assert!(ordinary.contains("<strong>user:read</strong>"), "{html}");
    assert!(
        !ordinary.contains("<strong>workspaces:exec</strong>"),
        "{html}"
    );
    assert!(
        powerful.contains("<strong>workspaces:exec</strong>"),
        "{html}"
    );
}

async fn verification_page_denies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;
    let started = app.start_device(&client).await;
    let user_code = started["user_code"].as_str().unwrap();
    let mut browser = Browser::new(&app, Some(&owner));
    browser.page(&verify_path(user_code)).await;
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", "deny")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("Request denied"));
    assert!(
        app.audit_logs()
            .await
            .iter()
            .any(|e| e.action == "oauth2.consent.deny")
    );
}

/// The decision needs this session's CSRF token, exactly as the consent page does.
async fn verification_page_checks_csrf(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;
    let started = app.start_device(&client).await;
    let user_code = started["user_code"].as_str().unwrap();
    let mut browser = Browser::new(&app, Some(&owner));
    browser.page(&verify_path(user_code)).await;
    let forged = browser
        .post_raw(
            "/oauth2/device/verify",
            &[
                ("user_code", user_code),
                ("action", "allow"),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let cross_site = app
        .client
        .post(app.url("/oauth2/device/verify"))
        .header("Cookie", format!("coder_session_token={owner}"))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("user_code", user_code), ("action", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    // Still pending: the real form goes through.
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// RFC 8628 §5.1: user codes are short, so wrong guesses are counted and then refused.
async fn verification_page_limits_wrong_codes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.rate_limit_per_ip = 3;
    })
    .await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    for wrong in ["BCDF-GHJK", "bcdfghjm", "not-a-code"] {
        let res = browser.get(&verify_path(wrong)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{wrong}");
        assert!(res.text().await.unwrap().contains("not valid"));
    }
    let res = browser.get(&verify_path("BCDF-GHJN")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
}

/// RFC 8628 §3.4–3.5 through the real page: pending while the user decides, slow_down (and a
/// longer interval) when polled too fast, then an access token that works and a refresh token,
/// once.
async fn device_grant_issues_tokens_once_after_approval(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;
    let started = app.start_device(&client).await;
    let device_code = started["device_code"].as_str().unwrap();
    let user_code = started["user_code"].as_str().unwrap();

    let pending = app.poll(&client, device_code).await;
    oauth_error(pending, StatusCode::BAD_REQUEST, "authorization_pending").await;
    // Polled again at once: slow down, and the interval for this code is now 10 s.
    app.clock.advance(chrono::Duration::seconds(1));
    let fast = app.poll(&client, device_code).await;
    oauth_error(fast, StatusCode::BAD_REQUEST, "slow_down").await;
    app.clock.advance(chrono::Duration::seconds(6));
    let still_fast = app.poll(&client, device_code).await;
    oauth_error(still_fast, StatusCode::BAD_REQUEST, "slow_down").await;
    app.clock.advance(chrono::Duration::seconds(16));
    let pending = app.poll(&client, device_code).await;
    oauth_error(pending, StatusCode::BAD_REQUEST, "authorization_pending").await;

    let mut browser = Browser::new(&app, Some(&owner));
    browser.page(&verify_path(user_code)).await;
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", "allow")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Another client cannot redeem it.
    let other = app.register_device_client().await;
    app.clock.advance(chrono::Duration::seconds(30));
    let stolen = app.poll(&other, device_code).await;
    oauth_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let res = app.poll(&client, device_code).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "user:read workspaces:read");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    // An MCP access token (its audience), valid for the approving user.
    app.state
        .access_tokens
        .verify(access)
        .await
        .expect("a valid access token");
    let me = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await;
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], me["id"]);
    assert_eq!(claims["client_id"], client.id.as_str());
    let refreshed = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    app.clock.advance(chrono::Duration::seconds(30));
    let replay = app.poll(&client, device_code).await;
    oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

async fn device_grant_reports_denial_and_expiry(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;

    let denied = app.start_device(&client).await;
    let mut browser = Browser::new(&app, Some(&owner));
    let user_code = denied["user_code"].as_str().unwrap();
    browser.page(&verify_path(user_code)).await;
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", "deny")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .poll(&client, denied["device_code"].as_str().unwrap())
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "access_denied").await;

    let expired = app.start_device(&client).await;
    app.clock.advance(chrono::Duration::minutes(10));
    let res = app
        .poll(&client, expired["device_code"].as_str().unwrap())
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "expired_token").await;
    // The page refuses the expired code too.
    let res = browser
        .get(&verify_path(expired["user_code"].as_str().unwrap()))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("expired"));

    let res = app
        .poll(
            &client,
            "coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        )
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let res = app
        .token_request(&client, vec![("grant_type", DEVICE_GRANT.to_owned())])
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A client that did not register the grant.
    let cursor = app.register_cursor().await;
    let res = app
        .poll(&cursor, denied["device_code"].as_str().unwrap())
        .await;
    oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

/// RFC 8628 §3.5: `access_denied` is answered once and uses the code up; a later poll is
/// `invalid_grant` like any used code (the reading `oauth::token` documents).
async fn denied_device_code_is_used_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_device_client().await;
    let started = app.start_device(&client).await;
    let device_code = started["device_code"].as_str().unwrap();
    let user_code = started["user_code"].as_str().unwrap();
    let mut browser = Browser::new(&app, Some(&owner));
    browser.page(&verify_path(user_code)).await;
    let res = browser
        .post(
            "/oauth2/device/verify",
            &[("user_code", user_code), ("action", "deny")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.poll(&client, device_code).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "access_denied").await;
    for _ in 0..2 {
        app.clock.advance(chrono::Duration::seconds(30));
        let res = app.poll(&client, device_code).await;
        oauth_error(res, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
}

/// RFC 7591 with RFC 8628: a client that only uses the device grant registers without redirect
/// URIs and response types, and gets device codes; asking for authorization_code still needs a
/// redirect URI, and response types must match the grants.
async fn device_only_clients_register_without_redirect_uris(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in [
        json!({"client_name": "TV", "token_endpoint_auth_method": "none", "grant_types": [DEVICE_GRANT]}),
        json!({"token_endpoint_auth_method": "none", "grant_types": [DEVICE_GRANT, "refresh_token"], "response_types": [], "redirect_uris": []}),
    ] {
        let res = app.post_json("/oauth2/register", None, &body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{body}");
        let info = json_body(res).await;
        assert_eq!(info["redirect_uris"], json!([]), "{info}");
        assert_eq!(info["response_types"], json!([]), "{info}");
        let client_id = info["client_id"].as_str().unwrap();
        let res = app.device_request(&[("client_id", client_id)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{info}");
    }
    for (body, error) in [
        (
            json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", DEVICE_GRANT]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "grant_types": [DEVICE_GRANT], "response_types": ["code"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "grant_types": ["refresh_token"]}),
            "invalid_client_metadata",
        ),
    ] {
        let res = app.post_json("/oauth2/register", None, &body).await;
        let err = oauth_error(res, StatusCode::BAD_REQUEST, error).await;
        assert!(err["error_description"].is_string(), "{body}");
    }
}

/// Owners choose an application's grant types: the device grant alone needs no callback URL;
/// omitting the field keeps them (a new app: authorization_code and refresh_token); an unknown
/// one is a Coder 400 naming `grant_types`.
async fn owners_give_apps_the_device_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    const APPS: &str = "/api/v2/oauth2-provider/apps";

    let res = app
        .post_json(
            APPS,
            Some(&owner),
            &json!({"name": "kiosk", "grant_types": [DEVICE_GRANT, "refresh_token"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let kiosk = json_body(res).await;
    assert_eq!(kiosk["grant_types"], json!([DEVICE_GRANT, "refresh_token"]));
    assert_eq!(kiosk["redirect_uris"], json!([]));
    let id = kiosk["id"].as_str().unwrap().to_owned();
    let secret = json_body(
        app.post_json(&format!("{APPS}/{id}/secrets"), Some(&owner), &json!({}))
            .await,
    )
    .await["client_secret_full"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/oauth2/device"))
        .basic_auth(&id, Some(&secret))
        .form(&[("scope", "user:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Omitted: a new app gets the defaults, and cannot ask for device codes.
    let res = app
        .post_json(
            APPS,
            Some(&owner),
            &json!({"name": "web", "callback_url": "https://web.example/cb"}),
        )
        .await;
    let web = json_body(res).await;
    assert_eq!(
        web["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let web_id = web["id"].as_str().unwrap().to_owned();
    let path = format!("{APPS}/{web_id}");
    let put = |body: Value| {
        let path = path.clone();
        let owner = owner.clone();
        let app = &app;
        async move {
            app.request(reqwest::Method::PUT, &path, Some(&owner))
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let res = put(json!({"name": "web", "callback_url": "https://web.example/cb", "grant_types": ["authorization_code", DEVICE_GRANT]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["grant_types"],
        json!(["authorization_code", DEVICE_GRANT])
    );
    // Omitted on update: kept.
    let res = put(json!({"name": "web 2", "callback_url": "https://web.example/cb"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["grant_types"],
        json!(["authorization_code", DEVICE_GRANT])
    );

    for body in [
        json!({"name": "x", "callback_url": "https://x.example/cb", "grant_types": ["client_credentials"]}),
        json!({"name": "x", "callback_url": "https://x.example/cb", "grant_types": ["refresh_token"]}),
        json!({"name": "x", "callback_url": "https://x.example/cb", "grant_types": []}),
    ] {
        let res = app.post_json(APPS, Some(&owner), &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err = json_body(res).await;
        assert!(err["message"].is_string(), "{err}");
        assert_eq!(err["validations"][0]["field"], "grant_types", "{err}");
    }
    // The authorization code grant still needs a callback URL.
    let res = app
        .post_json(
            APPS,
            Some(&owner),
            &json!({"name": "x", "grant_types": ["authorization_code"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_body(res).await["validations"][0]["field"],
        "redirect_uris"
    );
}
