//! The authorization-code flow end to end: sign-in redirect, consent, code exchange with PKCE,
//! refresh rotation and reuse detection, revocation, and the access-token verifier.

use base64::Engine;
use chrono::Duration;
use coderd::auth::access_token::TokenRejection;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::oauth_client::{AuthRequest, CLAUDE_CALLBACK, MCP_PATH, Pkce, location_params, param};

both_backends!(
    claude_flow_issues_a_bound_jwt,
    signing_in_first_returns_to_the_same_request,
    public_client_uses_pkce_and_any_loopback_port,
    deny_and_csrf,
    authorize_errors_before_and_after_the_client_is_trusted,
    scopes_are_negotiated_per_role_and_client,
    codes_are_single_use_and_bound,
    a_code_exchanged_at_once_opens_one_grant,
    refresh_rotates_and_detects_reuse,
    refresh_scope_can_only_narrow,
    expiry_of_codes_access_and_refresh_tokens,
    token_endpoint_client_authentication,
    token_endpoint_request_errors,
    revocation_of_either_token_revokes_the_grant,
    revocation_reaches_other_replicas,
    rotated_signing_keys_keep_old_tokens_valid,
    token_endpoint_rate_limits_per_client,
    deleting_a_user_revokes_their_grants,
    cleanup_removes_abandoned_clients_and_expired_codes,
);

/// The JWT's claims, decoded without verification (the app's verifier is what checks them).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three segments");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}

fn header(token: &str) -> Value {
    let head = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json header")
}

async fn oauth_error(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body = json_body(res).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn claude_flow_issues_a_bound_jwt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let mut req = AuthRequest::for_client(&client);
    req.resource = Some(app.url(MCP_PATH));
    req.scope = Some("claudeai".into());

    let page = app.authorize_get(Some(&owner), &req).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' https://claude.ai"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    for expected in [
        "claudeai",
        "claude.ai",
        "owner",
        "workspaces:exec",
        "Run commands",
        "csrf_token",
    ] {
        assert!(html.contains(expected), "consent page lacks {expected:?}");
    }

    let code = app.authorize_code(&owner, &req).await;
    let res = app.exchange_code(&client, &code, &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let tokens = json_body(res).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("coder_"))
    );
    let granted =
        "user:read workspaces:read workspaces:write workspaces:exec templates:read templates:write";
    assert_eq!(tokens["scope"], granted);

    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(header(access)["typ"], "at+jwt");
    assert_eq!(header(access)["alg"], "EdDSA");
    let c = claims(access);
    assert_eq!(c["iss"], app.url.as_str());
    assert_eq!(c["aud"], app.url(MCP_PATH));
    assert_eq!(c["client_id"], client.id.as_str());
    assert_eq!(c["scope"], granted);
    let me = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await;
    assert_eq!(c["sub"], me["id"]);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );

    let verified = app
        .state
        .access_tokens
        .verify(access)
        .await
        .expect("valid token");
    assert_eq!(verified.audience, app.url(MCP_PATH));
    assert_eq!(verified.scopes.to_wire(), granted);
    assert_eq!(
        app.state
            .access_tokens
            .verify(&format!("{access}x"))
            .await
            .err(),
        Some(TokenRejection::Invalid)
    );
}

async fn signing_in_first_returns_to_the_same_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let res = app.authorize_get(None, &req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/login?redirect=%2Foauth2%2Fauthorize%3F"),
        "{location}"
    );
    let back = url::Url::parse(&app.url(&location)).unwrap();
    let redirect = back
        .query_pairs()
        .find(|(k, _)| k == "redirect")
        .unwrap()
        .1
        .into_owned();
    // The sign-in page sends the user back to exactly this request, which now shows consent.
    let again = app
        .client
        .get(app.url(&redirect))
        .header("Cookie", format!("coder_session_token={owner}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let html = again.text().await.unwrap();
    assert!(html.contains(&req.pkce.challenge) && html.contains("state-123"));
}

async fn public_client_uses_pkce_and_any_loopback_port(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut client = app.register_cursor().await;
    assert!(client.secret.is_none());
    client.redirect_uri = "http://localhost:51234/callback".into();
    let req = AuthRequest::for_client(&client);
    let res = app.consent(&owner, &req, "allow").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://localhost:51234/callback?code="),
        "{location}"
    );
    let code = param(&location_params(&res), "code").unwrap().to_owned();
    let res = app.exchange_code(&client, &code, &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    assert!(
        app.state
            .access_tokens
            .verify(tokens["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );

    // A public client that sends a secret is refused.
    let mut confused = client.clone();
    confused.method = "client_secret_post".into();
    confused.secret = Some("coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into());
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, error) = oauth_error(app.refresh_tokens(&confused, refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_client")
    );

    // The custom-scheme URI registered by Cursor is honoured too.
    client.redirect_uri = "cursor://anysphere.cursor-mcp/oauth/callback".into();
    let req = AuthRequest::for_client(&client);
    let res = app.consent(&owner, &req, "allow").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("cursor://anysphere.cursor-mcp/oauth/callback?code=")
    );
}

async fn deny_and_csrf(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);

    let res = app.consent(&owner, &req, "deny").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let params = location_params(&res);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("state-123"));
    assert_eq!(param(&params, "iss"), Some(app.url.as_str()));
    assert_eq!(param(&params, "code"), None);

    // A POST without the CSRF token re-renders the page and issues nothing.
    let mut form: Vec<(String, String)> = req
        .query()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    form.push(("action".into(), "allow".into()));
    let forged = app
        .client
        .post(app.url("/oauth2/authorize"))
        .header("Cookie", format!("coder_session_token={owner}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get("location").is_none());
}

async fn authorize_errors_before_and_after_the_client_is_trusted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;

    // Untrusted client or redirect URI: an error page, never a redirect (RFC 6749 §4.1.2.1).
    for (client_id, redirect) in [
        (uuid::Uuid::new_v4().to_string(), CLAUDE_CALLBACK.to_owned()),
        ("not-a-uuid".to_owned(), CLAUDE_CALLBACK.to_owned()),
        (
            client.id.clone(),
            "https://evil.example/callback".to_owned(),
        ),
        (client.id.clone(), format!("{CLAUDE_CALLBACK}/extra")),
    ] {
        let mut req = AuthRequest::for_client(&client);
        req.client_id = client_id;
        req.redirect_uri = Some(redirect);
        let res = app.authorize_get(Some(&owner), &req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get("location").is_none());
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    // Trusted client: errors go back to it with state and iss.
    type Mutation = Box<dyn Fn(&mut Vec<(&'static str, String)>)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "invalid_request",
            Box::new(|q| q.retain(|(k, _)| *k != "code_challenge")),
        ),
        (
            "invalid_request",
            Box::new(|q| set(q, "code_challenge_method", "plain")),
        ),
        (
            "invalid_request",
            Box::new(|q| set(q, "code_challenge", "short")),
        ),
        (
            "unsupported_response_type",
            Box::new(|q| set(q, "response_type", "token")),
        ),
        (
            "invalid_request",
            Box::new(|q| q.push(("state", "again".into()))),
        ),
        (
            "invalid_target",
            Box::new(|q| q.push(("resource", "https://evil.example/mcp".into()))),
        ),
    ];
    for (expected, mutate) in cases {
        let req = AuthRequest::for_client(&client);
        let mut query = req.query();
        mutate(&mut query);
        let res = app
            .client
            .get(app.url("/oauth2/authorize"))
            .query(&query)
            .header("Cookie", format!("coder_session_token={owner}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "{expected}");
        let params = location_params(&res);
        assert_eq!(param(&params, "error"), Some(expected));
        assert!(param(&params, "error_description").is_some_and(|d| !d.is_empty()));
        assert_eq!(param(&params, "iss"), Some(app.url.as_str()));
    }

    // Unknown parameters are ignored.
    let req = AuthRequest::for_client(&client);
    let mut query = req.query();
    query.push(("nonce", "n".into()));
    query.push(("prompt", "consent".into()));
    let res = app
        .client
        .get(app.url("/oauth2/authorize"))
        .query(&query)
        .header("Cookie", format!("coder_session_token={owner}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn set(query: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    query.retain(|(k, _)| *k != key);
    query.push((key, value.to_owned()));
}

async fn scopes_are_negotiated_per_role_and_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let client = app.register_claude().await;

    let mut req = AuthRequest::for_client(&client);
    req.scope = Some("workspaces:read templates:write claudeai".into());
    let page = app
        .authorize_get(Some(&member), &req)
        .await
        .text()
        .await
        .unwrap();
    // The hidden form fields repeat the request; the listed permissions are what is granted.
    assert!(page.contains("<strong>workspaces:read</strong>"));
    assert!(!page.contains("<strong>templates:write</strong>"));
    assert!(!page.contains("<strong>workspaces:exec</strong>"));
    let code = app.authorize_code(&member, &req).await;
    let tokens = json_body(app.exchange_code(&client, &code, &req).await).await;
    assert_eq!(tokens["scope"], "workspaces:read");

    // Only what a member may never hold: nothing to grant.
    req.scope = Some("templates:write".into());
    let res = app.authorize_get(Some(&member), &req).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        param(&location_params(&res), "error"),
        Some("invalid_scope")
    );

    // An owner can hold it.
    let code = app.authorize_code(&owner, &req).await;
    let tokens = json_body(app.exchange_code(&client, &code, &req).await).await;
    assert_eq!(tokens["scope"], "templates:write");

    // A client registered with an allowlist gets no more than that.
    let narrow = app
        .register_client(json!({
            "redirect_uris": [CLAUDE_CALLBACK],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "workspaces:read user:read",
        }))
        .await;
    let mut req = AuthRequest::for_client(&narrow);
    req.scope = Some("workspaces:read workspaces:exec".into());
    let code = app.authorize_code(&owner, &req).await;
    let tokens = json_body(app.exchange_code(&narrow, &code, &req).await).await;
    assert_eq!(tokens["scope"], "workspaces:read");
    req.scope = None;
    let code = app.authorize_code(&owner, &req).await;
    let tokens = json_body(app.exchange_code(&narrow, &code, &req).await).await;
    assert_eq!(tokens["scope"], "user:read workspaces:read");
}

/// The same code posted many times at once: exactly one exchange wins; every other one is
/// `invalid_grant`, and a lost race counts as a replay, which revokes what the winner got
/// (RFC 6749 §4.1.2: a code used twice SHOULD revoke the tokens issued from it).
async fn a_code_exchanged_at_once_opens_one_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let code = app.authorize_code(&owner, &req).await;

    let answers =
        futures_util::future::join_all((0..8).map(|_| app.exchange_code(&client, &code, &req)))
            .await;
    let mut issued = Vec::new();
    for res in answers {
        if res.status() == StatusCode::OK {
            issued.push(json_body(res).await);
        } else {
            assert_eq!(oauth_error(res).await.1, "invalid_grant");
        }
    }
    assert_eq!(issued.len(), 1, "one grant from one code: {issued:?}");
    let refresh = issued[0]["refresh_token"].as_str().unwrap();
    let (_, error) = oauth_error(app.refresh_tokens(&client, refresh).await).await;
    assert_eq!(error, "invalid_grant", "the replays revoked the grant");
}

async fn codes_are_single_use_and_bound(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let other = app.register_claude().await;
    let req = AuthRequest::for_client(&client);
    let code = app.authorize_code(&owner, &req).await;

    // Bound to the client, the verifier, the redirect URI; failures do not consume it.
    let (_, error) = oauth_error(app.exchange_code(&other, &code, &req).await).await;
    assert_eq!(error, "invalid_grant");
    let mut wrong = req.clone();
    wrong.pkce = Pkce::new();
    let (_, error) = oauth_error(app.exchange_code(&client, &code, &wrong).await).await;
    assert_eq!(error, "invalid_grant");
    let mut no_redirect = req.clone();
    no_redirect.redirect_uri = None;
    let (_, error) = oauth_error(app.exchange_code(&client, &code, &no_redirect).await).await;
    assert_eq!(
        error, "invalid_grant",
        "redirect_uri was in the authorization request"
    );
    let mut other_resource = req.clone();
    other_resource.resource = Some(app.url.clone());
    let (_, error) = oauth_error(app.exchange_code(&client, &code, &other_resource).await).await;
    assert_eq!(
        error, "invalid_target",
        "the code is bound to the MCP resource by default"
    );
    let missing_verifier = app
        .token_request(
            &client,
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
            ],
        )
        .await;
    assert_eq!(oauth_error(missing_verifier).await.1, "invalid_request");

    let first = app.exchange_code(&client, &code, &req).await;
    assert_eq!(first.status(), StatusCode::OK);
    let tokens = json_body(first).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(app.state.access_tokens.verify(access).await.is_ok());

    // Replaying the code fails and revokes what the first exchange obtained.
    let (status, error) = oauth_error(app.exchange_code(&client, &code, &req).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert_eq!(
        app.state.access_tokens.verify(access).await.err(),
        Some(TokenRejection::Revoked)
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        oauth_error(app.refresh_tokens(&client, refresh).await)
            .await
            .1,
        "invalid_grant"
    );

    // A garbled code is just invalid.
    assert_eq!(
        oauth_error(app.exchange_code(&client, "coder_nope", &req).await)
            .await
            .1,
        "invalid_grant"
    );
}

async fn refresh_rotates_and_detects_reuse(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let res = app.refresh_tokens(&client, &first_refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let rotated = json_body(res).await;
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first_refresh, second_refresh);
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert!(app.state.access_tokens.verify(&new_access).await.is_ok());
    assert_eq!(rotated["scope"], tokens["scope"]);

    // Another client cannot use it.
    let other = app.register_claude().await;
    assert_eq!(
        oauth_error(app.refresh_tokens(&other, &second_refresh).await)
            .await
            .1,
        "invalid_grant"
    );

    // Presenting the rotated token again revokes the whole family.
    assert_eq!(
        oauth_error(app.refresh_tokens(&client, &first_refresh).await)
            .await
            .1,
        "invalid_grant"
    );
    assert_eq!(
        oauth_error(app.refresh_tokens(&client, &second_refresh).await)
            .await
            .1,
        "invalid_grant"
    );
    assert_eq!(
        app.state.access_tokens.verify(&new_access).await.err(),
        Some(TokenRejection::Revoked)
    );
    let old_access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.state.access_tokens.verify(old_access).await.err(),
        Some(TokenRejection::Revoked)
    );

    // A second device gets its own grant, untouched by the first one's revocation.
    let device_two = app.obtain_tokens(&owner, &client).await;
    assert!(
        app.state
            .access_tokens
            .verify(device_two["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );
}

async fn refresh_scope_can_only_narrow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let mut req = AuthRequest::for_client(&client);
    req.scope = Some("workspaces:read workspaces:exec".into());
    let code = app.authorize_code(&owner, &req).await;
    let tokens = json_body(app.exchange_code(&client, &code, &req).await).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let widened = app
        .token_request(
            &client,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh.into()),
                ("scope", "workspaces:read workspaces:write".into()),
            ],
        )
        .await;
    assert_eq!(oauth_error(widened).await.1, "invalid_scope");

    // The refused widening did not consume the refresh token.
    let narrowed = app
        .token_request(
            &client,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh.into()),
                ("scope", "workspaces:read".into()),
                ("resource", app.url(MCP_PATH)),
            ],
        )
        .await;
    assert_eq!(narrowed.status(), StatusCode::OK);
    let narrowed = json_body(narrowed).await;
    assert_eq!(narrowed["scope"], "workspaces:read");

    // The next refresh without scope gets the full grant back: narrowing applied to one token.
    let full = json_body(
        app.refresh_tokens(&client, narrowed["refresh_token"].as_str().unwrap())
            .await,
    )
    .await;
    assert_eq!(full["scope"], "workspaces:read workspaces:exec");

    let wrong_target = app
        .token_request(
            &client,
            vec![
                ("grant_type", "refresh_token".into()),
                (
                    "refresh_token",
                    full["refresh_token"].as_str().unwrap().into(),
                ),
                ("resource", "https://elsewhere.example".into()),
            ],
        )
        .await;
    assert_eq!(oauth_error(wrong_target).await.1, "invalid_target");
}

async fn expiry_of_codes_access_and_refresh_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;

    let req = AuthRequest::for_client(&client);
    let code = app.authorize_code(&owner, &req).await;
    app.clock
        .advance(Duration::minutes(10) + Duration::seconds(1));
    assert_eq!(
        oauth_error(app.exchange_code(&client, &code, &req).await)
            .await
            .1,
        "invalid_grant"
    );

    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(app.state.access_tokens.verify(access).await.is_ok());
    app.clock.advance(Duration::minutes(61));
    assert_eq!(
        app.state.access_tokens.verify(access).await.err(),
        Some(TokenRejection::Expired)
    );

    // The refresh token outlives the access token...
    let res = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let refreshed = json_body(res).await;
    // ...but not its own 30 days.
    app.clock.advance(Duration::days(30) + Duration::minutes(1));
    let expired = app
        .refresh_tokens(&client, refreshed["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(oauth_error(expired).await.1, "invalid_grant");
}

async fn token_endpoint_client_authentication(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = |extra: Vec<(&'static str, String)>| {
        let mut f = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.clone()),
        ];
        f.extend(extra);
        f
    };

    // No secret from a confidential client.
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&form(vec![("client_id", client.id.clone())]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"coder\"");
    assert_eq!(json_body(res).await["error"], "invalid_client");

    // A wrong secret.
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&form(vec![
            ("client_id", client.id.clone()),
            (
                "client_secret",
                "coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
            ),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );

    // Registered client_secret_post, so HTTP Basic is refused.
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&form(vec![]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );

    // Unknown client: claude.ai re-registers on this signal.
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&form(vec![("client_id", uuid::Uuid::new_v4().to_string())]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );

    // Never a secret in the URL.
    let res = app
        .client
        .post(app.url(&format!(
            "/oauth2/tokens?client_secret={}",
            client.secret.as_deref().unwrap()
        )))
        .form(&form(vec![
            ("client_id", client.id.clone()),
            ("client_secret", client.secret.clone().unwrap()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );

    // Basic and a body secret together are ambiguous.
    let basic = app
        .register_client(json!({"redirect_uris": [CLAUDE_CALLBACK]}))
        .await;
    assert_eq!(basic.method, "client_secret_basic");
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .basic_auth(&basic.id, basic.secret.as_deref())
        .form(&form(vec![(
            "client_secret",
            basic.secret.clone().unwrap(),
        )]))
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(res).await.1, "invalid_request");

    // Basic with the same client_id in the body is fine (the Python SDK sends both).
    let tokens = app.obtain_tokens(&owner, &basic).await;
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .basic_auth(&basic.id, basic.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", basic.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn token_endpoint_request_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.register_claude().await;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "invalid_request"),
        (
            vec![("grant_type", "client_credentials".into())],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "password".into())],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "refresh_token".into()),
                ("grant_type", "refresh_token".into()),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "refresh_token".into())],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", "x".into()),
                ("code", "y".into()),
            ],
            "invalid_request",
        ),
    ];
    for (form, expected) in cases {
        let res = app.token_request(&client, form.clone()).await;
        let status = res.status();
        let body = json_body(res).await;
        assert_eq!(body["error"], expected, "{form:?}");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let huge = "x".repeat(200 * 1024);
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", huge.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request".into())
    );
}

async fn revocation_of_either_token_revokes_the_grant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let revoke = |token: String, client_id: String, secret: Option<String>| {
        let mut form = vec![("token", token), ("client_id", client_id)];
        if let Some(secret) = secret {
            form.push(("client_secret", secret));
        }
        app.client
            .post(app.url("/oauth2/revoke"))
            .form(&form)
            .send()
    };

    // Revoking the refresh token kills the access token too.
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let res = revoke(
        tokens["refresh_token"].as_str().unwrap().into(),
        client.id.clone(),
        client.secret.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(
        app.state.access_tokens.verify(&access).await.err(),
        Some(TokenRejection::Revoked)
    );
    assert_eq!(
        oauth_error(
            app.refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
                .await
        )
        .await
        .1,
        "invalid_grant"
    );

    // Revoking the access token kills the refresh token.
    let tokens = app.obtain_tokens(&owner, &client).await;
    let res = revoke(
        tokens["access_token"].as_str().unwrap().into(),
        client.id.clone(),
        client.secret.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        oauth_error(
            app.refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
                .await
        )
        .await
        .1,
        "invalid_grant"
    );

    // Unknown or garbled tokens: 200, nothing happens (RFC 7009 §2.2).
    for token in [
        "coder_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "garbage",
        "a.b.c",
    ] {
        let res = revoke(token.into(), client.id.clone(), client.secret.clone())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{token}");
    }

    // Another client's token: 200, and it still works.
    let other = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let res = revoke(
        tokens["refresh_token"].as_str().unwrap().into(),
        other.id.clone(),
        other.secret.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        app.state
            .access_tokens
            .verify(tokens["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );

    // A confidential client must authenticate; the token is required.
    let res = revoke(
        tokens["refresh_token"].as_str().unwrap().into(),
        client.id.clone(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"coder\"");
    assert!(
        app.state
            .access_tokens
            .verify(tokens["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );
    let res = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[("client_id", client.id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        oauth_error(res).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

async fn revocation_reaches_other_replicas(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let replica = app.spawn_replica().await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    // Both replicas share the signing key, so either verifies the token.
    assert!(replica.state.access_tokens.verify(access).await.is_ok());

    let res = app
        .client
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("token", access),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        app.state.access_tokens.verify(access).await.is_err(),
        "immediate on the revoking instance"
    );

    let started = std::time::Instant::now();
    loop {
        if replica.state.access_tokens.verify(access).await.is_err() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the replica still accepts a revoked token after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn rotated_signing_keys_keep_old_tokens_valid(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let client = app.register_claude().await;
    let old = app.obtain_tokens(&owner, &client).await;
    let old_access = old["access_token"].as_str().unwrap();
    let old_kid = header(old_access)["kid"].clone();

    let store = app.state.services.store().clone();
    let new_kid = coderd::oauth::keys::KeyRing::rotate(&store, app.clock_now())
        .await
        .unwrap();
    app.state.oauth.keys().reload(true).await.unwrap();

    let new = app.obtain_tokens(&owner, &client).await;
    let new_access = new["access_token"].as_str().unwrap();
    assert_eq!(header(new_access)["kid"], new_kid.as_str());
    assert_ne!(header(new_access)["kid"], old_kid);
    assert!(
        app.state.access_tokens.verify(old_access).await.is_ok(),
        "retired keys still verify"
    );
    assert!(app.state.access_tokens.verify(new_access).await.is_ok());
    let jwks = json_body(app.get("/oauth2/jwks", None).await).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

async fn token_endpoint_rate_limits_per_client(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.oauth2.rate_limit_per_client = 2;
    })
    .await;
    let client = app.register_claude().await;
    let attempt = || {
        app.token_request(
            &client,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", "coder_x".into()),
            ],
        )
    };
    assert_eq!(attempt().await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(attempt().await.status(), StatusCode::BAD_REQUEST);
    let limited = attempt().await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    // Another client is not affected.
    let other = app.register_claude().await;
    let res = app
        .token_request(
            &other,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", "coder_x".into()),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.clock.advance(Duration::seconds(61));
    assert_eq!(attempt().await.status(), StatusCode::BAD_REQUEST);
}

async fn deleting_a_user_revokes_their_grants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&member, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(app.state.access_tokens.verify(access).await.is_ok());
    assert_eq!(
        app.delete("/api/v2/users/bob", Some(&owner)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.state.access_tokens.verify(access).await.err(),
        Some(TokenRejection::Revoked)
    );
    assert_eq!(
        oauth_error(
            app.refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
                .await
        )
        .await
        .1,
        "invalid_grant"
    );
}

async fn cleanup_removes_abandoned_clients_and_expired_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let abandoned = app.register_claude().await;
    let used = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &used).await;
    let req = AuthRequest::for_client(&used);
    let stale_code = app.authorize_code(&owner, &req).await;

    app.clock.advance(Duration::hours(25));
    let removed = app.state.oauth.cleanup().await.unwrap();
    assert!(
        removed >= 2,
        "the abandoned client and the expired code, got {removed}"
    );

    let store = app.state.services.store();
    let abandoned_id = coderd::domain::ClientId(abandoned.id.parse().unwrap());
    let used_id = coderd::domain::ClientId(used.id.parse().unwrap());
    assert!(store.get_oauth_app(abandoned_id).await.unwrap().is_none());
    assert!(
        store.get_oauth_app(used_id).await.unwrap().is_some(),
        "a client that obtained tokens stays"
    );
    let prefix = stale_code.split('_').nth(1).unwrap();
    assert!(
        store
            .get_auth_code_by_prefix(prefix)
            .await
            .unwrap()
            .is_none()
    );
    // The used client's refresh token (30 days) still works.
    let res = app
        .refresh_tokens(&used, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

impl TestApp {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use coderd::clock::Clock;
        self.clock.now()
    }
}
