//! API tokens: `/api/v2/users/{user}/keys/tokens` and `/api/v2/users/{user}/keys/{id}`.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use coderd::clock::Clock;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body, validation_fields};

both_backends!(
    created_token_authenticates_and_is_listed_without_its_secret,
    token_names_are_unique_per_user,
    bad_token_requests_are_400,
    lifetime_zero_means_the_default_and_the_maximum_is_enforced,
    tokens_expire_after_their_lifetime,
    deleting_a_token_revokes_it,
    members_cannot_touch_other_users_tokens,
    owners_manage_other_users_tokens,
);

const HOUR_NS: i64 = 3_600 * 1_000_000_000;

async fn create_token(app: &TestApp, auth: &str, user: &str, body: &Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v2/users/{user}/keys/tokens"),
        Some(auth),
        body,
    )
    .await
}

/// Creates a token and returns the secret `key`.
async fn new_token(app: &TestApp, auth: &str, user: &str, name: &str, lifetime_ns: i64) -> String {
    let res = create_token(
        app,
        auth,
        user,
        &json!({"token_name": name, "lifetime": lifetime_ns}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await["key"]
        .as_str()
        .expect("key")
        .to_owned()
}

async fn list(app: &TestApp, auth: &str, user: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/api/v2/users/{user}/keys/tokens"), Some(auth))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await.as_array().expect("array").clone()
}

fn key_id(key: &str) -> &str {
    key.split_once('-').expect("<id>-<secret>").0
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

async fn created_token_authenticates_and_is_listed_without_its_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let me = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await;
    let start = app.clock.now();

    let res = create_token(
        &app,
        &owner,
        "me",
        &json!({"token_name": "ci-bot", "lifetime": 2 * HOUR_NS}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = json_body(res).await;
    let key = body["key"].as_str().expect("key").to_owned();
    assert_eq!(body.as_object().unwrap().len(), 1, "only the key: {body}");
    let (id, secret) = key.split_once('-').unwrap();
    assert_eq!((id.len(), secret.len()), (10, 22));

    // The key is a credential on its own.
    let who = json_body(app.get("/api/v2/users/me", Some(&key)).await).await;
    assert_eq!(who["id"], me["id"]);
    let bearer = app
        .client
        .get(app.url("/api/v2/users/me"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);

    let res = app.get("/api/v2/users/me/keys/tokens", Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(secret),
        "the secret is shown only once: {text}"
    );
    let keys: Value = serde_json::from_str(&text).unwrap();
    // Browser sessions are not tokens and are not listed.
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let listed = &keys[0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["token_name"], "ci-bot");
    assert_eq!(listed["username"], "owner");
    assert_eq!(listed["user_id"], me["id"]);
    assert_eq!(listed["login_type"], "token");
    assert_eq!(listed["lifetime_seconds"], 7200);
    assert_eq!(time(&listed["created_at"]), start);
    assert_eq!(time(&listed["expires_at"]), start + Duration::hours(2));
    assert!(
        listed.get("hashed_secret").is_none() && listed.get("key").is_none(),
        "{listed}"
    );

    // The same list by username and by id.
    assert_eq!(
        list(&app, &owner, "owner").await,
        keys.as_array().unwrap().clone()
    );
    let by_id = list(&app, &owner, me["id"].as_str().unwrap()).await;
    assert_eq!(by_id, keys.as_array().unwrap().clone());
    // A token can manage tokens too.
    assert_eq!(list(&app, &key, "me").await.len(), 1);
    assert_eq!(
        app.get("/api/v2/users/me/keys/tokens", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn token_names_are_unique_per_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    new_token(&app, &owner, "me", "deploy", HOUR_NS).await;

    let res = create_token(
        &app,
        &owner,
        "me",
        &json!({"token_name": "deploy", "lifetime": HOUR_NS}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let err = json_body(res).await;
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(validation_fields(&err), vec!["token_name"]);
    assert_eq!(
        list(&app, &owner, "me").await.len(),
        1,
        "the failed create left nothing behind"
    );

    // Another user may use the same name.
    let key = new_token(&app, &alice, "me", "deploy", HOUR_NS).await;
    assert_eq!(
        app.get("/api/v2/users/me", Some(&key)).await.status(),
        StatusCode::OK
    );
    // Once deleted, the name is free again.
    let id = list(&app, &owner, "me").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete(&format!("/api/v2/users/me/keys/{id}"), Some(&owner))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    new_token(&app, &owner, "me", "deploy", HOUR_NS).await;
}

async fn bad_token_requests_are_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["token_name"]),
        (json!({"token_name": ""}), vec!["token_name"]),
        (json!({"token_name": "has space"}), vec!["token_name"]),
        (json!({"token_name": "x".repeat(65)}), vec!["token_name"]),
        (
            json!({"token_name": "ok", "lifetime": -1}),
            vec!["lifetime"],
        ),
        (
            json!({"token_name": "ok", "lifetime": 999_999_999}),
            vec!["lifetime"],
        ),
        (
            json!({"token_name": "", "lifetime": -HOUR_NS}),
            vec!["token_name", "lifetime"],
        ),
    ];
    for (body, fields) in cases {
        let res = create_token(&app, &owner, "me", &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err = json_body(res).await;
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert_eq!(validation_fields(&err), fields, "{body}");
    }
    // Wrong types and malformed JSON.
    for body in [
        json!({"token_name": "ok", "lifetime": "1h"}),
        json!({"token_name": "ok", "lifetime": 1.5}),
        json!({"token_name": "ok", "lifetime": u64::MAX}),
        json!({"token_name": 7}),
    ] {
        let res = create_token(&app, &owner, "me", &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let res = app
        .client
        .post(app.url("/api/v2/users/me/keys/tokens"))
        .header("Coder-Session-Token", &owner)
        .header("Content-Type", "text/plain")
        .body("{\"token_name\": \"ok\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        list(&app, &owner, "me").await.is_empty(),
        "no bad request created a token"
    );
}

async fn lifetime_zero_means_the_default_and_the_maximum_is_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let now = app.clock.now();

    new_token(&app, &owner, "me", "default", 0).await;
    let res = create_token(&app, &owner, "me", &json!({"token_name": "omitted"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    new_token(&app, &owner, "me", "max", 8760 * HOUR_NS).await;

    let over = create_token(
        &app,
        &owner,
        "me",
        &json!({"token_name": "over", "lifetime": 8760 * HOUR_NS + 1_000_000_000}),
    )
    .await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    assert_eq!(validation_fields(&json_body(over).await), vec!["lifetime"]);
    let way_over = create_token(
        &app,
        &owner,
        "me",
        &json!({"token_name": "way-over", "lifetime": i64::MAX}),
    )
    .await;
    assert_eq!(way_over.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        validation_fields(&json_body(way_over).await),
        vec!["lifetime"]
    );

    let keys = list(&app, &owner, "me").await;
    let by_name = |name: &str| {
        keys.iter()
            .find(|k| k["token_name"] == name)
            .unwrap_or_else(|| panic!("{name} in {keys:?}"))
    };
    assert_eq!(keys.len(), 3);
    for name in ["default", "omitted"] {
        assert_eq!(by_name(name)["lifetime_seconds"], 168 * 3600, "{name}");
        assert_eq!(
            time(&by_name(name)["expires_at"]),
            now + Duration::hours(168),
            "{name}"
        );
    }
    assert_eq!(by_name("max")["lifetime_seconds"], 8760 * 3600);
    assert_eq!(
        time(&by_name("max")["expires_at"]),
        now + Duration::hours(8760)
    );
}

async fn tokens_expire_after_their_lifetime(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let key = new_token(&app, &owner, "me", "short", HOUR_NS).await;
    let long = new_token(&app, &owner, "me", "long", 0).await;

    app.clock.advance(Duration::minutes(59));
    assert_eq!(
        app.get("/api/v2/users/me", Some(&key)).await.status(),
        StatusCode::OK
    );
    app.clock.advance(Duration::minutes(1));
    let res = app.get("/api/v2/users/me", Some(&key)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    // Other tokens live on, past the session's own lifetime.
    app.clock.advance(Duration::hours(100));
    assert_eq!(
        app.get("/api/v2/users/me", Some(&long)).await.status(),
        StatusCode::OK
    );
    app.clock.advance(Duration::hours(68));
    assert_eq!(
        app.get("/api/v2/users/me", Some(&long)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn deleting_a_token_revokes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let doomed = new_token(&app, &owner, "me", "doomed", HOUR_NS).await;
    let kept = new_token(&app, &owner, "me", "kept", HOUR_NS).await;
    assert_eq!(
        app.get("/api/v2/users/me", Some(&doomed)).await.status(),
        StatusCode::OK
    );

    let res = app
        .delete(
            &format!("/api/v2/users/me/keys/{}", key_id(&doomed)),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v2/users/me", Some(&doomed)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v2/users/me", Some(&kept)).await.status(),
        StatusCode::OK
    );
    let names: Vec<Value> = list(&app, &owner, "me")
        .await
        .iter()
        .map(|k| k["token_name"].clone())
        .collect();
    assert_eq!(names, vec![json!("kept")]);

    // Deleting again, or an id that never existed, is 404.
    let again = app
        .delete(
            &format!("/api/v2/users/me/keys/{}", key_id(&doomed)),
            Some(&owner),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert!(json_body(again).await["message"].as_str().is_some());
    assert_eq!(
        app.delete("/api/v2/users/me/keys/nosuchkey0", Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v2/users/me/keys/{}", key_id(&kept)), None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn members_cannot_touch_other_users_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    let bob = app.create_member(&owner, "bob").await;
    let owner_key = new_token(&app, &owner, "me", "owner-key", HOUR_NS).await;
    let bob_key = new_token(&app, &bob, "me", "bob-key", HOUR_NS).await;
    let bob_id = json_body(app.get("/api/v2/users/me", Some(&bob)).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for user in ["bob", bob_id.as_str(), "owner"] {
        let listed = app
            .get(&format!("/api/v2/users/{user}/keys/tokens"), Some(&alice))
            .await;
        assert_eq!(listed.status(), StatusCode::NOT_FOUND, "list {user}");
        let created = create_token(&app, &alice, user, &json!({"token_name": "sneaky"})).await;
        assert_eq!(created.status(), StatusCode::NOT_FOUND, "create {user}");
    }
    let res = app
        .delete(
            &format!("/api/v2/users/bob/keys/{}", key_id(&bob_key)),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .delete(
            &format!("/api/v2/users/owner/keys/{}", key_id(&owner_key)),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Naming someone else's key under one's own user does not reach it either.
    let res = app
        .delete(
            &format!("/api/v2/users/me/keys/{}", key_id(&bob_key)),
            Some(&alice),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    assert_eq!(
        app.get("/api/v2/users/me", Some(&bob_key)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v2/users/me", Some(&owner_key)).await.status(),
        StatusCode::OK
    );
    assert_eq!(list(&app, &bob, "me").await.len(), 1);
    assert!(list(&app, &alice, "me").await.is_empty());
}

async fn owners_manage_other_users_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let bob_key = new_token(&app, &bob, "me", "laptop", HOUR_NS).await;

    let listed = list(&app, &owner, "bob").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["username"], "bob");
    assert_eq!(listed[0]["id"], key_id(&bob_key));

    // A token the owner creates for bob acts as bob.
    let for_bob = new_token(&app, &owner, "bob", "issued-by-owner", HOUR_NS).await;
    let who = json_body(app.get("/api/v2/users/me", Some(&for_bob)).await).await;
    assert_eq!(who["username"], "bob");
    assert_eq!(list(&app, &bob, "me").await.len(), 2);

    let res = app
        .delete(
            &format!("/api/v2/users/bob/keys/{}", key_id(&bob_key)),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v2/users/me", Some(&bob_key)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The owner's own list never had bob's keys in it.
    assert!(list(&app, &owner, "me").await.is_empty());
    // Keys of an unknown user are 404 for the owner too.
    assert_eq!(
        app.get("/api/v2/users/nobody/keys/tokens", Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
