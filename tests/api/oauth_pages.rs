//! The OAuth2 pages: the owner's applications page (`/deployment/oauth2-provider/apps`) and a
//! user's authorized applications (`/settings/oauth2-provider`), driven as a browser would.

use coderd::domain::Experiments;
use coderd::domain::ScopeSet;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, TestApp, assert_page_headers, cookie_attributes, cookie_value, json_body, location,
    set_cookie_named,
};
use crate::oauth_client::{AuthRequest, CLAUDE_CALLBACK, Pkce, hidden_field};

both_backends!(
    owner_manages_apps_through_the_pages,
    owner_sets_the_metadata_document_policy,
    owner_sees_a_new_secret_exactly_once_and_deletes_it,
    app_forms_show_validation_errors,
    page_forms_refuse_without_csrf,
    members_are_refused_and_visitors_sign_in_first,
    user_revokes_an_authorized_app,
    authorized_page_escapes_app_names,
    pages_answer_404_without_the_oauth2_experiment,
    app_form_round_trips_grant_types,
    the_builtin_cli_is_listed_read_only,
    sign_in_names_the_application_asking,
    consent_sets_powerful_scopes_apart_and_shows_https_icons,
    home_page_links_by_role,
);

const APPS: &str = "/deployment/oauth2-provider/apps";
const AUTHORIZED: &str = "/settings/oauth2-provider";

/// A browser: the session cookie, the CSRF cookie the pages handed out, and the CSRF token of
/// the last form it loaded.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    session: Option<String>,
    csrf: Option<String>,
    token: Option<String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp, session: Option<&str>) -> Browser<'a> {
        Browser {
            app,
            session: session.map(str::to_owned),
            csrf: None,
            token: None,
        }
    }

    fn cookie(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.session {
            parts.push(format!("coder_session_token={s}"));
        }
        if let Some(c) = &self.csrf {
            parts.push(format!("coder_csrf={c}"));
        }
        parts.join("; ")
    }

    pub(crate) async fn get(&mut self, path: &str) -> Response {
        self.get_with_cookie(path, None).await
    }

    /// A GET that also sends `extra` (`name=value`), a cookie a page set for itself.
    pub(crate) async fn get_with_cookie(&mut self, path: &str, extra: Option<&str>) -> Response {
        let mut cookie = self.cookie();
        if let Some(extra) = extra {
            cookie = format!("{cookie}; {extra}");
        }
        let res = self
            .app
            .client
            .get(self.app.url(path))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_page_headers(&res);
        if let Some(c) = set_cookie_named(&res, "coder_csrf") {
            self.csrf = Some(cookie_value(&c));
        }
        res
    }

    /// A page that must answer 200; its CSRF field is kept for the next form.
    pub(crate) async fn page(&mut self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let html = res.text().await.unwrap();
        if html.contains("name=\"csrf_token\"") {
            self.token = hidden_field(&html, "csrf_token");
        }
        html
    }

    /// Submits a form with the page's CSRF token.
    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let csrf = match self.token.clone() {
            Some(token) => token,
            // The page had no form: take the session's token from the home page's sign-out form.
            None => {
                let home = self
                    .app
                    .client
                    .get(self.app.url("/"))
                    .header("Cookie", self.cookie())
                    .send()
                    .await
                    .unwrap();
                hidden_field(&home.text().await.unwrap(), "csrf_token").expect("load a page first")
            }
        };
        let mut form = form.to_vec();
        form.push(("csrf_token", &csrf));
        self.post_raw(path, &form).await
    }

    pub(crate) async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Response {
        let res = self
            .app
            .client
            .post(self.app.url(path))
            .header("Cookie", self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        assert_page_headers(&res);
        res
    }
}

async fn api_apps(app: &TestApp, owner: &str) -> Vec<Value> {
    let res = app.get("/api/v2/oauth2-provider/apps", Some(owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await.as_array().unwrap().clone()
}

async fn api_secrets(app: &TestApp, owner: &str, id: &str) -> Vec<Value> {
    let path = format!("/api/v2/oauth2-provider/apps/{id}/secrets");
    let res = app.get(&path, Some(owner)).await;
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await.as_array().unwrap().clone()
}

/// Creates an application through the form and returns its id.
async fn create_app_with_form(browser: &mut Browser<'_>, name: &str) -> String {
    browser.page(APPS).await;
    let res = browser
        .post(
            APPS,
            &[
                ("name", name),
                (
                    "redirect_uris",
                    "https://app.example.com/callback\r\nhttp://localhost:8787/cb\r\n",
                ),
                ("icon", ""),
                ("scope", "user:read"),
                ("scope", "workspaces:read"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    let id = to
        .strip_prefix(&format!("{APPS}/"))
        .and_then(|rest| rest.strip_suffix("?done=created"))
        .unwrap_or_else(|| panic!("{to}"));
    id.to_owned()
}

/// Whether `secret` authenticates `client_id` at the revocation endpoint (RFC 7009 answers 200
/// for an unknown token once the client is authenticated).
async fn secret_works(app: &TestApp, client_id: &str, secret: &str) -> bool {
    let res = app
        .client
        .post(app.url("/oauth2/revoke"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    res.status() == StatusCode::OK
}

/// Whether the token endpoint authenticates the client with `secret` sent as a form field
/// (`client_secret_post`): a bogus code is then `invalid_grant`, a bad secret `invalid_client`.
async fn token_endpoint_accepts(app: &TestApp, client_id: &str, secret: &str) -> bool {
    let res = app
        .client
        .post(app.url("/oauth2/tokens"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "not-a-code"),
            ("code_verifier", &"v".repeat(43)),
            ("redirect_uri", "https://app.example.com/callback"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    match body["error"].as_str() {
        Some("invalid_grant") => true,
        Some("invalid_client") => false,
        other => panic!("{status}: {other:?} {body}"),
    }
}

async fn owner_manages_apps_through_the_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));

    let html = browser.page(APPS).await;
    assert!(html.contains("<h1>OAuth2 applications</h1>"), "{html}");
    assert!(html.contains("No applications yet."), "{html}");
    assert!(
        html.contains("Dynamic registration (RFC 7591) is on"),
        "{html}"
    );
    // A dynamically registered client shows up, marked as such.
    let claude = app.register_claude().await;
    let html = browser.page(APPS).await;
    assert!(html.contains(&claude.id), "{html}");
    assert!(html.contains("Dynamically"), "{html}");

    let id = create_app_with_form(&mut browser, "Build bot").await;
    let apps = api_apps(&app, &owner).await;
    let created = apps
        .iter()
        .find(|a| a["id"] == id.as_str())
        .expect("listed");
    assert_eq!(created["name"], "Build bot");
    assert_eq!(
        created["redirect_uris"],
        json!([
            "https://app.example.com/callback",
            "http://localhost:8787/cb"
        ])
    );
    assert_eq!(created["scope"], "user:read workspaces:read");
    assert_eq!(created["dynamically_registered"], false);

    let html = browser.page(&format!("{APPS}/{id}?done=created")).await;
    assert!(html.contains("Application created."), "{html}");
    assert!(html.contains(&id));
    assert!(html.contains("https://app.example.com/callback"));
    assert!(html.contains("value=\"user:read\" checked"), "{html}");
    let html = browser.page(APPS).await;
    assert!(
        html.contains("Build bot") && html.contains("By an owner"),
        "{html}"
    );

    // Edit: rename, and clear the allowlist by ticking nothing.
    let res = browser
        .post(
            &format!("{APPS}/{id}"),
            &[
                ("name", "Build bot 2"),
                ("redirect_uris", "https://app.example.com/callback"),
                ("icon", "https://app.example.com/icon.png"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{APPS}/{id}?done=updated"));
    let got = json_body(
        app.get(&format!("/api/v2/oauth2-provider/apps/{id}"), Some(&owner))
            .await,
    )
    .await;
    assert_eq!(got["name"], "Build bot 2");
    assert_eq!(got["scope"], "");
    assert_eq!(got["icon"], "https://app.example.com/icon.png");

    // Delete needs the confirmation box.
    browser.page(&format!("{APPS}/{id}")).await;
    let res = browser.post(&format!("{APPS}/{id}/delete"), &[]).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("Tick the box"));
    assert!(
        api_apps(&app, &owner)
            .await
            .iter()
            .any(|a| a["id"] == id.as_str())
    );
    let res = browser
        .post(&format!("{APPS}/{id}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("{APPS}?done=deleted&name=Build+bot+2")
    );
    let html = browser.page(location(&res)).await;
    assert!(html.contains("Deleted Build bot 2."), "{html}");
    let res = app
        .get(&format!("/api/v2/oauth2-provider/apps/{id}"), Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        browser.get(&format!("{APPS}/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );

    // The registration switch.
    let res = browser
        .post(
            "/deployment/oauth2-provider/settings",
            &[("dynamic_registration", "off")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{APPS}?done=registration-off"));
    let settings = json_body(
        app.get("/api/v2/oauth2-provider/settings", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(settings["dynamic_client_registration_enabled"], false);
    let html = browser.page(APPS).await;
    assert!(
        html.contains("Dynamic registration (RFC 7591) is off"),
        "{html}"
    );
    assert!(html.contains("Turn dynamic registration on"), "{html}");
}

async fn owner_sees_a_new_secret_exactly_once_and_deletes_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    let id = create_app_with_form(&mut browser, "Secretive").await;
    let page = format!("{APPS}/{id}");
    let html = browser.page(&page).await;
    assert!(html.contains("No secrets yet"), "{html}");

    // Post/redirect/get: the POST answers 303 and hands the secret to the page in a short-lived
    // cookie scoped to it, so a reload neither re-submits nor lands on a POST-only URL.
    let res = browser.post(&format!("{page}/secrets"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{page}?done=secret-created"));
    let flash = set_cookie_named(&res, "coder_new_client_secret").expect("the flash cookie");
    let attrs = cookie_attributes(&flash);
    for attr in [
        "httponly",
        "samesite=strict",
        &format!("path={page}").to_lowercase(),
    ] {
        assert!(attrs.contains(&attr.to_owned()), "{attr}: {flash}");
    }
    assert!(
        attrs
            .iter()
            .any(|a| a.starts_with("max-age=") && a != "max-age=0"),
        "{flash}"
    );
    let flash = format!("coder_new_client_secret={}", cookie_value(&flash));
    let res = browser.get_with_cookie(location(&res), Some(&flash)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = set_cookie_named(&res, "coder_new_client_secret").expect("cleared");
    assert!(
        cookie_attributes(&cleared).contains(&"max-age=0".to_owned()),
        "{cleared}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Secret created."), "{html}");
    assert!(html.contains("It will not be shown again."), "{html}");
    let shown = html
        .split("<div class=\"secret\"")
        .nth(1)
        .expect("the secret box");
    let secret = shown
        .split("<code>")
        .nth(1)
        .and_then(|s| s.split("</code>").next())
        .expect("the secret")
        .to_owned();
    assert!(secret.len() >= 20, "{secret}");
    assert!(secret_works(&app, &id, &secret).await);
    assert!(token_endpoint_accepts(&app, &id, &secret).await);
    assert!(!token_endpoint_accepts(&app, &id, "wrong-secret-0123456789").await);

    let secrets = api_secrets(&app, &owner, &id).await;
    assert_eq!(secrets.len(), 1);
    let truncated = secrets[0]["client_secret_truncated"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = secrets[0]["id"].as_str().unwrap().to_owned();
    assert!(html.contains(&truncated));

    // Never again: the page lists only the truncated form.
    let html = browser.page(&format!("{page}?done=secret-created")).await;
    assert!(!html.contains(&secret), "the full secret was shown twice");
    assert!(!html.contains("It will not be shown again."));
    assert!(html.contains(&truncated), "{html}");

    let res = browser
        .post(&format!("{page}/secrets/{secret_id}/delete"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{page}?done=secret-deleted"));
    assert!(api_secrets(&app, &owner, &id).await.is_empty());
    assert!(!secret_works(&app, &id, &secret).await);
    let html = browser.page(location(&res)).await;
    assert!(html.contains("Secret deleted."), "{html}");
    assert!(!html.contains(&truncated));
}

async fn app_forms_show_validation_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    browser.page(APPS).await;
    let res = browser
        .post(
            APPS,
            &[
                ("name", "Kept <name>"),
                ("redirect_uris", "not a url"),
                ("scope", "nonsense"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("class=\"error\""), "{html}");
    assert!(html.contains("class=\"field-error\">not a url:"), "{html}");
    assert!(html.contains("Unknown scopes: nonsense"), "{html}");
    // What was typed is kept, escaped.
    assert!(html.contains("value=\"Kept &#60;name&#62;\""), "{html}");
    assert!(html.contains(">not a url</textarea>"), "{html}");
    assert!(api_apps(&app, &owner).await.is_empty());

    let res = browser
        .post(APPS, &[("name", ""), ("redirect_uris", "")])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("At least one redirect URI is required for the authorization_code grant."),
        "{html}"
    );
}

async fn page_forms_refuse_without_csrf(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    let id = create_app_with_form(&mut browser, "Guarded").await;
    let form = [
        ("name", "Sneaky"),
        ("redirect_uris", "https://evil.example/cb"),
    ];

    // No token at all, and a token that does not match the cookie.
    for csrf in [None, Some("x".repeat(32))] {
        let mut fields = form.to_vec();
        if let Some(csrf) = &csrf {
            fields.push(("csrf_token", csrf));
        }
        for path in [
            APPS.to_owned(),
            format!("{APPS}/{id}"),
            format!("{APPS}/{id}/secrets"),
            format!("{APPS}/{id}/delete"),
            "/deployment/oauth2-provider/settings".to_owned(),
        ] {
            let mut fields = fields.clone();
            fields.push(("confirm", "yes"));
            fields.push(("dynamic_registration", "off"));
            let res = browser.post_raw(&path, &fields).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
            assert!(res.text().await.unwrap().contains("Nothing was changed"));
        }
    }
    let apps = api_apps(&app, &owner).await;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["name"], "Guarded");
    assert!(api_secrets(&app, &owner, &id).await.is_empty());
    let settings = json_body(
        app.get("/api/v2/oauth2-provider/settings", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(settings["dynamic_client_registration_enabled"], true);
}

async fn members_are_refused_and_visitors_sign_in_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;

    let mut visitor = Browser::new(&app, None);
    for (path, to) in [
        (APPS.to_owned(), "/login?redirect=%2Fdeployment%2Foauth2-provider%2Fapps".to_owned()),
        (
            format!("{APPS}/0b9e3c3e-7a4f-4c1e-9a8e-0c9d2d6f1a11"),
            "/login?redirect=%2Fdeployment%2Foauth2-provider%2Fapps%2F0b9e3c3e-7a4f-4c1e-9a8e-0c9d2d6f1a11"
                .to_owned(),
        ),
        (AUTHORIZED.to_owned(), "/login?redirect=%2Fsettings%2Foauth2-provider".to_owned()),
    ] {
        let res = visitor.get(&path).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), to);
    }
    let res = visitor.post_raw(APPS, &[("name", "x")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let mut member = Browser::new(&app, Some(&bob));
    let res = member.get(APPS).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Only an owner can manage OAuth2 applications.")
    );
    // Even with a valid form token, a member cannot create applications.
    member.page(AUTHORIZED).await;
    let res = member
        .post(
            APPS,
            &[
                ("name", "Mine"),
                ("redirect_uris", "https://app.example.com/cb"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(api_apps(&app, &owner).await.is_empty());

    // The home page links to what each may use.
    let html = member.page("/").await;
    assert!(
        html.contains("href=\"/settings/oauth2-provider\""),
        "{html}"
    );
    assert!(
        !html.contains("href=\"/deployment/oauth2-provider/apps\""),
        "{html}"
    );
    let html = Browser::new(&app, Some(&owner)).page("/").await;
    assert!(
        html.contains("href=\"/settings/oauth2-provider\""),
        "{html}"
    );
    assert!(html.contains(">OAuth2 applications</a>"), "{html}");
}

async fn user_revokes_an_authorized_app(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let mut browser = Browser::new(&app, Some(&bob));
    let html = browser.page(AUTHORIZED).await;
    assert!(
        html.contains("You have not authorized any applications."),
        "{html}"
    );

    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&bob, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(app.state.access_tokens.verify(&access).await.is_ok());

    let html = browser.page(AUTHORIZED).await;
    assert!(html.contains("<h2>claudeai</h2>"), "{html}");
    let granted = ScopeSet::parse_known(tokens["scope"].as_str().unwrap());
    assert!(!granted.is_empty());
    for scope in granted.iter() {
        assert!(
            html.contains(scope.description()),
            "{}: {html}",
            scope.name()
        );
    }
    assert!(html.contains("Revoke access"), "{html}");
    let app_id = hidden_field(&html, "app_id").expect("app_id field");
    assert_eq!(app_id, client.id);

    // Without the form token nothing happens.
    let res = browser
        .post_raw("/settings/oauth2-provider/revoke", &[("app_id", &app_id)])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(app.state.access_tokens.verify(&access).await.is_ok());

    // Another user cannot revoke bob's access: the app is not in their list.
    let mut owner_browser = Browser::new(&app, Some(&owner));
    owner_browser.page(AUTHORIZED).await;
    let res = owner_browser
        .post("/settings/oauth2-provider/revoke", &[("app_id", &app_id)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(app.state.access_tokens.verify(&access).await.is_ok());

    let res = browser
        .post("/settings/oauth2-provider/revoke", &[("app_id", &app_id)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{AUTHORIZED}?revoked=claudeai"));
    assert!(app.state.access_tokens.verify(&access).await.is_err());
    let html = browser.page(location(&res)).await;
    assert!(html.contains("Revoked access for claudeai."), "{html}");
    assert!(!html.contains("<h2>claudeai</h2>"), "{html}");
    // The refresh token went with it.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn authorized_page_escapes_app_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let evil = "<script>alert(1)</script>";
    let client = app
        .register_client(json!({
            "client_name": evil,
            "token_endpoint_auth_method": "client_secret_post",
            "redirect_uris": [CLAUDE_CALLBACK],
        }))
        .await;
    app.obtain_tokens(&owner, &client).await;

    let mut browser = Browser::new(&app, Some(&owner));
    for path in [
        AUTHORIZED.to_owned(),
        APPS.to_owned(),
        format!("{APPS}/{}", client.id),
    ] {
        let html = browser.page(&path).await;
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {html}"
        );
        assert!(!html.contains(evil), "{path}: {html}");
    }
    browser.page(AUTHORIZED).await;
    let res = browser
        .post(
            "/settings/oauth2-provider/revoke",
            &[("app_id", &client.id)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(
        to.starts_with("/settings/oauth2-provider?revoked=%3Cscript%3E"),
        "{to}"
    );
    let html = browser.page(to).await;
    assert!(
        html.contains("Revoked access for &#60;script&#62;alert(1)&#60;/script&#62;."),
        "{html}"
    );
    assert!(!html.contains(evil), "{html}");
}

async fn pages_answer_404_without_the_oauth2_experiment(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.experiments = Experiments::of(&[])).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    for path in [APPS, AUTHORIZED] {
        let res = browser.get(path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(res.text().await.unwrap().contains("--experiments=oauth2"));
    }
    // Visitors too: the pages do not exist, so there is nothing to sign in for.
    let res = Browser::new(&app, None).get(AUTHORIZED).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Neither the home page nor the header's navigation links to pages that do not exist.
    let html = browser.page("/").await;
    assert!(html.contains("href=\"/deployment/users\""), "{html}");
    assert!(!html.contains("oauth2-provider"), "{html}");
}

async fn owner_sets_the_metadata_document_policy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    let html = browser.page(APPS).await;
    assert!(html.contains("Client ID metadata documents"), "{html}");
    assert!(
        html.contains("name=\"cimd_policy\" value=\"any\" checked"),
        "{html}"
    );
    let res = browser
        .post(
            "/deployment/oauth2-provider/settings/metadata-documents",
            &[
                ("cimd_policy", "listed_hosts"),
                ("cimd_hosts", "claude.ai\nVSCode.dev"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{APPS}?done=metadata-documents"));
    let settings = json_body(
        app.get("/api/v2/oauth2-provider/settings", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(
        settings["client_id_metadata_document_policy"],
        "listed_hosts"
    );
    assert_eq!(
        settings["client_id_metadata_document_hosts"],
        json!(["claude.ai", "vscode.dev"])
    );
    let html = browser
        .page(&format!("{APPS}?done=metadata-documents"))
        .await;
    assert!(
        html.contains("Client metadata document policy saved."),
        "{html}"
    );
    assert!(html.contains("value=\"listed_hosts\" checked"), "{html}");
    assert!(html.contains("claude.ai\nvscode.dev"), "{html}");
    // Listed hosts without a host is refused, and nothing changes.
    let res = browser
        .post(
            "/deployment/oauth2-provider/settings/metadata-documents",
            &[("cimd_policy", "listed_hosts"), ("cimd_hosts", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = browser
        .post(
            "/deployment/oauth2-provider/settings/metadata-documents",
            &[("cimd_policy", "none"), ("cimd_hosts", "claude.ai")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let meta = json_body(
        app.get("/.well-known/oauth-authorization-server", None)
            .await,
    )
    .await;
    assert!(
        meta.get("client_id_metadata_document_supported").is_none(),
        "{meta}"
    );
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const CLI_ID: &str = "c0de0c11-0000-4000-8000-000000000001";

async fn api_app(app: &TestApp, owner: &str, id: &str) -> Value {
    let res = app
        .get(&format!("/api/v2/oauth2-provider/apps/{id}"), Some(owner))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await
}

/// Whether the page has the grant checkbox `value`, ticked or not.
fn grant_box(html: &str, value: &str) -> Option<bool> {
    let marker = format!("name=\"grant_type\" value=\"{value}\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].starts_with(" checked"))
}

async fn app_form_round_trips_grant_types(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));

    // A new application starts with the API's default grants ticked.
    let html = browser.page(APPS).await;
    assert_eq!(grant_box(&html, "authorization_code"), Some(true), "{html}");
    assert_eq!(grant_box(&html, "refresh_token"), Some(true), "{html}");
    assert_eq!(grant_box(&html, DEVICE_GRANT), Some(false), "{html}");

    // A device-only application needs no redirect URI.
    let res = browser
        .post(
            APPS,
            &[
                ("name", "Headless"),
                ("redirect_uris", ""),
                ("grant_types_shown", "1"),
                ("grant_type", DEVICE_GRANT),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let id = location(&res)
        .strip_prefix(&format!("{APPS}/"))
        .and_then(|rest| rest.strip_suffix("?done=created"))
        .unwrap()
        .to_owned();
    assert_eq!(
        api_app(&app, &owner, &id).await["grant_types"],
        json!([DEVICE_GRANT])
    );
    let page = format!("{APPS}/{id}");
    let html = browser.page(&page).await;
    assert_eq!(grant_box(&html, DEVICE_GRANT), Some(true), "{html}");
    assert_eq!(
        grant_box(&html, "authorization_code"),
        Some(false),
        "{html}"
    );
    assert_eq!(grant_box(&html, "refresh_token"), Some(false), "{html}");

    // Edited to the browser grants, which need a redirect URI.
    let res = browser
        .post(
            &page,
            &[
                ("name", "Headless"),
                ("redirect_uris", "https://app.example.com/callback"),
                ("grant_types_shown", "1"),
                ("grant_type", "authorization_code"),
                ("grant_type", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api_app(&app, &owner, &id).await["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let html = browser.page(&page).await;
    assert_eq!(grant_box(&html, "authorization_code"), Some(true), "{html}");
    assert_eq!(grant_box(&html, DEVICE_GRANT), Some(false), "{html}");

    // No box ticked is refused, under the boxes, and nothing changes.
    let res = browser
        .post(
            &page,
            &[
                ("name", "Headless"),
                ("redirect_uris", "https://app.example.com/callback"),
                ("grant_types_shown", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("class=\"field-error\">Choose authorization_code"),
        "{html}"
    );
    assert_eq!(
        api_app(&app, &owner, &id).await["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
}

async fn the_builtin_cli_is_listed_read_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let mut browser = Browser::new(&app, Some(&owner));
    let html = browser.page(APPS).await;
    let builtin = html
        .split("<h2>Built into the server</h2>")
        .nth(1)
        .and_then(|rest| rest.split("<h2>").next())
        .expect("the built-in section");
    assert!(
        builtin.contains("Coder CLI") && builtin.contains(CLI_ID),
        "{builtin}"
    );
    assert!(builtin.contains(DEVICE_GRANT), "{builtin}");
    // Nothing to open, edit or delete; the owners' own list stays empty.
    assert!(
        !builtin.contains("<a ") && !builtin.contains("<form"),
        "{builtin}"
    );
    assert!(html.contains("No applications yet."), "{html}");
    // Its page, reached by id, offers no forms either.
    let html = browser.page(&format!("{APPS}/{CLI_ID}")).await;
    assert!(html.contains("built into the server"), "{html}");
    for form in ["Save changes", "Delete application", "Create secret"] {
        assert!(!html.contains(form), "{form}: {html}");
    }
}

async fn sign_in_names_the_application_asking(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_owner().await;
    let client = app.register_claude().await;
    let res = app
        .authorize_get(None, &AuthRequest::for_client(&client))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = location(&res).to_owned();
    assert!(login.starts_with("/login?redirect="), "{login}");
    let res = app.client.get(app.url(&login)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Sign in to continue to <strong>claudeai</strong>."),
        "{html}"
    );
    // An unknown client, or no authorization request at all: the plain words.
    for redirect in [
        "/oauth2/authorize%3Fclient_id%3D0b9e3c3e-7a4f-4c1e-9a8e-0c9d2d6f1a11",
        "/workspaces",
    ] {
        let res = app
            .client
            .get(app.url(&format!("/login?redirect={redirect}")))
            .send()
            .await
            .unwrap();
        let html = res.text().await.unwrap();
        assert!(!html.contains("Sign in to continue to"), "{html}");
        assert!(
            html.contains("Sign in to your Coder account to continue."),
            "{html}"
        );
    }
}

/// An owner-made application with `icon`, and the consent page asking it for `scope`.
async fn consent_page(app: &TestApp, owner: &str, icon: &str, scope: &str) -> Response {
    let res = app
        .post_json(
            "/api/v2/oauth2-provider/apps",
            Some(owner),
            &json!({
                "name": "Iconic",
                "redirect_uris": ["https://app.example.com/callback"],
                "icon": icon,
            }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json_body(res).await["id"].as_str().unwrap().to_owned();
    let req = AuthRequest {
        client_id: id,
        redirect_uri: Some("https://app.example.com/callback".into()),
        scope: Some(scope.into()),
        resource: None,
        state: Some("s".into()),
        pkce: Pkce::new(),
    };
    let res = app.authorize_get(Some(owner), &req).await;
    assert_eq!(res.status(), StatusCode::OK);
    res
}

async fn consent_sets_powerful_scopes_apart_and_shows_https_icons(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;

    let res = consent_page(
        &app,
        &owner,
        "https://app.example.com/icon.png",
        "user:read workspaces:exec templates:write",
    )
    .await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src 'self' https:;"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(
        html.contains(
            "<img class=\"app-icon\" src=\"https://app.example.com/icon.png\" alt=\"Iconic icon\""
        ),
        "{html}"
    );
    let (ordinary, powerful) = html
        .split_once("<h2 id=\"powerful-heading\">Powerful permissions</h2>")
        .expect("the warning heading");
    assert!(ordinary.contains("<strong>user:read</strong>"), "{html}");
    for scope in ["workspaces:exec", "templates:write"] {
        let item = format!("<strong>{scope}</strong>");
        assert!(!ordinary.contains(&item), "{scope}: {html}");
        assert!(powerful.contains(&item), "{scope}: {html}");
    }
    assert!(!powerful.contains("<strong>user:read</strong>"), "{html}");

    // Ordinary scopes only: no warning. A plain-http icon is not shown.
    let html = consent_page(
        &app,
        &owner,
        "http://app.example.com/icon.png",
        "user:read workspaces:read",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(!html.contains("Powerful permissions"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("<strong>workspaces:read</strong>"), "{html}");
}

async fn home_page_links_by_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let bob = app.create_member(&owner, "bob").await;
    let main = |html: String| html.split("<main").nth(1).expect("main").to_owned();

    let html = main(Browser::new(&app, Some(&owner)).page("/").await);
    assert!(html.contains(&app.url), "the access URL: {html}");
    for link in [
        "/workspaces",
        "/templates",
        "/connect",
        "/settings/tokens",
        "/settings/oauth2-provider",
        "/deployment/oauth2-provider/apps",
        "/deployment/users",
        "/audit",
        "/deployment/general",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}: {html}");
    }

    let html = main(Browser::new(&app, Some(&bob)).page("/").await);
    assert!(html.contains("Signed in as <strong>bob</strong>"), "{html}");
    for link in [
        "/workspaces",
        "/connect",
        "/settings/tokens",
        "/settings/oauth2-provider",
    ] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}: {html}");
    }
    for link in [
        "/templates",
        "/deployment/oauth2-provider/apps",
        "/deployment/users",
        "/audit",
        "/deployment/general",
    ] {
        assert!(
            !html.contains(&format!("href=\"{link}\"")),
            "{link}: {html}"
        );
    }
}
