//! A full flow driven by an independent OAuth client (the `oauth2` crate), with the test playing
//! the user's browser: discovery, registration, authorization with PKCE, exchange, refresh.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::oauth_client::{CLAUDE_CALLBACK, MCP_PATH, location_params, param};

both_backends!(oauth2_crate_completes_the_flow);

async fn oauth2_crate_completes_the_flow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let session = app.create_owner().await;

    // Discovery, as a client starting from the MCP URL would.
    let prm = json_body(
        app.get(
            &format!("/.well-known/oauth-protected-resource{MCP_PATH}"),
            None,
        )
        .await,
    )
    .await;
    let resource = prm["resource"].as_str().unwrap().to_owned();
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    let meta = json_body(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert_eq!(meta["issuer"], issuer.as_str());

    // Registration (RFC 7591), confidential with client_secret_basic.
    let res = app
        .client
        .post(meta["registration_endpoint"].as_str().unwrap())
        .json(&json!({"client_name": "oauth2-rs", "redirect_uris": [CLAUDE_CALLBACK]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let registered = json_body(res).await;

    let client = BasicClient::new(ClientId::new(
        registered["client_id"].as_str().unwrap().into(),
    ))
    .set_client_secret(ClientSecret::new(
        registered["client_secret"].as_str().unwrap().into(),
    ))
    .set_auth_uri(AuthUrl::new(meta["authorization_endpoint"].as_str().unwrap().into()).unwrap())
    .set_token_uri(TokenUrl::new(meta["token_endpoint"].as_str().unwrap().into()).unwrap())
    .set_redirect_uri(RedirectUrl::new(CLAUDE_CALLBACK.into()).unwrap())
    .set_auth_type(AuthType::BasicAuth);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf_state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("workspaces:read".into()))
        .add_scope(Scope::new("workspaces:exec".into()))
        .add_extra_param("resource", &resource)
        .set_pkce_challenge(challenge)
        .url();

    // The browser: open the URL signed in, read the consent form, press Allow.
    let decided = app.allow_at(&session, &authorize_url).await;
    assert_eq!(decided.status(), StatusCode::FOUND);
    let params = location_params(&decided);
    assert_eq!(param(&params, "state"), Some(csrf_state.secret().as_str()));
    assert_eq!(param(&params, "iss"), Some(issuer.as_str()));
    let code = param(&params, "code").unwrap().to_owned();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .add_extra_param("resource", &resource)
        .request_async(&http)
        .await
        .expect("the oauth2 crate accepts our token response");
    let granted: Vec<String> = tokens
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(granted, vec!["workspaces:read", "workspaces:exec"]);
    assert_eq!(tokens.expires_in().map(|d| d.as_secs()), Some(3600));
    let verified = app
        .state
        .access_tokens
        .verify(tokens.access_token().secret())
        .await
        .unwrap();
    assert_eq!(verified.audience, resource);

    let refresh: &RefreshToken = tokens.refresh_token().unwrap();
    let refreshed = client
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await
        .expect("refresh works");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret()
    );
    assert!(
        app.state
            .access_tokens
            .verify(refreshed.access_token().secret())
            .await
            .is_ok()
    );

    // The rotated token replayed: the crate surfaces the RFC 6749 error.
    let replay = client
        .exchange_refresh_token(refresh)
        .request_async(&http)
        .await;
    let err = format!("{:?}", replay.expect_err("replay is refused"));
    assert!(
        err.contains("InvalidGrant") || err.contains("invalid_grant"),
        "{err}"
    );
}
