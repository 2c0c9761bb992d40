//! Issue 15's hardening of the authorization server and the pages: rate limits that a stranger
//! cannot spend for others, registration caps, sign-in backoff and bounded password hashing,
//! CSRF bound to the session, refresh edge cases and the MCP endpoint's audience.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, json_body};
use crate::mcp_support::rpc;
use crate::oauth_client::{AuthRequest, Client, MCP_PATH, hidden_field};

both_backends!(
    authorize_client_limit_is_per_client_and_ip,
    public_client_token_limit_is_per_client_and_ip,
    ip_limits_count_ipv6_by_its_64,
    registration_caps_every_field,
    registration_has_a_global_hourly_cap,
    registration_caps_unused_clients,
    login_backs_off_per_account,
    password_hashing_is_bounded,
    refresh_for_a_suspended_user_is_invalid_grant,
    token_requests_check_the_user_read_with_the_code_or_token,
    a_client_cannot_authenticate_with_another_clients_secret,
    refresh_naming_only_unknown_scopes_is_invalid_scope,
    mcp_accepts_only_its_own_url_as_audience,
    mcp_internal_errors_are_not_401s,
    consent_csrf_token_is_bound_to_the_session,
    forms_refuse_cross_site_requests,
);

/// The app behind a trusted proxy on 127.0.0.1, so `X-Forwarded-For` names the caller, with
/// per-IP and per-client limits per minute.
async fn behind_proxy(backend: Backend, per_ip: u32, per_client: u32) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.proxy_trusted_origins = vec![coderd::config::IpNetwork::parse("127.0.0.1/32").unwrap()];
        c.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        c.oauth2.rate_limit_per_ip = per_ip;
        c.oauth2.rate_limit_per_client = per_client;
    })
    .await
}

impl TestApp {
    async fn authorize_from(&self, ip: &str, req: &AuthRequest) -> StatusCode {
        self.client
            .get(self.url("/oauth2/authorize"))
            .query(&req.query())
            .header("X-Forwarded-For", ip)
            .send()
            .await
            .expect("request")
            .status()
    }

    async fn bogus_refresh_from(&self, ip: &str, client: &Client) -> StatusCode {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "coder_x".to_owned()),
            ("client_id", client.id.clone()),
        ];
        if let Some(secret) = &client.secret {
            form.push(("client_secret", secret.clone()));
        }
        self.client
            .post(self.url("/oauth2/tokens"))
            .header("X-Forwarded-For", ip)
            .form(&form)
            .send()
            .await
            .expect("request")
            .status()
    }
}

/// Naming a client at the authorization endpoint proves nothing: a stranger who floods it with a
/// client's id is limited, and that client's users elsewhere are not.
async fn authorize_client_limit_is_per_client_and_ip(backend: Backend) {
    let app = behind_proxy(backend, 1_000, 2).await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let attacker = "203.0.113.9";
    // Not signed in: each request is a redirect to the sign-in page.
    assert_eq!(
        app.authorize_from(attacker, &req).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.authorize_from(attacker, &req).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.authorize_from(attacker, &req).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.authorize_from("198.51.100.7", &req).await,
        StatusCode::SEE_OTHER,
        "a user elsewhere still reaches the client"
    );
}

/// A public client authenticates with its id alone, so its token-endpoint budget is counted per
/// IP too; a confidential client proved its secret and keeps one budget wherever it calls from.
async fn public_client_token_limit_is_per_client_and_ip(backend: Backend) {
    let app = behind_proxy(backend, 1_000, 2).await;
    let public = app.register_cursor().await;
    let attacker = "203.0.113.9";
    for _ in 0..2 {
        assert_eq!(
            app.bogus_refresh_from(attacker, &public).await,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.bogus_refresh_from(attacker, &public).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.bogus_refresh_from("198.51.100.7", &public).await,
        StatusCode::BAD_REQUEST,
        "the public client's users elsewhere are not locked out"
    );

    let confidential = app.register_claude().await;
    for ip in ["203.0.113.9", "198.51.100.7"] {
        assert_eq!(
            app.bogus_refresh_from(ip, &confidential).await,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        app.bogus_refresh_from("192.0.2.1", &confidential).await,
        StatusCode::TOO_MANY_REQUESTS,
        "an authenticated client has one budget"
    );
}

/// One IPv6 host holds a whole /64: rotating addresses inside it does not escape the limit.
async fn ip_limits_count_ipv6_by_its_64(backend: Backend) {
    let app = behind_proxy(backend, 2, 1_000).await;
    let register = |ip: &'static str| {
        app.client
            .post(app.url("/oauth2/register"))
            .header("X-Forwarded-For", ip)
            .json(&json!({"redirect_uris": ["https://example.com/cb"]}))
            .send()
    };
    assert_eq!(
        register("2001:db8:1:2::1").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register("2001:db8:1:2:aaaa::2").await.unwrap().status(),
        StatusCode::CREATED
    );
    let limited = register("2001:db8:1:2:ffff:1:2:3").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(json_body(limited).await["error"], "invalid_request");
    assert_eq!(
        register("2001:db8:1:3::1").await.unwrap().status(),
        StatusCode::CREATED,
        "another /64 is another host"
    );
}

async fn register_raw(app: &TestApp, ip: &str, body: &serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url("/oauth2/register"))
        .header("X-Forwarded-For", ip)
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Every string and list a client registers is bounded; the consent page shows them.
async fn registration_caps_every_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cb = "https://example.com/cb";
    let long_uri = format!("https://example.com/{}", "a".repeat(2100));
    let cases = [
        json!({"redirect_uris": [cb], "client_name": "n".repeat(257)}),
        json!({"redirect_uris": [cb], "scope": "user:read ".repeat(120)}),
        json!({"redirect_uris": [cb], "client_uri": long_uri}),
        json!({"redirect_uris": [cb], "logo_uri": long_uri}),
        json!({"redirect_uris": [cb], "tos_uri": long_uri}),
        json!({"redirect_uris": [cb], "policy_uri": long_uri}),
        json!({"redirect_uris": [long_uri]}),
        json!({"redirect_uris": [cb], "software_id": "s".repeat(257)}),
        json!({"redirect_uris": [cb], "software_version": "v".repeat(257)}),
        json!({"redirect_uris": [cb], "contacts": ["c".repeat(257)]}),
        json!({"redirect_uris": [cb], "grant_types": vec!["authorization_code"; 9]}),
        json!({"redirect_uris": [cb], "response_types": vec!["code"; 9]}),
    ];
    for body in cases {
        let res = register_raw(&app, "127.0.0.1", &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = json_body(res).await["error"].as_str().unwrap().to_owned();
        assert!(
            error == "invalid_client_metadata" || error == "invalid_redirect_uri",
            "{error} for {body}"
        );
    }
    // At the caps, it is accepted (a long name is shown cut).
    let res = register_raw(
        &app,
        "127.0.0.1",
        &json!({"redirect_uris": [cb], "client_name": "n".repeat(256), "scope": "user:read"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// Many addresses together cannot register without bound: a deployment-wide hourly cap.
async fn registration_has_a_global_hourly_cap(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.proxy_trusted_origins = vec![coderd::config::IpNetwork::parse("127.0.0.1/32").unwrap()];
        c.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
        c.oauth2.registrations_per_hour = 3;
    })
    .await;
    let body = json!({"redirect_uris": ["https://example.com/cb"]});
    for i in 1..=3 {
        let res = register_raw(&app, &format!("198.51.100.{i}"), &body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let limited = register_raw(&app, "203.0.113.50", &body).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    app.clock.advance(Duration::minutes(61));
    assert_eq!(
        register_raw(&app, "203.0.113.50", &body).await.status(),
        StatusCode::CREATED
    );
}

/// Clients registered and never used are capped; using one frees a place.
async fn registration_caps_unused_clients(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.max_unused_dynamic_clients = 2;
    })
    .await;
    let owner = app.create_owner().await;
    let first = app.register_claude().await;
    app.register_claude().await;
    let body = json!({"redirect_uris": ["https://example.com/cb"]});
    let full = register_raw(&app, "127.0.0.1", &body).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(full.headers().get("retry-after").is_some());
    assert_eq!(json_body(full).await["error"], "invalid_request");
    app.obtain_tokens(&owner, &first).await;
    assert_eq!(
        register_raw(&app, "127.0.0.1", &body).await.status(),
        StatusCode::CREATED
    );
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v2/users/login"))
        .header("X-Forwarded-For", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request")
}

/// Wrong passwords from many addresses still slow down the account they target, without
/// touching other accounts; the right password after the backoff works.
async fn login_backs_off_per_account(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.proxy_trusted_origins = vec![coderd::config::IpNetwork::parse("127.0.0.1/32").unwrap()];
        c.proxy_trusted_headers = vec!["X-Forwarded-For".into()];
    })
    .await;
    let owner = app.create_owner().await;
    app.create_member(&owner, "bob").await;
    for i in 1..=6 {
        let res = login_from(
            &app,
            &format!("198.51.100.{i}"),
            "owner@example.com",
            "wrong-password",
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let blocked = login_from(&app, "203.0.113.1", "OWNER@example.com", PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.headers()["retry-after"], "1");
    assert_eq!(
        login_from(&app, "203.0.113.1", "bob@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED,
        "other accounts are not affected"
    );
    // Each further failure doubles the wait.
    app.clock.advance(Duration::seconds(1));
    assert_eq!(
        login_from(&app, "203.0.113.2", "owner@example.com", "wrong-again")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let blocked = login_from(&app, "203.0.113.1", "owner@example.com", PASSWORD).await;
    assert_eq!(blocked.headers()["retry-after"], "2");
    app.clock.advance(Duration::seconds(2));
    assert_eq!(
        login_from(&app, "203.0.113.1", "owner@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
    // A success starts over: one wrong password costs nothing again.
    assert_eq!(
        login_from(&app, "203.0.113.2", "owner@example.com", "wrong-again")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_from(&app, "203.0.113.1", "owner@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
}

/// A burst of sign-ins does not start a hash each: the excess waits briefly, then gets a 503
/// with Retry-After, and the server keeps answering.
async fn password_hashing_is_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.password_hash_concurrency = 1;
        c.password_hash_wait = std::time::Duration::ZERO;
    })
    .await;
    app.create_owner().await;
    let burst = (0..8).map(|_| login_from(&app, "127.0.0.1", "owner@example.com", PASSWORD));
    let responses = futures_util::future::join_all(burst).await;
    let mut busy = 0;
    for res in responses {
        match res.status() {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(res.headers().get("retry-after").is_some());
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "eight logins at once with one hashing slot");
    assert_eq!(
        login_from(&app, "127.0.0.1", "owner@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
}

async fn oauth_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body = json_body(res).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A suspended user's grants stop working at the next refresh (RFC 6749 §5.2 `invalid_grant`).
async fn refresh_for_a_suspended_user_is_invalid_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&bob, &client).await;
    app.execute_sql("UPDATE users SET status = 'suspended' WHERE username = 'bob'")
        .await;
    let res = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
}

/// The token endpoint reads a code's or a refresh token's user in the same query as the code or
/// token (and its grant): a suspended or deleted user's code and refresh token are still
/// `invalid_grant`, each with its own reason, and the user checks come after the token's own.
async fn token_requests_check_the_user_read_with_the_code_or_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let client = app.register_claude().await;
    let description = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = json_body(res).await;
        assert_eq!(body["error"], "invalid_grant");
        body["error_description"].as_str().unwrap().to_owned()
    };

    // Codes approved by bob, then bob suspended, then bob deleted (behind the service's back,
    // which would revoke his grants and so hide the user check behind the grant's).
    let suspended_req = crate::oauth_client::AuthRequest::for_client(&client);
    let suspended_code = app.authorize_code(&bob, &suspended_req).await;
    let deleted_req = crate::oauth_client::AuthRequest::for_client(&client);
    let deleted_code = app.authorize_code(&bob, &deleted_req).await;
    let tokens = app.obtain_tokens(&bob, &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();

    app.execute_sql("UPDATE users SET status = 'suspended' WHERE username = 'bob'")
        .await;
    let res = app
        .exchange_code(&client, &suspended_code, &suspended_req)
        .await;
    assert_eq!(
        description(res).await,
        "the user who granted access is suspended"
    );
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(
        description(res).await,
        "the user who granted access is suspended"
    );

    app.execute_sql("UPDATE users SET deleted = TRUE WHERE username = 'bob'")
        .await;
    let res = app
        .exchange_code(&client, &deleted_code, &deleted_req)
        .await;
    assert_eq!(
        description(res).await,
        "the user who granted access no longer exists"
    );
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(
        description(res).await,
        "the user who granted access no longer exists"
    );

    // The token's own checks come first: another client presenting it hears so, not the user's.
    let other = app.register_claude().await;
    let res = app.refresh_tokens(&other, refresh).await;
    assert_eq!(
        description(res).await,
        "the refresh token was issued to another client"
    );
}

/// A client's id with another client's genuine secret is `invalid_client`: the secret is looked
/// up with the client, not on its own.
async fn a_client_cannot_authenticate_with_another_clients_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let other = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let mut borrowed = client.clone();
    borrowed.secret = other.secret.clone();
    let res = app.refresh_tokens(&borrowed, refresh).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body = json_body(res).await;
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(
        body["error_description"],
        "Client authentication failed: the client secret is wrong"
    );
    // Its own secret still works, and the refresh token was not spent.
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A refresh that asks only for scopes this server does not know gets `invalid_scope`, not the
/// whole grant; the refresh token stays usable.
async fn refresh_naming_only_unknown_scopes_is_invalid_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let res = app
        .token_request(
            &client,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh.into()),
                ("scope", "admin:everything".into()),
            ],
        )
        .await;
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".to_owned())
    );
    assert_eq!(
        app.refresh_tokens(&client, refresh).await.status(),
        StatusCode::OK
    );
}

/// A token issued for the deployment root is not one for the MCP endpoint.
async fn mcp_accepts_only_its_own_url_as_audience(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let mut req = AuthRequest::for_client(&client);
    req.resource = Some(app.url.clone());
    let code = app.authorize_code(&owner, &req).await;
    let root = json_body(app.exchange_code(&client, &code, &req).await).await;
    let (status, body) = rpc(
        &app,
        root["access_token"].as_str().unwrap(),
        "tools/list",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("audience"),
        "{body}"
    );

    let mut req = AuthRequest::for_client(&client);
    req.resource = Some(app.url(MCP_PATH));
    let code = app.authorize_code(&owner, &req).await;
    let mcp = json_body(app.exchange_code(&client, &code, &req).await).await;
    let (status, body) = rpc(
        &app,
        mcp["access_token"].as_str().unwrap(),
        "tools/list",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// When the credential cannot be checked (here the users table is gone), the MCP endpoint says
/// so with a 500 and no internal detail, never a 401 that makes the client drop a good token.
async fn mcp_internal_errors_are_not_401s(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    app.execute_sql("ALTER TABLE users RENAME TO users_gone")
        .await;
    for token in [owner.as_str(), access] {
        let res = crate::mcp_support::mcp_post(
            &app,
            "",
            Some(token),
            Some("2025-06-18"),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string(),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.headers().get("www-authenticate").is_none());
        let text = res.text().await.unwrap();
        for leak in ["users", "relation", "table", "sqlx"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}

/// The consent page's CSRF token for `session`, and the form fields to post with `action`.
async fn consent_form(
    app: &TestApp,
    session: &str,
    req: &AuthRequest,
    action: &str,
) -> (String, Vec<(String, String)>) {
    let page = app.authorize_get(Some(session), req).await;
    assert_eq!(page.status(), StatusCode::OK);
    let token = hidden_field(&page.text().await.unwrap(), "csrf_token").expect("csrf field");
    let mut form: Vec<(String, String)> = req
        .query()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    form.push(("action".into(), action.into()));
    (token, form)
}

async fn post_consent(
    app: &TestApp,
    cookie: &str,
    token: &str,
    form: &[(String, String)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = form.to_vec();
    form.push(("csrf_token".into(), token.into()));
    let mut builder = app
        .client
        .post(app.url("/oauth2/authorize"))
        .header("Cookie", cookie)
        .form(&form);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.send().await.expect("request")
}

/// A CSRF token lifted from one user's page does not work in another user's session, even when
/// the attacker also plants it as the double-submit cookie.
async fn consent_csrf_token_is_bound_to_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mallory = app.create_member(&owner, "mallory").await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let (mallorys_token, form) = consent_form(&app, &mallory, &req, "allow").await;
    let planted = format!("coder_session_token={owner}; coder_csrf={mallorys_token}");
    let res = post_consent(&app, &planted, &mallorys_token, &form, &[]).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "no code for the victim"
    );
    assert!(res.headers().get("location").is_none());

    let (owners_token, _) = consent_form(&app, &owner, &req, "allow").await;
    assert_ne!(owners_token, mallorys_token);
    let res = post_consent(
        &app,
        &format!("coder_session_token={owner}"),
        &owners_token,
        &form,
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
}

/// A browser that says the form came from another site is refused even with a good token.
async fn forms_refuse_cross_site_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let (token, form) = consent_form(&app, &owner, &req, "allow").await;
    let cookie = format!("coder_session_token={owner}");
    for headers in [
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
        vec![("Origin", "https://evil.example")],
        vec![("Origin", "null")],
    ] {
        let res = post_consent(&app, &cookie, &token, &form, &headers).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    // Sign-out, one of the pages' forms, likewise.
    let res = app
        .client
        .post(app.url("/logout"))
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(crate::helpers::set_cookie_named(&res, "coder_session_token").is_none());
    assert_eq!(
        app.get("/api/v2/users/me", Some(&owner)).await.status(),
        StatusCode::OK
    );
    // This site's own pages pass.
    let origin = app.url.clone();
    for headers in [
        vec![("Sec-Fetch-Site", "same-origin")],
        vec![("Origin", origin.as_str())],
    ] {
        let (token, form) = consent_form(&app, &owner, &req, "allow").await;
        let res = post_consent(&app, &cookie, &token, &form, &headers).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{headers:?}");
    }
}
