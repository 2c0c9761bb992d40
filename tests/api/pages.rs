//! Server-rendered pages: `/setup`, `/login`, `/logout` and `/`, with their CSRF protection.

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{
    Backend, PASSWORD, TestApp, assert_html_page, cookie_attributes, cookie_value, json_body,
    location, set_cookie_named,
};

both_backends!(
    pages_carry_csrf_tokens_and_security_headers,
    pages_route_to_setup_then_login,
    setup_form_creates_the_owner_and_signs_in,
    setup_form_is_csrf_protected_and_validated,
    login_form_refuses_without_csrf,
    login_form_signs_in_and_follows_local_redirects_only,
    login_form_rerenders_on_wrong_password,
    login_form_is_rate_limited,
    pages_escape_reflected_input,
    logout_form_ends_the_session,
    signed_in_forms_send_visitors_to_sign_in_and_expired_forms_back,
);

const CSRF_COOKIE: &str = "coder_csrf";
/// Owned form fields.
type Form = Vec<(String, String)>;
const SESSION_COOKIE: &str = "coder_session_token";

/// The value of the hidden (or any) input named `name`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_owned())
}

async fn get_page(app: &TestApp, path: &str, cookie: Option<&str>) -> Response {
    let mut req = app.client.get(app.url(path));
    if let Some(cookie) = cookie {
        req = req.header("Cookie", cookie);
    }
    req.send().await.unwrap()
}

async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut req = app.client.post(app.url(path)).form(form);
    if let Some(cookie) = cookie {
        req = req.header("Cookie", cookie);
    }
    req.send().await.unwrap()
}

/// Loads a form page and returns its CSRF token, checking the cookie and the field agree.
async fn csrf_token(app: &TestApp, path: &str) -> String {
    let res = get_page(app, path, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let cookie = set_cookie_named(&res, CSRF_COOKIE).expect("csrf cookie");
    let html = res.text().await.unwrap();
    let field = input_value(&html, "csrf_token").expect("csrf field");
    assert_eq!(cookie_value(&cookie), field);
    field
}

async fn create_owner_via_api(app: &TestApp) {
    let res = app
        .post_json(
            "/api/v2/users/first",
            None,
            &json!({"email": "owner@example.com", "username": "owner", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// Signs in through the form and returns the session token the cookie carries.
async fn sign_in_with_form(app: &TestApp) -> String {
    let csrf = csrf_token(app, "/login").await;
    let res = post_form(
        app,
        "/login",
        Some(&format!("{CSRF_COOKIE}={csrf}")),
        &[
            ("email", "owner@example.com"),
            ("password", PASSWORD),
            ("redirect", "/"),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    cookie_value(&set_cookie_named(&res, SESSION_COOKIE).expect("session cookie"))
}

async fn pages_carry_csrf_tokens_and_security_headers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/setup", "/login"] {
        if path == "/login" {
            create_owner_via_api(&app).await;
        }
        let res = get_page(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_html_page(&res);
        let cookie = set_cookie_named(&res, CSRF_COOKIE).expect("csrf cookie");
        let attrs = cookie_attributes(&cookie);
        assert!(
            attrs.contains(&"httponly".to_owned()) && attrs.contains(&"samesite=lax".to_owned()),
            "{cookie}"
        );
        let html = res.text().await.unwrap();
        assert!(html.contains("<form method=\"post\""), "{path}");
        assert!(
            html.contains("type=\"hidden\" name=\"csrf_token\""),
            "{path}"
        );
        let token = input_value(&html, "csrf_token").unwrap();
        assert!(token.len() >= 32, "{token}");
        assert_eq!(cookie_value(&cookie), token);

        // A browser that already has a token keeps it.
        let res = get_page(&app, path, Some(&format!("{CSRF_COOKIE}={token}"))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookie_named(&res, CSRF_COOKIE).is_none(), "{path}");
        assert_eq!(
            input_value(&res.text().await.unwrap(), "csrf_token").as_deref(),
            Some(token.as_str())
        );

        // Each new browser gets its own token.
        assert_ne!(csrf_token(&app, path).await, token);
    }
}

async fn pages_route_to_setup_then_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/", "/login"] {
        let res = get_page(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/setup", "{path}");
    }
    create_owner_via_api(&app).await;
    for path in ["/", "/setup"] {
        let res = get_page(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), "/login", "{path}");
    }
    // Signed in, `/` is the home page and `/login` moves on.
    let token = sign_in_with_form(&app).await;
    let session = format!("{SESSION_COOKIE}={token}");
    let res = get_page(&app, "/", Some(&session)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_html_page(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains("owner@example.com"), "{html}");
    assert!(html.contains("action=\"/logout\""));
    let res = get_page(&app, "/login?redirect=/somewhere", Some(&session)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/somewhere");
    // An invalid session cookie counts as signed out.
    let res = get_page(&app, "/", Some(&format!("{SESSION_COOKIE}=garbage"))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
}

async fn setup_form_creates_the_owner_and_signs_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csrf = csrf_token(&app, "/setup").await;
    let res = post_form(
        &app,
        "/setup",
        Some(&format!("{CSRF_COOKIE}={csrf}")),
        &[
            ("email", "admin@example.com"),
            ("username", "admin"),
            ("name", "Ada Admin"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let cookie = set_cookie_named(&res, SESSION_COOKIE).expect("session cookie");
    let attrs = cookie_attributes(&cookie);
    assert!(
        attrs.contains(&"httponly".to_owned()) && attrs.contains(&"samesite=lax".to_owned()),
        "{cookie}"
    );
    let token = cookie_value(&cookie);

    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::OK
    );
    let me = app
        .client
        .get(app.url("/api/v2/users/me"))
        .header("Cookie", format!("{SESSION_COOKIE}={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me = json_body(me).await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["name"], "Ada Admin");
    assert_eq!(me["roles"][0]["name"], "owner");
}

async fn setup_form_is_csrf_protected_and_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let csrf = csrf_token(&app, "/setup").await;
    let other = csrf_token(&app, "/setup").await;
    let fields = |token: &str| -> Form {
        [
            ("email", "admin@example.com"),
            ("username", "admin"),
            ("password", PASSWORD),
            ("csrf_token", token),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let cookie = format!("{CSRF_COOKIE}={csrf}");

    // No cookie, no field, or a field that is not this browser's token.
    for (cookie, form) in [
        (None, fields(&csrf)),
        (Some(cookie.as_str()), fields("")),
        (Some(cookie.as_str()), fields(&other)),
    ] {
        let mut req = app.client.post(app.url("/setup")).form(&form);
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
        assert_html_page(&res);
    }
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );

    // Invalid input re-renders the form with the problem and the typed values.
    let res = post_form(
        &app,
        "/setup",
        Some(&cookie),
        &[
            ("email", "admin@example.com"),
            ("username", "admin"),
            ("password", "short"),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    let html = res.text().await.unwrap();
    assert!(html.contains("class=\"error\""), "{html}");
    assert!(html.contains("at least 8 characters"), "{html}");
    assert_eq!(
        input_value(&html, "email").as_deref(),
        Some("admin@example.com")
    );
    assert_eq!(input_value(&html, "username").as_deref(), Some("admin"));
    assert!(
        input_value(&html, "password").is_none(),
        "the password is never echoed"
    );
    assert_eq!(
        app.get("/api/v2/users/first", None).await.status(),
        StatusCode::NOT_FOUND
    );

    // Once an owner exists, the form cannot create another.
    create_owner_via_api(&app).await;
    let res = app
        .client
        .post(app.url("/setup"))
        .header("Cookie", &cookie)
        .form(&fields(&csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    let owner = app.login("owner@example.com", PASSWORD).await;
    let list = json_body(app.get("/api/v2/users", Some(&owner)).await).await;
    assert_eq!(list["count"], 1, "{list}");
}

async fn login_form_refuses_without_csrf(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_owner_via_api(&app).await;
    let csrf = csrf_token(&app, "/login").await;
    let cookie = format!("{CSRF_COOKIE}={csrf}");
    let creds = [
        ("email", "owner@example.com"),
        ("password", PASSWORD),
        ("redirect", "/"),
    ];
    let with_field = |token: &str| -> Form {
        let mut form = creds.to_vec();
        form.push(("csrf_token", token));
        form.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let without_field: Form = creds
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let cases: Vec<(Option<&str>, Form)> = vec![
        (None, with_field(&csrf)),
        (Some(&cookie), with_field("")),
        (Some(&cookie), without_field),
        (Some(&cookie), with_field("A".repeat(32).as_str())),
    ];
    for (cookie, form) in cases {
        let mut req = app.client.post(app.url("/login")).form(&form);
        if let Some(cookie) = cookie {
            req = req.header("Cookie", cookie);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{cookie:?} {form:?}");
        assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
        let html = res.text().await.unwrap();
        assert!(html.contains("class=\"error\""), "{html}");
    }
}

async fn login_form_signs_in_and_follows_local_redirects_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_owner_via_api(&app).await;
    let csrf = csrf_token(&app, "/login").await;
    let cookie = format!("{CSRF_COOKIE}={csrf}");
    let cases = [
        (
            "/oauth2/authorize?client_id=abc&state=xyz",
            "/oauth2/authorize?client_id=abc&state=xyz",
        ),
        ("", "/"),
        ("https://evil.example", "/"),
        ("https://evil.example/login", "/"),
        ("//evil.example", "/"),
        ("//evil.example/path", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
    ];
    for (redirect, expected) in cases {
        let res = post_form(
            &app,
            "/login",
            Some(&cookie),
            &[
                ("email", "owner@example.com"),
                ("password", PASSWORD),
                ("redirect", redirect),
                ("csrf_token", &csrf),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{redirect}");
        assert_eq!(location(&res), expected, "{redirect}");
        let session = set_cookie_named(&res, SESSION_COOKIE).expect("session cookie");
        let attrs = cookie_attributes(&session);
        assert!(
            attrs.contains(&"httponly".to_owned()) && attrs.contains(&"samesite=lax".to_owned()),
            "{session}"
        );
        let me = app
            .client
            .get(app.url("/api/v2/users/me"))
            .header(
                "Cookie",
                format!("{SESSION_COOKIE}={}", cookie_value(&session)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK, "{redirect}");
    }
    // The form carries a safe redirect from the query into its hidden field.
    let page = get_page(&app, "/login?redirect=/oauth2/authorize%3Fa%3Db", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        input_value(&page, "redirect").as_deref(),
        Some("/oauth2/authorize?a=b")
    );
    let page = get_page(&app, "/login?redirect=https://evil.example", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(input_value(&page, "redirect").as_deref(), Some("/"));
}

async fn login_form_rerenders_on_wrong_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_owner_via_api(&app).await;
    let csrf = csrf_token(&app, "/login").await;
    let cookie = format!("{CSRF_COOKIE}={csrf}");
    let mut pages = Vec::new();
    for email in ["owner@example.com", "nobody@example.com"] {
        let res = post_form(
            &app,
            "/login",
            Some(&cookie),
            &[
                ("email", email),
                ("password", "wrong-password"),
                ("redirect", "/next"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
        assert_html_page(&res);
        let html = res.text().await.unwrap();
        assert!(html.contains("class=\"error\""), "{html}");
        assert!(html.contains("Incorrect email or password."), "{html}");
        assert_eq!(input_value(&html, "email").as_deref(), Some(email));
        assert_eq!(input_value(&html, "redirect").as_deref(), Some("/next"));
        assert_eq!(
            input_value(&html, "csrf_token").as_deref(),
            Some(csrf.as_str())
        );
        pages.push(html.replace(email, "EMAIL"));
    }
    assert_eq!(
        pages[0], pages[1],
        "the page does not reveal whether the email exists"
    );
}

async fn login_form_is_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.login_rate_limit = 2).await;
    create_owner_via_api(&app).await;
    let csrf = csrf_token(&app, "/login").await;
    let cookie = format!("{CSRF_COOKIE}={csrf}");
    let attempt = |password: &'static str| {
        let (app, cookie, csrf) = (&app, &cookie, &csrf);
        async move {
            let form = [
                ("email", "owner@example.com"),
                ("password", password),
                ("csrf_token", csrf),
            ];
            post_form(app, "/login", Some(cookie), &form).await
        }
    };
    assert_eq!(
        attempt("wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        attempt("wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let res = attempt(PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    assert!(res.text().await.unwrap().contains("class=\"error\""));
    // The page and the API share the per-IP budget.
    let api = app
        .post_json(
            "/api/v2/users/login",
            None,
            &json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(attempt(PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

async fn pages_escape_reflected_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_owner_via_api(&app).await;
    let res = get_page(
        &app,
        "/login?redirect=/x%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("/x&#34;&#62;&#60;script&#62;"), "{html}");

    let csrf = csrf_token(&app, "/login").await;
    let res = post_form(
        &app,
        "/login",
        Some(&format!("{CSRF_COOKIE}={csrf}")),
        &[
            ("email", "\"><img src=x onerror=alert(1)>"),
            ("password", "wrong-password"),
            ("csrf_token", &csrf),
        ],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&#34;&#62;&#60;img src=x onerror=alert(1)&#62;"),
        "{html}"
    );
}

async fn logout_form_ends_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_owner_via_api(&app).await;
    let token = sign_in_with_form(&app).await;
    // Signed in, the form's token is bound to the session: the home page's sign-out form.
    let home = get_page(&app, "/", Some(&format!("{SESSION_COOKIE}={token}"))).await;
    let csrf = input_value(&home.text().await.unwrap(), "csrf_token").expect("csrf field");
    let pre_session = csrf_token(&app, "/login").await;
    let both = format!("{CSRF_COOKIE}={pre_session}; {SESSION_COOKIE}={token}");
    let me = |token: String| {
        let app = &app;
        async move { app.get("/api/v2/users/me", Some(&token)).await.status() }
    };

    // Without the CSRF token another site cannot sign the user out.
    let res = post_form(
        &app,
        "/logout",
        Some(&format!("{SESSION_COOKIE}={token}")),
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    let res = post_form(&app, "/logout", Some(&both), &[("csrf_token", "wrong")]).await;
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    // Nor with the pre-session double-submit value, which a subdomain could plant.
    let res = post_form(
        &app,
        "/logout",
        Some(&both),
        &[("csrf_token", &pre_session)],
    )
    .await;
    assert!(set_cookie_named(&res, SESSION_COOKIE).is_none());
    assert_eq!(me(token.clone()).await, StatusCode::OK);

    let res = post_form(&app, "/logout", Some(&both), &[("csrf_token", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    let cleared = set_cookie_named(&res, SESSION_COOKIE).expect("session cookie cleared");
    assert_eq!(cookie_value(&cleared), "");
    assert!(
        cookie_attributes(&cleared).contains(&"max-age=0".to_owned()),
        "{cleared}"
    );
    assert_eq!(me(token.clone()).await, StatusCode::UNAUTHORIZED);
    let res = get_page(&app, "/", Some(&format!("{SESSION_COOKIE}={token}"))).await;
    assert_eq!(location(&res), "/login");
}

/// Every signed-in form post shares one preamble: a visitor is sent to sign in and back to the
/// page the form was on (not to the POST-only action), a missing CSRF token answers the "form
/// expired" page linking back to that page.
async fn signed_in_forms_send_visitors_to_sign_in_and_expired_forms_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let id = "0b9e3c3e-7a4f-4c1e-9a8e-0c9d2d6f1a11";
    let apps = "/deployment/oauth2-provider/apps";
    for (action, page) in [
        ("/settings/tokens".to_owned(), "/settings/tokens".to_owned()),
        (
            format!("/settings/tokens/{id}/delete"),
            "/settings/tokens".to_owned(),
        ),
        (
            format!("/workspaces/{id}/builds"),
            format!("/workspaces/{id}"),
        ),
        (
            format!("/templates/{id}/active"),
            format!("/templates/{id}"),
        ),
        (format!("/templates/{id}/delete"), "/templates".to_owned()),
        (
            "/settings/oauth2-provider/revoke".to_owned(),
            "/settings/oauth2-provider".to_owned(),
        ),
        (
            "/deployment/oauth2-provider/settings".to_owned(),
            apps.to_owned(),
        ),
        (format!("{apps}/{id}/secrets"), format!("{apps}/{id}")),
        (
            format!("{apps}/{id}/secrets/{id}/delete"),
            format!("{apps}/{id}"),
        ),
        (format!("{apps}/{id}/delete"), apps.to_owned()),
    ] {
        let res = post_form(&app, &action, None, &[("name", "x")]).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{action}");
        let back: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
        assert_eq!(
            location(&res),
            format!("/login?redirect={back}"),
            "{action}"
        );

        let session = format!("{SESSION_COOKIE}={owner}");
        let res = post_form(&app, &action, Some(&session), &[("name", "x")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{action}");
        assert_html_page(&res);
        let html = res.text().await.unwrap();
        assert!(html.contains("Nothing was changed."), "{action}: {html}");
        assert!(
            html.contains(&format!("<a href=\"{page}\">Back</a>")),
            "{action}: {html}"
        );
    }
}
