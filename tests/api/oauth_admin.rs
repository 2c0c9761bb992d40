//! `/api/v2/oauth2-provider`: owner-managed applications and their secrets, the audit trail, and
//! a user's authorized applications with `DELETE /oauth2/tokens?client_id=`.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::oauth_client::{AuthRequest, Client};

both_backends!(
    owner_creates_gets_lists_and_updates_apps,
    app_validation_errors_are_coder_400s,
    unknown_apps_are_404,
    members_cannot_manage_apps,
    secrets_are_shown_once_and_listed_truncated,
    admin_app_secret_works_with_basic_and_post,
    deleting_a_secret_revokes_its_tokens,
    deleting_an_app_revokes_its_tokens,
    admin_actions_are_audited,
    users_list_and_revoke_their_authorized_apps,
    last_used_is_recorded_to_the_minute,
);

const APPS: &str = "/api/v2/oauth2-provider/apps";
const CALLBACK: &str = "https://app.example.com/oauth/callback";

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let mut req = app.request(method, path, Some(token));
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.expect("request")
}

/// Creates an application as `owner` and returns its JSON.
async fn create_app(app: &TestApp, owner: &str, body: Value) -> Value {
    let res = app.post_json(APPS, Some(owner), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await
}

/// Creates a secret and returns `(id, client_secret_full)`.
async fn create_secret(app: &TestApp, owner: &str, app_id: &str) -> (String, String) {
    let res = app
        .post_json(&format!("{APPS}/{app_id}/secrets"), Some(owner), &json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = json_body(res).await;
    (
        body["id"].as_str().expect("id").to_owned(),
        body["client_secret_full"]
            .as_str()
            .expect("client_secret_full")
            .to_owned(),
    )
}

fn client_for(app_id: &str, secret: &str, method: &str) -> Client {
    Client {
        id: app_id.to_owned(),
        secret: Some(secret.to_owned()),
        registration_token: None,
        redirect_uri: CALLBACK.to_owned(),
        method: method.to_owned(),
    }
}

async fn user_id(app: &TestApp, token: &str) -> String {
    let me = json_body(app.get("/api/v2/users/me", Some(token)).await).await;
    me["id"].as_str().expect("id").to_owned()
}

async fn assert_app_not_found(res: Response) {
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_body(res).await["message"],
        "OAuth2 application not found."
    );
}

async fn owner_creates_gets_lists_and_updates_apps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;

    let created = create_app(
        &app,
        &owner,
        json!({
            "name": "Internal tool",
            "redirect_uris": [CALLBACK, "http://127.0.0.1/cb"],
            "icon": "https://app.example.com/icon.png",
            "scope": "workspaces:read user:read",
        }),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["name"], "Internal tool");
    assert_eq!(created["callback_url"], CALLBACK);
    assert_eq!(
        created["redirect_uris"],
        json!([CALLBACK, "http://127.0.0.1/cb"])
    );
    assert_eq!(created["icon"], "https://app.example.com/icon.png");
    let scope = created["scope"].as_str().unwrap_or_default();
    assert!(
        scope.contains("workspaces:read") && scope.contains("user:read"),
        "{scope}"
    );
    assert_eq!(
        created["endpoints"]["authorization"],
        format!("{}/oauth2/authorize", app.url)
    );
    assert_eq!(
        created["endpoints"]["token"],
        format!("{}/oauth2/tokens", app.url)
    );
    assert_eq!(
        created["endpoints"]["token_revoke"],
        format!("{}/oauth2/revoke", app.url)
    );

    // Coder's single callback_url also works, and duplicate names are allowed.
    let legacy = create_app(
        &app,
        &owner,
        json!({"name": "Internal tool", "callback_url": CALLBACK}),
    )
    .await;
    assert_eq!(legacy["redirect_uris"], json!([CALLBACK]));
    assert_eq!(legacy["callback_url"], CALLBACK);
    assert_ne!(legacy["id"], created["id"]);

    let res = app.get(&format!("{APPS}/{id}"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await, created);

    let res = app.get(APPS, Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = json_body(res).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()), "{list}");
    assert!(ids.contains(&legacy["id"].as_str().unwrap()), "{list}");

    let res = send(
        &app,
        Method::PUT,
        &format!("{APPS}/{id}"),
        &owner,
        Some(&json!({"name": "Renamed tool", "redirect_uris": ["https://new.example.com/cb"], "icon": ""})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated = json_body(res).await;
    assert_eq!(updated["name"], "Renamed tool");
    assert_eq!(updated["callback_url"], "https://new.example.com/cb");
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://new.example.com/cb"])
    );
    assert_eq!(updated["scope"], created["scope"], "omitted scope is kept");

    let res = send(
        &app,
        Method::PUT,
        &format!("{APPS}/{id}"),
        &owner,
        Some(&json!({"name": "Renamed tool", "callback_url": "https://new.example.com/cb", "scope": ""})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["scope"],
        "",
        "an empty scope clears the allowlist"
    );

    let fetched = json_body(app.get(&format!("{APPS}/{id}"), Some(&owner)).await).await;
    assert_eq!(fetched["name"], "Renamed tool");
    assert_eq!(
        fetched["redirect_uris"],
        json!(["https://new.example.com/cb"])
    );
}

async fn app_validation_errors_are_coder_400s(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let cases = [
        (json!({"name": "", "redirect_uris": [CALLBACK]}), "name"),
        (json!({"name": "   ", "callback_url": CALLBACK}), "name"),
        (
            json!({"name": "x".repeat(65), "callback_url": CALLBACK}),
            "name",
        ),
        (json!({"name": "no uri"}), "redirect_uris"),
        (
            json!({"name": "no uri", "redirect_uris": []}),
            "redirect_uris",
        ),
        (
            json!({"name": "js", "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "js", "callback_url": "javascript:alert(1)"}),
            "redirect_uris",
        ),
        (
            json!({"name": "plain http", "callback_url": "http://example.com/cb"}),
            "redirect_uris",
        ),
        (
            json!({"name": "frag", "callback_url": "https://example.com/cb#x"}),
            "redirect_uris",
        ),
        (
            json!({"name": "scope", "callback_url": CALLBACK, "scope": "workspaces:read coder:all"}),
            "scope",
        ),
    ];
    for (body, field) in &cases {
        let res = app.post_json(APPS, Some(&owner), body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err = json_body(res).await;
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert!(err.get("error").is_none(), "a Coder body, not OAuth: {err}");
        let validations = err["validations"]
            .as_array()
            .unwrap_or_else(|| panic!("validations: {err}"));
        assert!(
            validations
                .iter()
                .any(|v| v["field"] == *field && v["detail"].is_string()),
            "{body}: {err}"
        );
    }

    // The same rules apply on update, and a refused update changes nothing.
    let created = create_app(
        &app,
        &owner,
        json!({"name": "ok", "callback_url": CALLBACK}),
    )
    .await;
    let path = format!("{APPS}/{}", created["id"].as_str().unwrap());
    for (body, _) in &cases {
        let res = send(&app, Method::PUT, &path, &owner, Some(body)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(json_body(res).await["validations"].is_array());
    }
    assert_eq!(json_body(app.get(&path, Some(&owner)).await).await, created);

    // Malformed JSON is a Coder 400 too.
    let res = app
        .request(Method::POST, APPS, Some(&owner))
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(json_body(res).await["message"].is_string());
}

async fn unknown_apps_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let body = json!({"name": "x", "callback_url": CALLBACK});
    for id in [unknown.as_str(), "not-a-uuid"] {
        let path = format!("{APPS}/{id}");
        assert_app_not_found(app.get(&path, Some(&owner)).await).await;
        assert_app_not_found(send(&app, Method::PUT, &path, &owner, Some(&body)).await).await;
        assert_app_not_found(app.delete(&path, Some(&owner)).await).await;
        assert_app_not_found(app.get(&format!("{path}/secrets"), Some(&owner)).await).await;
        assert_app_not_found(
            app.post_json(&format!("{path}/secrets"), Some(&owner), &json!({}))
                .await,
        )
        .await;
    }

    let created = create_app(&app, &owner, body).await;
    let id = created["id"].as_str().unwrap();
    for secret in [uuid::Uuid::new_v4().to_string(), "nope".to_owned()] {
        let res = app
            .delete(&format!("{APPS}/{id}/secrets/{secret}"), Some(&owner))
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{secret}");
        assert!(json_body(res).await["message"].is_string());
    }
    // A secret of another app is not found under this one.
    let other = create_app(
        &app,
        &owner,
        json!({"name": "other", "callback_url": CALLBACK}),
    )
    .await;
    let other_id = other["id"].as_str().unwrap();
    let (secret_id, _) = create_secret(&app, &owner, other_id).await;
    let res = app
        .delete(&format!("{APPS}/{id}/secrets/{secret_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let secrets = json_body(
        app.get(&format!("{APPS}/{other_id}/secrets"), Some(&owner))
            .await,
    )
    .await;
    assert_eq!(secrets.as_array().map(Vec::len), Some(1));
}

async fn members_cannot_manage_apps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let path = format!("{APPS}/{}", created["id"].as_str().unwrap());
    let body = json!({"name": "mine now", "callback_url": CALLBACK});

    let res = app.post_json(APPS, Some(&member), &body).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(json_body(res).await["message"].is_string());
    assert_eq!(
        app.get(APPS, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&path, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );
    let res = send(&app, Method::PUT, &path, &member, Some(&body)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete(&path, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );
    let secrets = format!("{path}/secrets");
    assert_eq!(
        app.post_json(&secrets, Some(&member), &json!({}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&secrets, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );

    // Without a session: 401.
    assert_eq!(app.get(APPS, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post_json(APPS, None, &body).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Nothing changed.
    let fetched = json_body(app.get(&path, Some(&owner)).await).await;
    assert_eq!(fetched["name"], "x");
}

async fn secrets_are_shown_once_and_listed_truncated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let (first_id, first) = create_secret(&app, &owner, id).await;
    let (second_id, second) = create_secret(&app, &owner, id).await;
    assert_ne!(first, second);
    assert!(first.len() >= 32, "{first}");

    let res = app.get(&format!("{APPS}/{id}/secrets"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = json_body(res).await;
    let text = list.to_string();
    assert!(
        !text.contains(&first) && !text.contains(&second),
        "no full secret: {text}"
    );
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        let id = entry["id"].as_str().unwrap();
        assert!(id == first_id || id == second_id, "{entry}");
        let truncated = entry["client_secret_truncated"]
            .as_str()
            .expect("truncated");
        assert!(
            !truncated.is_empty() && truncated.len() < first.len(),
            "{entry}"
        );
        assert!(entry.get("last_used_at").is_some(), "{entry}");
        assert!(entry.get("client_secret_full").is_none(), "{entry}");
    }
    assert!(
        entries.iter().all(|e| e["last_used_at"].is_null()),
        "never used yet"
    );

    // Using a secret sets its last_used_at.
    let member = app.create_member(&owner, "bob").await;
    let client = client_for(id, &first, "client_secret_basic");
    app.obtain_tokens(&member, &client).await;
    let list = json_body(app.get(&format!("{APPS}/{id}/secrets"), Some(&owner)).await).await;
    let used = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == first_id.as_str())
        .unwrap();
    assert!(used["last_used_at"].is_string(), "{used}");
    let unused = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == second_id.as_str())
        .unwrap();
    assert!(unused["last_used_at"].is_null(), "{unused}");

    // Apps never expose secrets either.
    let one = json_body(app.get(&format!("{APPS}/{id}"), Some(&owner)).await)
        .await
        .to_string();
    assert!(!one.contains(&first), "{one}");
}

async fn admin_app_secret_works_with_basic_and_post(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let (_, secret) = create_secret(&app, &owner, id).await;

    for method in ["client_secret_basic", "client_secret_post"] {
        let client = client_for(id, &secret, method);
        let tokens = app.obtain_tokens(&member, &client).await;
        let access = tokens["access_token"].as_str().expect("access_token");
        assert!(
            app.state.access_tokens.verify(access).await.is_ok(),
            "{method}"
        );
        let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
        let res = app.refresh_tokens(&client, refresh).await;
        assert_eq!(res.status(), StatusCode::OK, "{method} refresh");
    }

    // A wrong secret, or none, is invalid_client.
    for client in [
        client_for(id, "coder_wrong_secret", "client_secret_basic"),
        client_for(id, &format!("{secret}x"), "client_secret_post"),
        client_for(id, "", "none"),
    ] {
        let req = AuthRequest::for_client(&client);
        let code = app.authorize_code(&member, &req).await;
        let res = app.exchange_code(&client, &code, &req).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{}", client.method);
        assert_eq!(json_body(res).await["error"], "invalid_client");
    }
}

async fn deleting_a_secret_revokes_its_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let (doomed_id, doomed) = create_secret(&app, &owner, id).await;
    let (_, kept) = create_secret(&app, &owner, id).await;

    let doomed_client = client_for(id, &doomed, "client_secret_basic");
    let kept_client = client_for(id, &kept, "client_secret_basic");
    let with_doomed = app.obtain_tokens(&member, &doomed_client).await;
    let with_kept = app.obtain_tokens(&member, &kept_client).await;
    let doomed_access = with_doomed["access_token"].as_str().unwrap();
    let kept_access = with_kept["access_token"].as_str().unwrap();
    assert!(app.state.access_tokens.verify(doomed_access).await.is_ok());

    let res = app
        .delete(&format!("{APPS}/{id}/secrets/{doomed_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        app.state.access_tokens.verify(doomed_access).await.is_err(),
        "revoked with its secret"
    );
    assert!(
        app.state.access_tokens.verify(kept_access).await.is_ok(),
        "the other secret's tokens live"
    );

    // The deleted secret no longer authenticates, and its refresh token is dead even with the
    // surviving secret.
    let res = app
        .refresh_tokens(
            &doomed_client,
            with_doomed["refresh_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(res).await["error"], "invalid_client");
    let res = app
        .refresh_tokens(&kept_client, with_doomed["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_grant");
    let res = app
        .refresh_tokens(&kept_client, with_kept["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let secrets = json_body(app.get(&format!("{APPS}/{id}/secrets"), Some(&owner)).await).await;
    assert_eq!(secrets.as_array().map(Vec::len), Some(1));
    let res = app
        .delete(&format!("{APPS}/{id}/secrets/{doomed_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "already deleted");
}

async fn deleting_an_app_revokes_its_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let (_, secret) = create_secret(&app, &owner, id).await;
    let client = client_for(id, &secret, "client_secret_post");
    let tokens = app.obtain_tokens(&member, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert!(app.state.access_tokens.verify(access).await.is_ok());

    let res = app.delete(&format!("{APPS}/{id}"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        app.state.access_tokens.verify(access).await.is_err(),
        "revoked with its app"
    );
    let res = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(res).await["error"], "invalid_client");

    assert_app_not_found(app.get(&format!("{APPS}/{id}"), Some(&owner)).await).await;
    assert_app_not_found(app.delete(&format!("{APPS}/{id}"), Some(&owner)).await).await;
    let list = json_body(app.get(APPS, Some(&owner)).await).await;
    assert_eq!(list, json!([]));
    let mine = json_body(app.get(&format!("{APPS}?user_id=me"), Some(&member)).await).await;
    assert_eq!(mine, json!([]));
}

async fn admin_actions_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let owner_id = user_id(&app, &owner).await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let res = send(
        &app,
        Method::PUT,
        &format!("{APPS}/{id}"),
        &owner,
        Some(&json!({"name": "y", "callback_url": CALLBACK})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (secret_id, _) = create_secret(&app, &owner, id).await;
    let res = app
        .delete(&format!("{APPS}/{id}/secrets/{secret_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.delete(&format!("{APPS}/{id}"), Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let registered = app.register_claude().await;

    let logs = app.audit_logs().await;
    let find = |action: &str| logs.iter().find(|l| l.action == action).cloned();
    for action in [
        "oauth2.app.create",
        "oauth2.app.update",
        "oauth2.app_secret.create",
        "oauth2.app_secret.delete",
        "oauth2.app.delete",
    ] {
        let entry = find(action).unwrap_or_else(|| panic!("no {action} in {logs:?}"));
        assert_eq!(
            entry.user_id.map(|u| u.to_string()),
            Some(owner_id.clone()),
            "{action} names the owner"
        );
        assert_eq!(
            entry.client_id.map(|c| c.to_string()).as_deref(),
            Some(id),
            "{action}"
        );
        assert!(!entry.ip.is_empty(), "{action}");
    }
    let secret_entry = find("oauth2.app_secret.create").unwrap();
    assert_eq!(secret_entry.resource_id, secret_id);
    let register = find("oauth2.client.register").expect("a register entry");
    assert_eq!(register.resource_id, registered.id);
    assert!(logs.iter().all(|l| {
        let details = l.details.to_string();
        !details.contains(registered.secret.as_deref().unwrap())
            && !details.contains(registered.registration_token.as_deref().unwrap())
    }));
}

async fn users_list_and_revoke_their_authorized_apps(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let carol = app.create_member(&owner, "carol").await;
    let bob_id = user_id(&app, &bob).await;

    let client = app.register_claude().await;
    let mut req = AuthRequest::for_client(&client);
    req.scope = Some("workspaces:read user:read".into());
    let code = app.authorize_code(&bob, &req).await;
    let res = app.exchange_code(&client, &code, &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    for query in ["me".to_owned(), bob_id.clone()] {
        let res = app
            .get(&format!("{APPS}?user_id={query}"), Some(&bob))
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{query}");
        let list = json_body(res).await;
        let entries = list.as_array().unwrap();
        assert_eq!(entries.len(), 1, "{list}");
        assert_eq!(entries[0]["id"], client.id.as_str());
        assert_eq!(entries[0]["name"], "claudeai");
        let scope = entries[0]["authorization"]["scope"]
            .as_str()
            .unwrap_or_default();
        assert!(
            scope.contains("workspaces:read") && scope.contains("user:read"),
            "{list}"
        );
        assert!(!scope.contains("workspaces:exec"), "{list}");
    }
    // Nobody else sees bob's apps; carol has none of her own.
    let res = app
        .get(&format!("{APPS}?user_id={bob_id}"), Some(&carol))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.get(&format!("{APPS}?user_id=me"), Some(&carol)).await;
    assert_eq!(json_body(res).await, json!([]));
    // The owner may look.
    let res = app
        .get(&format!("{APPS}?user_id={bob_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await.as_array().map(Vec::len), Some(1));

    // Carol revoking the app touches only her own (non-existent) grants.
    let res = app
        .delete(
            &format!("/oauth2/tokens?client_id={}", client.id),
            Some(&carol),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(app.state.access_tokens.verify(access).await.is_ok());

    let res = app
        .delete(
            &format!("/oauth2/tokens?client_id={}", client.id),
            Some(&bob),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        app.state.access_tokens.verify(access).await.is_err(),
        "revoked by the user"
    );
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["error"], "invalid_grant");
    let res = app.get(&format!("{APPS}?user_id=me"), Some(&bob)).await;
    assert_eq!(json_body(res).await, json!([]));

    // Without a session, or with a malformed id, the user revocation is refused.
    let res = app
        .delete(&format!("/oauth2/tokens?client_id={}", client.id), None)
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .delete("/oauth2/tokens?client_id=nope", Some(&bob))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

/// An app's and a secret's `last_used_at`: the first use is recorded, later ones only once the
/// recorded time is a minute old (a token request no longer writes them every time).
async fn last_used_is_recorded_to_the_minute(backend: Backend) {
    use coderd::clock::Clock;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let created = create_app(&app, &owner, json!({"name": "x", "callback_url": CALLBACK})).await;
    let id = created["id"].as_str().unwrap();
    let (secret_id, secret) = create_secret(&app, &owner, id).await;
    let last_used = || async {
        let one = json_body(app.get(&format!("{APPS}/{id}"), Some(&owner)).await).await;
        let secrets = json_body(app.get(&format!("{APPS}/{id}/secrets"), Some(&owner)).await).await;
        let secret = secrets
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == secret_id.as_str())
            .cloned()
            .unwrap();
        let at = |v: &Value| {
            v["last_used_at"]
                .as_str()
                .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc())
        };
        (at(&one), at(&secret))
    };
    assert_eq!(last_used().await, (None, None));

    let member = app.create_member(&owner, "bob").await;
    let client = client_for(id, &secret, "client_secret_basic");
    let t0 = app.clock.now();
    let tokens = app.obtain_tokens(&member, &client).await;
    assert_eq!(last_used().await, (Some(t0), Some(t0)));

    app.clock.advance(chrono::Duration::seconds(59));
    let res = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens = json_body(res).await;
    assert_eq!(last_used().await, (Some(t0), Some(t0)));

    app.clock.advance(chrono::Duration::seconds(1));
    let t1 = app.clock.now();
    let res = app
        .refresh_tokens(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(last_used().await, (Some(t1), Some(t1)));
}
