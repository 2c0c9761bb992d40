//! A test OAuth client: registers, plays the user's browser through sign-in and consent, and
//! talks to the token endpoint. Everything goes over HTTP against the real app.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::helpers::{TestApp, cookie_value, json_body, set_cookie_named};

pub const CLAUDE_CALLBACK: &str = "https://claude.ai/api/mcp/auth_callback";
pub const MCP_PATH: &str = "/api/experimental/mcp/http";

/// A PKCE verifier and its S256 challenge (RFC 7636).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Pkce {
            challenge: coderd::oauth::pkce::s256_challenge(&verifier),
            verifier,
        }
    }
}

/// A registered client as the registration response described it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub registration_token: Option<String>,
    pub redirect_uri: String,
    /// `client_secret_post`, `client_secret_basic` or `none`.
    pub method: String,
}

/// One authorization request's parameters.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub state: Option<String>,
    pub pkce: Pkce,
}

impl AuthRequest {
    pub fn for_client(client: &Client) -> AuthRequest {
        AuthRequest {
            client_id: client.id.clone(),
            redirect_uri: Some(client.redirect_uri.clone()),
            scope: None,
            resource: None,
            state: Some("state-123".into()),
            pkce: Pkce::new(),
        }
    }

    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.client_id.clone()),
            ("code_challenge", self.pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        for (k, v) in [
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("resource", &self.resource),
            ("state", &self.state),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        q
    }
}

/// The value of a hidden form field in an HTML page.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    // Named entities, and the numeric ones askama writes.
    Some(
        html[start..start + end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&#60;", "<")
            .replace("&gt;", ">")
            .replace("&#62;", ">")
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(res: &Response) -> Vec<(String, String)> {
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    let url = Url::parse(location).expect("an absolute Location");
    url.query_pairs().into_owned().collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl TestApp {
    /// Registers a client with RFC 7591 and returns what the response said.
    pub async fn register_client(&self, body: Value) -> Client {
        let res = self.post_json("/oauth2/register", None, &body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let info = json_body(res).await;
        Client {
            id: info["client_id"].as_str().unwrap().to_owned(),
            secret: info["client_secret"].as_str().map(str::to_owned),
            registration_token: info["registration_access_token"]
                .as_str()
                .map(str::to_owned),
            redirect_uri: info["redirect_uris"][0].as_str().unwrap().to_owned(),
            method: info["token_endpoint_auth_method"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }

    /// Registers a client the way claude.ai does (confidential, `client_secret_post`).
    pub async fn register_claude(&self) -> Client {
        self.register_client(json!({
            "client_name": "claudeai",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "claudeai",
            "redirect_uris": [CLAUDE_CALLBACK],
        }))
        .await
    }

    /// Registers a public client the way Cursor does (`none`, three redirect URIs).
    pub async fn register_cursor(&self) -> Client {
        let mut client = self
            .register_client(json!({
                "client_name": "Cursor",
                "token_endpoint_auth_method": "none",
                "redirect_uris": [
                    "cursor://anysphere.cursor-mcp/oauth/callback",
                    "https://www.cursor.com/agents/mcp/oauth/callback",
                    "http://localhost:8787/callback",
                ],
            }))
            .await;
        client.redirect_uri = "http://localhost:8787/callback".into();
        client
    }

    /// `GET /oauth2/authorize` as a browser signed in with `session`.
    pub async fn authorize_get(&self, session: Option<&str>, req: &AuthRequest) -> Response {
        let mut builder = self
            .client
            .get(self.url("/oauth2/authorize"))
            .query(&req.query());
        if let Some(session) = session {
            builder = builder.header("Cookie", format!("coder_session_token={session}"));
        }
        builder.send().await.expect("request")
    }

    /// Shows the consent page and submits it with `action` (`allow` or `deny`); returns the
    /// response to the POST (a redirect to the client on success).
    pub async fn consent(&self, session: &str, req: &AuthRequest, action: &str) -> Response {
        let mut url = Url::parse(&self.url("/oauth2/authorize")).expect("url");
        url.query_pairs_mut().extend_pairs(req.query());
        self.decide_at(session, &url, action).await
    }

    /// Runs consent and returns the authorization code.
    pub async fn authorize_code(&self, session: &str, req: &AuthRequest) -> String {
        let res = self.consent(session, req, "allow").await;
        assert_eq!(
            res.status(),
            StatusCode::FOUND,
            "redirect back to the client"
        );
        let params = location_params(&res);
        assert_eq!(param(&params, "state"), req.state.as_deref());
        assert_eq!(param(&params, "iss"), Some(self.url.as_str()));
        param(&params, "code").expect("a code").to_owned()
    }

    /// Posts a token request with the client's registered authentication method.
    pub async fn token_request(&self, client: &Client, mut form: Vec<(&str, String)>) -> Response {
        let mut builder = self.client.post(self.url("/oauth2/tokens"));
        match client.method.as_str() {
            "client_secret_basic" => {
                builder = builder.basic_auth(&client.id, client.secret.as_deref());
            }
            "client_secret_post" => {
                form.push(("client_id", client.id.clone()));
                form.push(("client_secret", client.secret.clone().unwrap_or_default()));
            }
            _ => form.push(("client_id", client.id.clone())),
        }
        builder.form(&form).send().await.expect("request")
    }

    pub async fn exchange_code(&self, client: &Client, code: &str, req: &AuthRequest) -> Response {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("code_verifier", req.pkce.verifier.clone()),
        ];
        if let Some(uri) = &req.redirect_uri {
            form.push(("redirect_uri", uri.clone()));
        }
        if let Some(resource) = &req.resource {
            form.push(("resource", resource.clone()));
        }
        self.token_request(client, form).await
    }

    pub async fn refresh_tokens(&self, client: &Client, refresh_token: &str) -> Response {
        self.token_request(
            client,
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token.to_owned()),
            ],
        )
        .await
    }

    /// Registers nothing: runs consent and exchange for `client`, returning the token response.
    pub async fn obtain_tokens(&self, session: &str, client: &Client) -> Value {
        let req = AuthRequest::for_client(client);
        let code = self.authorize_code(session, &req).await;
        let res = self.exchange_code(client, &code, &req).await;
        assert_eq!(res.status(), StatusCode::OK);
        json_body(res).await
    }
}

impl TestApp {
    /// Plays the browser for an authorization URL an independent client built: opens it signed
    /// in as `session`, then submits the consent form with Allow.
    pub async fn allow_at(&self, session: &str, authorize_url: &Url) -> Response {
        self.decide_at(session, authorize_url, "allow").await
    }

    /// Opens the consent page for `authorize_url` and submits the form with `action`.
    async fn decide_at(&self, session: &str, authorize_url: &Url, action: &str) -> Response {
        let page = self
            .client
            .get(authorize_url.as_str())
            .header("Cookie", format!("coder_session_token={session}"))
            .send()
            .await
            .expect("request");
        assert_eq!(page.status(), StatusCode::OK, "consent page");
        let csrf_cookie = set_cookie_named(&page, "coder_csrf").map(|c| cookie_value(&c));
        let html = page.text().await.expect("html");
        let csrf = hidden_field(&html, "csrf_token").expect("a csrf_token field");
        let mut form: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
        form.push(("csrf_token".into(), csrf.clone()));
        form.push(("action".into(), action.into()));
        self.client
            .post(self.url("/oauth2/authorize"))
            .header(
                "Cookie",
                format!(
                    "coder_session_token={session}; coder_csrf={}",
                    csrf_cookie.unwrap_or(csrf)
                ),
            )
            .form(&form)
            .send()
            .await
            .expect("request")
    }
}
