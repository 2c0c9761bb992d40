//! First user, sign-in and sign-out, sessions, user management, and their bad inputs.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, PASSWORD, TestApp, cookie_attributes, cookie_value, json_body, set_cookie_named,
    validation_fields,
};

both_backends!(
    first_user_is_created_once_and_becomes_owner,
    first_user_post_returns_user_id_and_status_flips,
    concurrent_first_user_requests_create_exactly_one,
    invalid_first_user_requests_are_400_with_validations,
    invalid_first_user_leaves_no_user_behind,
    malformed_bodies_are_rejected,
    oversized_bodies_are_413,
    duplicate_username_or_email_is_409_case_insensitively,
    login_returns_token_and_session_cookie,
    login_failures_do_not_reveal_whether_the_email_exists,
    login_requires_email_and_password,
    login_is_rate_limited_per_ip,
    session_cookie_is_secure_behind_an_https_access_url,
    logout_ends_only_that_session,
    tokens_are_accepted_from_header_bearer_and_cookie,
    sessions_expire_after_a_day,
    garbage_and_unknown_tokens_are_401,
    user_listing_and_creation_are_owner_only,
    user_listing_pages_and_rejects_bad_paging,
    users_are_addressed_by_id_username_or_me,
    members_cannot_see_other_users,
    deleting_users_is_owner_only_and_revokes_their_tokens,
);

fn user_body(username: &str) -> Value {
    json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD})
}

async fn user_count(app: &TestApp, owner: &str) -> i64 {
    let body = json_body(app.get("/api/v2/users", Some(owner)).await).await;
    body["count"]
        .as_i64()
        .unwrap_or_else(|| panic!("no count in {body}"))
}

async fn first_user_is_created_once_and_becomes_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let token = app.create_owner().await;
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::OK
    );

    let again = app
        .post_json(
            "/api/v2/users/first",
            None,
            &json!({"email": "other@example.com", "username": "other", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let me = json_body(app.get("/api/v2/users/me", Some(&token)).await).await;
    assert_eq!(me["username"], "owner");
    assert_eq!(
        me["roles"],
        json!([{"name": "owner", "display_name": "Owner"}])
    );
    // The second attempt created nobody.
    assert_eq!(user_count(&app, &token).await, 1);
}

async fn first_user_post_returns_user_id_and_status_flips(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let missing = app.get("/api/v2/users/first", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        json_body(missing).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    let created = app
        .post_json(
            "/api/v2/users/first",
            None,
            &json!({"email": "Admin@Example.com", "username": "admin", "password": PASSWORD, "name": "Ada Admin"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body = json_body(created).await;
    let id = body["user_id"].as_str().expect("user_id");
    uuid::Uuid::parse_str(id).expect("user_id is a UUID");

    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::OK
    );
    let token = app.login("admin@example.com", PASSWORD).await;
    let me = json_body(app.get("/api/v2/users/me", Some(&token)).await).await;
    assert_eq!(me["id"], id);
    assert_eq!(me["name"], "Ada Admin");
    assert_eq!(me["email"], "Admin@Example.com");
    assert_eq!(me["status"], "active");
    assert_eq!(me["login_type"], "password");
    // Nothing secret is ever part of a user.
    let text = me.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
}

async fn concurrent_first_user_requests_create_exactly_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..6 {
        let req = app
            .request(Method::POST, "/api/v2/users/first", None)
            .json(&user_body(&format!("racer{i}")));
        requests.spawn(async move { req.send().await.expect("request").status() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = requests.join_next().await {
        statuses.push(status.expect("task"));
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 5), "{statuses:?}");

    // Exactly one account exists, and it is the owner.
    let mut owner = None;
    for i in 0..6 {
        let res = app
            .post_json(
                "/api/v2/users/login",
                None,
                &json!({"email": format!("racer{i}@example.com"), "password": PASSWORD}),
            )
            .await;
        if res.status() == StatusCode::CREATED {
            assert!(owner.is_none(), "two racers can sign in");
            owner = Some(
                json_body(res).await["session_token"]
                    .as_str()
                    .expect("token")
                    .to_owned(),
            );
        }
    }
    let owner = owner.expect("the winner can sign in");
    assert_eq!(user_count(&app, &owner).await, 1);
    let me = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await;
    assert_eq!(me["roles"][0]["name"], "owner");
}

async fn invalid_first_user_requests_are_400_with_validations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["email", "username", "password"]),
        (
            json!({"username": "alice", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"email": "alice@example.com", "password": PASSWORD}),
            vec!["username"],
        ),
        (
            json!({"email": "alice@example.com", "username": "alice"}),
            vec!["password"],
        ),
        (
            json!({"email": "not-an-email", "username": "alice", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"email": "alice@localhost", "username": "alice", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"email": "alice@example.com", "username": "bad_name!", "password": PASSWORD}),
            vec!["username"],
        ),
        (
            json!({"email": "alice@example.com", "username": "-alice", "password": PASSWORD}),
            vec!["username"],
        ),
        (
            json!({"email": "alice@example.com", "username": "a".repeat(33), "password": PASSWORD}),
            vec!["username"],
        ),
        (
            json!({"email": "alice@example.com", "username": "alice", "password": "short7!"}),
            vec!["password"],
        ),
        (
            json!({"email": "alice@example.com", "username": "alice12345", "password": "Alice12345"}),
            vec!["password"],
        ),
        (
            json!({"email": "alice@example.com", "username": "alice", "password": "alice@example.com"}),
            vec!["password"],
        ),
        (
            json!({"email": "alice@example.com", "username": "alice", "password": PASSWORD, "name": "x".repeat(129)}),
            vec!["name"],
        ),
    ];
    for (body, fields) in cases {
        let res = app.post_json("/api/v2/users/first", None, &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        let err = json_body(res).await;
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        let mut got = validation_fields(&err);
        got.sort();
        let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "for {body}: {err}");
    }
    // Owner-created users follow the same rules.
    let owner = app.create_owner().await;
    let res = app
        .post_json(
            "/api/v2/users",
            Some(&owner),
            &json!({"email": "bob@example.com", "username": "bob", "password": "bob"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(validation_fields(&json_body(res).await), vec!["password"]);
}

async fn invalid_first_user_leaves_no_user_behind(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bad = app
        .post_json(
            "/api/v2/users/first",
            None,
            &json!({"email": "owner@example.com", "username": "owner", "password": "short"}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // The same names are still free, and the first-user slot is still open.
    let token = app.create_owner().await;
    assert_eq!(user_count(&app, &token).await, 1);
}

async fn malformed_bodies_are_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post_raw = |path: &'static str, content_type: Option<&'static str>, body: &'static str| {
        let mut req = app.request(Method::POST, path, None).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        req.send()
    };
    for path in ["/api/v2/users/first", "/api/v2/users/login"] {
        for body in [
            "{",
            "not json",
            "[]",
            "{\"email\": 5, \"password\": true}",
            "",
        ] {
            let res = post_raw(path, Some("application/json"), body)
                .await
                .expect("request");
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path} {body:?}");
            let err = json_body(res).await;
            assert!(
                err["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{err}"
            );
        }
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let res = post_raw(path, content_type, "{}").await.expect("request");
            assert_eq!(
                res.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {content_type:?}"
            );
            assert!(json_body(res).await["message"].as_str().is_some());
        }
    }
    // A charset parameter is still JSON.
    let res = post_raw(
        "/api/v2/users/login",
        Some("application/json; charset=utf-8"),
        "{\"email\": \"x@example.com\", \"password\": \"whatever1\"}",
    )
    .await
    .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let too_big = json!({"email": "a@example.com", "username": "a", "password": PASSWORD, "name": "x".repeat(1024 * 1024)});
    let res = app.post_json("/api/v2/users/first", None, &too_big).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );

    // Just under the cap the body is read and judged on its content.
    let under = json!({"email": "a@example.com", "username": "a", "password": PASSWORD, "name": "x".repeat(1024 * 1024 - 200)});
    let res = app.post_json("/api/v2/users/first", None, &under).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(validation_fields(&json_body(res).await), vec!["name"]);
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn duplicate_username_or_email_is_409_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    app.create_member(&owner, "alice").await;
    assert_eq!(user_count(&app, &owner).await, 2);

    let cases = [
        (
            json!({"email": "other@example.com", "username": "ALICE", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "other@example.com", "username": "owner", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "Alice@EXAMPLE.com", "username": "alice2", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": " alice@example.com ", "username": "alice3", "password": PASSWORD}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let res = app.post_json("/api/v2/users", Some(&owner), &body).await;
        assert_eq!(res.status(), StatusCode::CONFLICT, "{body}");
        let err = json_body(res).await;
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        assert_eq!(validation_fields(&err), vec![field], "{body}: {err}");
    }
    // No failed request left a row behind.
    assert_eq!(user_count(&app, &owner).await, 2);
    let list = json_body(app.get("/api/v2/users", Some(&owner)).await).await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "owner"]);
}

async fn login_returns_token_and_session_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    // Email matching is case-insensitive and ignores surrounding space.
    let res = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": " OWNER@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookie = set_cookie_named(&res, "coder_session_token").expect("session cookie");
    let body = json_body(res).await;
    let token = body["session_token"].as_str().expect("session_token");
    assert_eq!(cookie_value(&cookie), token);
    let attrs = cookie_attributes(&cookie);
    assert!(attrs.contains(&"httponly".to_owned()), "{cookie}");
    assert!(attrs.contains(&"samesite=lax".to_owned()), "{cookie}");
    assert!(attrs.contains(&"path=/".to_owned()), "{cookie}");
    assert!(
        !attrs.contains(&"secure".to_owned()),
        "plain-http access URL: {cookie}"
    );

    let me = json_body(app.get("/api/v2/users/me", Some(token)).await).await;
    assert_eq!(me["username"], "owner");
}

async fn login_failures_do_not_reveal_whether_the_email_exists(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let wrong_password = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner@example.com", "password": "not-the-password"}),
        )
        .await;
    let unknown_email = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "nobody@example.com", "password": "not-the-password"}),
        )
        .await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie_named(&wrong_password, "coder_session_token").is_none());
    let a = json_body(wrong_password).await;
    let b = json_body(unknown_email).await;
    assert!(a["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(a, b);
}

async fn login_requires_email_and_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let cases = [
        (json!({}), vec!["email", "password"]),
        (json!({"email": "owner@example.com"}), vec!["password"]),
        (json!({"email": "  ", "password": PASSWORD}), vec!["email"]),
    ];
    for (body, fields) in cases {
        let res = app.post_json("/api/v2/users/login", None, &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(validation_fields(&json_body(res).await), fields, "{body}");
    }
}

async fn login_is_rate_limited_per_ip(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.login_rate_limit = 3).await;
    let created = app
        .post_json("/api/v2/users/first", None, &user_body("owner"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let attempt = |password: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v2/users/login",
                None,
                &json!({"email": "owner@example.com", "password": password}),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("wrong-password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password is refused until the window ends, and no session is issued.
    let limited = attempt(PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(set_cookie_named(&limited, "coder_session_token").is_none());
    assert!(json_body(limited).await.get("session_token").is_none());

    app.clock.advance(Duration::seconds(30));
    assert_eq!(
        attempt(PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(Duration::seconds(31));
    let ok = attempt(PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

async fn session_cookie_is_secure_behind_an_https_access_url(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.access_url = Some(url::Url::parse("https://coder.example.com").unwrap());
    })
    .await;
    assert_eq!(app.url, "https://coder.example.com");
    let direct = format!("http://{}", app.addr);
    let created = app
        .client
        .post(format!("{direct}/api/v2/users/first"))
        .json(&user_body("owner"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let res = app
        .client
        .post(format!("{direct}/api/v2/users/login"))
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookie = set_cookie_named(&res, "coder_session_token").expect("session cookie");
    assert!(
        cookie_attributes(&cookie).contains(&"secure".to_owned()),
        "{cookie}"
    );
    // The sign-in page's CSRF cookie too, with the `__Host-` prefix: Secure, Path=/, no Domain,
    // so no sibling subdomain or plain-http response can plant one.
    let page = app
        .client
        .get(format!("{direct}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(set_cookie_named(&page, "coder_csrf").is_none());
    let csrf = set_cookie_named(&page, "__Host-coder_csrf").expect("csrf cookie");
    let attributes = cookie_attributes(&csrf);
    assert!(attributes.contains(&"secure".to_owned()), "{csrf}");
    assert!(attributes.contains(&"path=/".to_owned()), "{csrf}");
    assert!(
        !attributes.iter().any(|a| a.starts_with("domain")),
        "{csrf}"
    );
}

async fn logout_ends_only_that_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.create_owner().await;
    let second = app.login("owner@example.com", PASSWORD).await;
    assert_ne!(first, second);

    let res = app
        .request(Method::POST, "/api/v2/users/logout", Some(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = set_cookie_named(&res, "coder_session_token").expect("cookie cleared");
    assert_eq!(cookie_value(&cleared), "");
    assert!(
        cookie_attributes(&cleared).contains(&"max-age=0".to_owned()),
        "{cleared}"
    );

    assert_eq!(
        app.get("/api/v2/users/me", Some(&first)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v2/users/me", Some(&second)).await.status(),
        StatusCode::OK
    );
    // Logging out needs a session.
    let anonymous = app
        .request(Method::POST, "/api/v2/users/logout", None)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let again = app
        .request(Method::POST, "/api/v2/users/logout", Some(&first))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

async fn tokens_are_accepted_from_header_bearer_and_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let me = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        json_body(res).await["username"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let url = app.url("/api/v2/users/me");
    assert_eq!(
        me(app.client.get(&url).header("Coder-Session-Token", &token)).await,
        "owner"
    );
    assert_eq!(
        me(app
            .client
            .get(&url)
            .header("Authorization", format!("Bearer {token}")))
        .await,
        "owner"
    );
    assert_eq!(
        me(app
            .client
            .get(&url)
            .header("Authorization", format!("bearer {token}")))
        .await,
        "owner"
    );
    assert_eq!(
        me(app
            .client
            .get(&url)
            .header("Cookie", format!("theme=dark; coder_session_token={token}")))
        .await,
        "owner"
    );
    // Nothing presented: 401 with Coder's error body.
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    // Tokens in the query string are never read.
    let res = app
        .client
        .get(format!("{url}?coder_session_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn sessions_expire_after_a_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    app.clock
        .advance(Duration::hours(23) + Duration::minutes(59));
    assert_eq!(
        app.get("/api/v2/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    app.clock
        .advance(Duration::minutes(1) + Duration::seconds(1));
    let res = app.get("/api/v2/users/me", Some(&token)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    // A new sign-in works again.
    let fresh = app.login("owner@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/api/v2/users/me", Some(&fresh)).await.status(),
        StatusCode::OK
    );
}

async fn garbage_and_unknown_tokens_are_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_owner().await;
    let (id, secret) = token.split_once('-').expect("<id>-<secret>");
    let flipped: String = secret
        .chars()
        .map(|c| if c == 'a' { 'b' } else { 'a' })
        .collect();
    let wrong_secret = format!("{id}-{flipped}");
    let unknown_id = format!("{}-{secret}", "z".repeat(id.len()));
    let long = "x".repeat(4096);
    for bad in [
        "garbage",
        "-",
        "abcdefghij-abcdefghijklmnopqrstuv",
        wrong_secret.as_str(),
        unknown_id.as_str(),
        id,
        long.as_str(),
    ] {
        let res = app.get("/api/v2/users/me", Some(bad)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(json_body(res).await["message"].as_str().is_some());
    }
    let res = app
        .client
        .get(app.url("/api/v2/users/me"))
        .header("Authorization", "Basic b3duZXI6cGFzcw==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The real token still works after all that.
    assert_eq!(
        app.get("/api/v2/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );
}

async fn user_listing_and_creation_are_owner_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        app.get("/api/v2/users", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let owner = app.create_owner().await;

    let res = app
        .post_json("/api/v2/users", Some(&owner), &user_body("alice"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let alice = json_body(res).await;
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["roles"], json!([]));
    assert_eq!(alice["status"], "active");
    uuid::Uuid::parse_str(alice["id"].as_str().unwrap()).unwrap();

    let member = app.login("alice@example.com", PASSWORD).await;
    let res = app.get("/api/v2/users", Some(&member)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let res = app
        .post_json("/api/v2/users", Some(&member), &user_body("mallory"))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_json("/api/v2/users", None, &user_body("mallory"))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let list = json_body(app.get("/api/v2/users", Some(&owner)).await).await;
    assert_eq!(list["count"], 2);
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "owner"]);
    assert!(!list.to_string().contains("argon2"));
}

async fn user_listing_pages_and_rejects_bad_paging(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for name in ["carol", "Bob", "alice"] {
        let res = app
            .post_json("/api/v2/users", Some(&owner), &user_body(name))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let page = |query: &'static str| {
        let app = &app;
        let owner = owner.clone();
        async move {
            let res = app
                .get(&format!("/api/v2/users{query}"), Some(&owner))
                .await;
            assert_eq!(res.status(), StatusCode::OK, "{query}");
            let body = json_body(res).await;
            let names: Vec<String> = body["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned())
                .collect();
            (names, body["count"].as_i64().unwrap())
        }
    };
    assert_eq!(
        page("").await,
        (
            vec!["alice".into(), "Bob".into(), "carol".into(), "owner".into()],
            4
        )
    );
    assert_eq!(
        page("?limit=2").await,
        (vec!["alice".into(), "Bob".into()], 4)
    );
    assert_eq!(
        page("?limit=2&offset=2").await,
        (vec!["carol".into(), "owner".into()], 4)
    );
    assert_eq!(page("?offset=3").await, (vec!["owner".into()], 4));
    assert_eq!(page("?limit=10&offset=4").await, (vec![], 4));

    for bad in [
        "?limit=0",
        "?limit=-1",
        "?limit=1001",
        "?limit=abc",
        "?offset=-1",
        "?offset=x",
        "?limit=1.5",
    ] {
        let res = app.get(&format!("/api/v2/users{bad}"), Some(&owner)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            json_body(res).await["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{bad}"
        );
    }
    let res = app
        .get("/api/v2/users?limit=0&offset=-5", Some(&owner))
        .await;
    let mut fields = validation_fields(&json_body(res).await);
    fields.sort();
    assert_eq!(fields, vec!["limit", "offset"]);
}

async fn users_are_addressed_by_id_username_or_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "alice").await;
    let alice = json_body(app.get("/api/v2/users/me", Some(&member)).await).await;
    let id = alice["id"].as_str().unwrap().to_owned();

    for path in [
        format!("/api/v2/users/{id}"),
        "/api/v2/users/alice".to_owned(),
        "/api/v2/users/ALICE".to_owned(),
    ] {
        for token in [&owner, &member] {
            let res = app.get(&path, Some(token)).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let user = json_body(res).await;
            assert_eq!(user["id"], id.as_str());
            assert_eq!(user["username"], "alice");
        }
    }
    let me = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await;
    assert_eq!(me["username"], "owner");

    for missing in [
        format!("/api/v2/users/{}", uuid::Uuid::new_v4()),
        "/api/v2/users/nobody".to_owned(),
    ] {
        let res = app.get(&missing, Some(&owner)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        assert!(json_body(res).await["message"].as_str().is_some());
    }
    assert_eq!(
        app.get("/api/v2/users/alice", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn members_cannot_see_other_users(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    app.create_member(&owner, "bob").await;
    let owner_id = json_body(app.get("/api/v2/users/me", Some(&owner)).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = json_body(app.get("/api/v2/users/bob", Some(&owner)).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another user is indistinguishable from one that does not exist.
    let unknown = json_body(app.get("/api/v2/users/nobody", Some(&alice)).await).await;
    for path in [
        "/api/v2/users/bob".to_owned(),
        format!("/api/v2/users/{bob_id}"),
        "/api/v2/users/owner".to_owned(),
        format!("/api/v2/users/{owner_id}"),
    ] {
        let res = app.get(&path, Some(&alice)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json_body(res).await, unknown, "{path}");
    }
}

async fn deleting_users_is_owner_only_and_revokes_their_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    let bob = app.create_member(&owner, "bob").await;
    let alice_id = json_body(app.get("/api/v2/users/me", Some(&alice)).await).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice_api_token = json_body(
        app.post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&alice),
            &json!({"token_name": "ci"}),
        )
        .await,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Members cannot delete anyone, not even themselves.
    assert_eq!(
        app.delete("/api/v2/users/alice", Some(&bob)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/api/v2/users/me", Some(&bob)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/api/v2/users/owner", Some(&bob)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/api/v2/users/alice", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The owner cannot delete itself, by any name.
    for me in ["me", "owner", "OWNER"] {
        let res = app
            .delete(&format!("/api/v2/users/{me}"), Some(&owner))
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{me}");
    }
    assert_eq!(
        app.delete("/api/v2/users/nobody", Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(user_count(&app, &owner).await, 3);

    let res = app
        .delete(&format!("/api/v2/users/{alice_id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v2/users/me", Some(&alice)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v2/users/me", Some(&alice_api_token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v2/users/alice", Some(&owner)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/v2/users/{alice_id}"), Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/api/v2/users/alice", Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(user_count(&app, &owner).await, 2);
    let res = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Others are untouched.
    assert_eq!(
        app.get("/api/v2/users/me", Some(&bob)).await.status(),
        StatusCode::OK
    );

    // The username and email are free again, for a new account with a new id.
    let res = app
        .post_json("/api/v2/users", Some(&owner), &user_body("alice"))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let new_alice = json_body(res).await;
    assert_ne!(new_alice["id"], alice_id.as_str());
    let token = app.login("alice@example.com", PASSWORD).await;
    let me = json_body(app.get("/api/v2/users/me", Some(&token)).await).await;
    assert_eq!(me["id"], new_alice["id"]);
    assert_eq!(user_count(&app, &owner).await, 3);
}

both_backends!(nul_bytes_are_ordinary_bad_input);

/// PostgreSQL cannot store NUL; every such input must still get a 4xx, never a 500.
async fn nul_bytes_are_ordinary_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;

    let wrong = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner@example.com", "password": "wrong-password"}),
        )
        .await;
    let nul = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner\u{0}@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(nul.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(nul).await, json_body(wrong).await);

    for path in ["/api/v2/users/a%00b", "/api/v2/users/a%00b/keys/tokens"] {
        assert_eq!(
            app.get(path, Some(&owner)).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let res = app.delete("/api/v2/users/a%00b", Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .delete("/api/v2/users/me/keys/a%00b", Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    for (body, field) in [
        (
            json!({"email": "a\u{0}@example.com", "username": "a", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "username": "a\u{0}", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "username": "a", "password": PASSWORD, "name": "A\u{0}"}),
            "name",
        ),
    ] {
        let res = app.post_json("/api/v2/users", Some(&owner), &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(validation_fields(&json_body(res).await), vec![field]);
    }
    // A password may hold any character: it is only ever hashed.
    let res = app
        .post_json(
            "/api/v2/users",
            Some(&owner),
            &json!({"email": "n@example.com", "username": "n", "password": "pass\u{0}word"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    app.login("n@example.com", "pass\u{0}word").await;

    let res = app
        .post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&owner),
            &json!({"token_name": "a\u{0}"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(user_count(&app, &owner).await, 2);
}
