//! A real browser: Debian's Chromium, headless, driven over W3C WebDriver (chromedriver) through
//! first-user setup, a template upload, a workspace with a parameter, stop and start, an API
//! token and the Connect page, with an accessibility check (labels, names, landmarks, contrast)
//! of every page on the way. Without Chromium it fails, naming the packages (`.ci/test-setup`
//! installs them). `CODER_SCREENSHOTS=DIR` saves each page as a PNG.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::oauth_client::AuthRequest;

both_backends!(browser_walks_through_the_dashboard,);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(45);

/// chromedriver and one session of headless Chromium; both end when this is dropped.
struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver; a missing Chromium fails the test (`.ci/test-setup` installs it).
    async fn start() -> Browser {
        let installed =
            std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
        assert!(
            installed,
            "{CHROMIUM} or {CHROMEDRIVER} is missing: install the Debian packages chromium and \
             chromium-driver (.ci/test-setup does)"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready {
                let body: Value = r.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A profile of its own, by which Drop finds this browser's processes.
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Root in CI: Chromium's own sandbox needs an unprivileged user.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            _driver: driver,
            profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            res["value"].get("error").is_none(),
            "webdriver {path}: {res}"
        );
        res["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn url(&self) -> reqwest::Url {
        let url = self.call(reqwest::Method::GET, "/url", None).await;
        url.as_str().unwrap().parse().unwrap()
    }

    async fn path(&self) -> String {
        self.url().await.path().to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until the browser is at a path for which `at` holds (a form's navigation may still
    /// be under way when the click returns).
    async fn wait_path(&self, at: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let path = self.path().await;
            let loaded = self.script("return document.readyState").await == "complete";
            if at(&path) && loaded {
                return path;
            }
            assert!(tokio::time::Instant::now() < deadline, "still at {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits, without reloading, until the page's source contains `needle`.
    async fn wait_source(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let html = self.source().await;
            if html.contains(needle) {
                return html;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {needle:?}: {html}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reloads until the page's source contains `needle`.
    async fn wait_for(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let html = self.source().await;
            if html.contains(needle) {
                return html;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {needle:?}: {html}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.script("location.reload()").await;
        }
    }

    /// Checks the page as an accessibility audit would, and saves a screenshot if asked.
    async fn audit(&self, name: &str) {
        let problems = self.script(AUDIT).await;
        assert_eq!(
            problems,
            json!([]),
            "accessibility problems on {name} ({})",
            self.path().await
        );
        if let Ok(dir) = std::env::var("CODER_SCREENSHOTS") {
            use base64::Engine;
            let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(png.as_str().unwrap())
                .unwrap();
            std::fs::write(format!("{dir}/{name}.png"), bytes).unwrap();
        }
    }
}

impl Drop for Browser {
    /// Ends Chromium, synchronously: chromedriver leaves it running when killed, and a request
    /// to end the session would never be sent once the test's runtime is shutting down. Every
    /// process of this browser names the profile directory only it uses (the test's process
    /// group cannot be used: the test leads it).
    fn drop(&mut self) {
        let dir = self.profile.path().display().to_string();
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--", &dir])
            .status();
    }
}

/// Our own checker (WCAG 2.2): every visible form control has a label or an accessible name
/// (1.3.1, 4.1.2), every button and link has a name (2.4.4, 4.1.2), the page has one `main`
/// and a `header` (1.3.1 landmarks), `html` has a `lang` (3.1.1), and the text of buttons,
/// links and body text has a contrast ratio of at least 4.5:1 against its background (1.4.3).
const AUDIT: &str = r#"
const problems = [];
const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.value || '').trim();
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.closest('label') || el.getAttribute('aria-label');
  if (!labelled) problems.push('unlabelled ' + el.tagName + ' ' + (el.name || el.id));
}
for (const el of document.querySelectorAll('button, a')) {
  if (!name(el)) problems.push('nameless ' + el.tagName + ' ' + el.outerHTML.slice(0, 80));
}
if (document.querySelectorAll('main').length !== 1) problems.push('one main landmark expected');
if (!document.querySelector('header')) problems.push('no header landmark');
if (!document.documentElement.lang) problems.push('no lang on html');
const rgb = (c) => { const m = c.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
for (const el of document.querySelectorAll('button, a, p, td, th, label, h1, h2, dd, dt, span, strong')) {
  if (!el.textContent.trim() || el.offsetParent === null) continue;
  const fg = rgb(getComputedStyle(el).color), bg = background(el);
  const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ' on ' + el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '"');
}
return problems;
"#;

async fn browser_walks_through_the_dashboard(backend: Backend) {
    let b = Browser::start().await;
    let app = TestApp::spawn(backend).await;

    // First-user setup: the home page sends a new deployment there.
    b.go(&format!("{}/", app.url)).await;
    assert_eq!(b.path().await, "/setup");
    b.audit("setup").await;
    b.type_into("input[name=email]", "owner@example.com").await;
    b.type_into("input[name=username]", "owner").await;
    b.type_into("input[name=password]", crate::helpers::PASSWORD)
        .await;
    b.click("button[type=submit]").await;
    b.wait_path(|p| p == "/").await;

    // A template: the folder examples/templates/basic, chosen in the form, named after it.
    let basic = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates/basic");
    b.go(&format!("{}/templates", app.url)).await;
    b.audit("templates").await;
    b.type_into("#template-folder", basic.to_str().unwrap())
        .await;
    b.click("form[enctype] button[type=submit]").await;
    b.wait_path(|p| p.starts_with("/templates/")).await;
    let html = b.wait_for("<td>greeting</td>").await;
    assert!(
        html.contains("<h1>basic</h1>"),
        "named after the folder: {html}"
    );
    b.audit("template").await;

    // A workspace with a parameter; its page follows the build until it runs.
    b.go(&format!("{}/workspaces/new", app.url)).await;
    b.click("main form button[type=submit]").await;
    b.wait_source("id=\"param-greeting\"").await;
    b.audit("workspace-new").await;
    b.type_into("#name", "dev").await;
    b.type_into("#param-greeting", "Howdy").await;
    b.click("main form button[type=submit]").await;
    b.wait_path(|p| p.starts_with("/workspaces/") && p != "/workspaces/new")
        .await;
    b.wait_for("id=\"status\">running<").await;
    b.audit("workspace").await;
    b.click("input[value=stop] + button").await;
    b.wait_path(|p| p.starts_with("/workspaces/")).await;
    b.wait_for("id=\"status\">stopped<").await;
    b.click("input[value=start] + button").await;
    b.wait_path(|p| p.starts_with("/workspaces/")).await;
    b.wait_for("id=\"status\">running<").await;
    b.go(&format!("{}/workspaces", app.url)).await;
    assert!(b.source().await.contains(">dev</a>"));
    b.audit("workspaces").await;

    // An API token, shown once, that works.
    b.go(&format!("{}/settings/tokens", app.url)).await;
    b.type_into("#token-name", "laptop").await;
    b.click("main form button[type=submit]").await;
    b.wait_source("id=\"new-token\"").await;
    let token = b
        .script("return document.getElementById('new-token').value")
        .await;
    let token = token.as_str().unwrap();
    assert_eq!(
        app.get("/api/v2/users/me", Some(token)).await.status(),
        reqwest::StatusCode::OK
    );
    b.audit("tokens").await;

    b.go(&format!("{}/connect", app.url)).await;
    let html = b.source().await;
    assert!(html.contains("/api/experimental/mcp/http"), "{html}");
    b.audit("connect").await;

    // The home page: a dashboard in the layout.
    b.go(&format!("{}/", app.url)).await;
    assert!(b.source().await.contains("href=\"/deployment/users\""));
    b.audit("home").await;

    // An OAuth2 application made with the form; its secret is shown once, after a redirect, so
    // reloading neither re-submits nor shows it again.
    b.go(&format!("{}/deployment/oauth2-provider/apps", app.url))
        .await;
    b.audit("oauth2-apps").await;
    b.type_into("#name", "Build bot").await;
    b.type_into("#redirect_uris", "https://app.example.com/callback")
        .await;
    b.click("form[action=\"/deployment/oauth2-provider/apps\"] button[type=submit]")
        .await;
    let app_page = b
        .wait_path(|p| p.starts_with("/deployment/oauth2-provider/apps/"))
        .await;
    b.audit("oauth2-app").await;
    b.click("form[action$=\"/secrets\"] button").await;
    b.wait_source("It will not be shown again.").await;
    b.audit("oauth2-app-secret").await;
    b.go(&format!("{}{app_page}", app.url)).await;
    assert!(!b.source().await.contains("It will not be shown again."));

    // The consent page for it, asking for a powerful scope.
    let client_id = app_page.rsplit('/').next().unwrap();
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&code_challenge={}&code_challenge_method=S256&state=s&scope=user%3Aread%20workspaces%3Aexec",
        app.url,
        "a".repeat(43)
    );
    b.go(&authorize).await;
    assert!(b.source().await.contains("Powerful permissions"));
    b.audit("consent").await;

    // An AI agent connects: it registers itself as claude.ai does (its callback a page on this
    // machine), the user consents in the browser, and the client exchanges the code.
    let callback = Callback::start().await;
    let client = app
        .register_client(json!({
            "client_name": "Claude",
            "redirect_uris": [callback.url.clone()],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .await;
    let req = AuthRequest::for_client(&client);
    let claude_authorize =
        reqwest::Url::parse_with_params(&format!("{}/oauth2/authorize", app.url), req.query())
            .unwrap();
    b.go(claude_authorize.as_str()).await;
    b.wait_source("value=\"allow\"").await;
    b.click("button[value=allow]").await;
    b.wait_path(|p| p == "/callback").await;
    let code = b
        .url()
        .await
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("the callback got a code");
    let res = app.exchange_code(&client, &code, &req).await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // The user takes that access back, and the client's refresh token stops working.
    b.go(&format!("{}/settings/oauth2-provider", app.url)).await;
    b.wait_source("Claude").await;
    b.audit("authorized-apps").await;
    b.click("main form button.danger").await;
    b.wait_source("Revoked access for Claude").await;
    let res = app.refresh_tokens(&client, refresh).await;
    assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST);
    b.go(&format!("{}/oauth2/device/verify", app.url)).await;
    b.audit("device").await;

    // The owner's audit log shows what this walk did, and filters by action.
    b.go(&format!("{}/audit", app.url)).await;
    let html = b.source().await;
    for action in [
        "user.create",
        "template.create",
        "workspace.create",
        "workspace.build",
        "api_key.create",
        "oauth2.client.register",
        "oauth2.consent.allow",
        "oauth2.token.issue",
        "oauth2.grant.revoke_all",
    ] {
        assert!(
            html.contains(&format!(">{action}</code>")),
            "{action} in the audit log: {html}"
        );
    }
    b.type_into("#f-action", "workspace.build").await;
    b.click("form.filters button[type=submit]").await;
    let html = b.wait_source("value=\"workspace.build\"").await;
    let builds = html.matches(">workspace.build</code>").count();
    assert_eq!(builds, 3, "the first build, the stop and the start: {html}");
    assert!(html.contains("build_number: 2, name: dev, owner: owner, transition: stop"));
    assert!(!html.contains(">api_key.create</code>"), "{html}");

    // Signed out, the same request asks to sign in to continue to the application.
    b.click("header form button").await;
    b.wait_path(|p| p == "/login").await;
    b.audit("login").await;
    b.go(&authorize).await;
    b.wait_path(|p| p == "/login").await;
    assert!(
        b.source()
            .await
            .contains("Sign in to continue to <strong>Build bot</strong>")
    );

    // A missing page is a page, with the layout.
    b.go(&format!("{}/no-such-page", app.url)).await;
    assert!(b.source().await.contains("Page not found"));
    b.audit("not-found").await;
}

/// The page an OAuth client sends the browser back to: any GET gets a small HTML page, so the
/// browser shows it and its address carries the code.
struct Callback {
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Callback {
    async fn start() -> Callback {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/callback", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0_u8; 4096];
                    let _ = conn.read(&mut request).await;
                    let page = "<!doctype html><html lang=\"en\"><title>Signed in</title><p>Done.</p></html>";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                });
            }
        });
        Callback { url, server }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.server.abort();
    }
}

both_backends!(browser_checks_the_owners_pages,);

/// The owners' pages in a real browser, after the actions the audit log should show: each page
/// passes the accessibility check, the users form creates an account, and the audit log lists
/// what happened and filters it.
async fn browser_checks_the_owners_pages(backend: Backend) {
    use crate::workspace_support::{build, create_template, create_workspace};
    let b = Browser::start().await;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let basic = include_str!("../../examples/templates/basic/coder.yaml");
    let template = create_template(&app, &owner, "basic", basic, &[]).await;
    let ws = create_workspace(&app, &owner, "dev", &template["id"], json!([])).await;
    build(&app, &owner, &ws, "stop").await;
    build(&app, &owner, &ws, "start").await;

    // Signed in as the owner: the session cookie, set on the server's origin.
    b.go(&format!("{}/login", app.url)).await;
    b.call(
        reqwest::Method::POST,
        "/cookie",
        Some(json!({"cookie": {"name": "coder_session_token", "value": owner, "path": "/"}})),
    )
    .await;

    b.go(&format!("{}/deployment/users", app.url)).await;
    b.audit("users").await;
    b.type_into("#new-username", "alice").await;
    b.type_into("#new-email", "alice@example.com").await;
    b.type_into("#new-password", crate::helpers::PASSWORD).await;
    b.click("main form[action='/deployment/users'] button[type=submit]")
        .await;
    b.wait_source("Created alice.").await;
    b.audit("users-created").await;

    b.go(&format!("{}/audit", app.url)).await;
    let html = b.source().await;
    for action in [
        "user.create",
        "template.create",
        "workspace.create",
        "workspace.build",
    ] {
        assert!(
            html.contains(&format!("<code class=\"id\">{action}</code>")),
            "{action}: {html}"
        );
    }
    b.audit("audit").await;
    b.type_into("#f-action", "workspace.build").await;
    b.click("form.filters button[type=submit]").await;
    let html = b.wait_source("Showing 1–3 of 3.").await;
    assert!(html.contains("transition: stop"), "{html}");

    b.go(&format!("{}/deployment/general", app.url)).await;
    assert!(b.source().await.contains(&app.url));
    b.audit("deployment").await;
}
