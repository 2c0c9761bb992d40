//! The CLI's HTTP client for a Coder server's `/api/v2`: who to talk to (flags, env, or the
//! stored login), and errors that say what to do next.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config_dir::ConfigDir;

/// The header Coder's API reads a session or API token from.
pub const TOKEN_HEADER: &str = "Coder-Session-Token";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server and identity a client command uses, as Coder's global flags.
#[derive(Clone, Default, Args)]
pub struct ClientArgs {
    /// The URL of the Coder server [default: the one `coder login` stored].
    #[arg(long, env = "CODER_URL", global = true, value_name = "URL")]
    pub url: Option<String>,

    /// A session or API token, used instead of the session `coder login` stored.
    #[arg(
        long,
        env = "CODER_SESSION_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// Where `coder login` keeps the URL and session [default: ~/.config/coderv2].
    #[arg(
        long = "global-config",
        env = "CODER_CONFIG_DIR",
        global = true,
        value_name = "DIR"
    )]
    pub global_config: Option<PathBuf>,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url)
            .field("token", &self.token.as_deref().map(redacted))
            .field("global_config", &self.global_config)
            .finish()
    }
}

/// A token as logs may show it: the public id before the `-`, never the secret.
pub fn redacted(token: &str) -> String {
    match token.split_once('-') {
        Some((id, _)) => format!("{id}-<redacted>"),
        None => "<redacted>".to_owned(),
    }
}

impl ClientArgs {
    pub fn config_dir(&self) -> anyhow::Result<ConfigDir> {
        ConfigDir::resolve(self.global_config.as_deref())
    }

    /// The server URL: `--url` / `CODER_URL`, else the stored one.
    pub fn server_url(&self) -> anyhow::Result<Option<url::Url>> {
        let raw = match non_empty(self.url.as_deref()) {
            Some(url) => Some(url.to_owned()),
            None => self.config_dir()?.url()?,
        };
        raw.map(|u| parse_server_url(&u)).transpose()
    }

    /// A client for the signed-in user, or an error that says how to sign in.
    pub fn authenticated(&self) -> anyhow::Result<ApiClient> {
        let dir = self.config_dir()?;
        let url = self.server_url()?;
        let token = match non_empty(self.token.as_deref()) {
            Some(t) => Some(t.to_owned()),
            None => dir.session()?,
        };
        match (url, token) {
            (Some(url), Some(token)) => ApiClient::new(url, Some(token)),
            _ => bail!(
                "you are not logged in: run `coder login <url>` first (or set CODER_URL and CODER_SESSION_TOKEN); looked in {}",
                dir.path().display()
            ),
        }
    }
}

pub fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// A server URL as users type it: `https://` is assumed when no scheme is given, and a trailing
/// slash is dropped.
pub fn parse_server_url(raw: &str) -> anyhow::Result<url::Url> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme)
        .with_context(|| format!("{raw:?} is not a valid URL (e.g. https://coder.example.com)"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{raw:?} is not an http(s) URL (e.g. https://coder.example.com)");
    }
    Ok(url)
}

/// The URL as text without a trailing slash, as stored and shown.
pub fn display_url(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// An HTTP client with the timeouts every CLI call uses and no redirects: a redirect means the
/// URL is not the server's own, which the user should fix rather than have hidden.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("coder-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot set up the HTTP client")
}

/// Calls one Coder server's `/api/v2`, optionally with a token.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: url::Url,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_deref().map(redacted))
            .finish()
    }
}

impl ApiClient {
    pub fn new(base: url::Url, token: Option<String>) -> anyhow::Result<ApiClient> {
        Ok(ApiClient {
            http: http_client()?,
            base,
            token,
        })
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `base` + `path` (which starts with `/`), keeping any path prefix the server sits under.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", display_url(&self.base))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.send(Method::GET, path, None::<&()>).await?;
        decode(&body, path)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let body = self.send(Method::POST, path, Some(body)).await?;
        decode(&body, path)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(Method::DELETE, path, None::<&()>).await?;
        Ok(())
    }

    /// A PUT whose path says everything (`/users/{user}/status/suspend`).
    pub async fn put_without_body<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = self.send(Method::PUT, path, None::<&()>).await?;
        decode(&body, path)
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let body = self.send(Method::PATCH, path, Some(body)).await?;
        decode(&body, path)
    }

    /// Uploads raw bytes (a template archive) with their content type.
    pub async fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> anyhow::Result<T> {
        let request = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data);
        let body = self.finish(Method::POST, path, request).await?;
        decode(&body, path)
    }

    /// Follows a newline-delimited JSON stream (`?follow=true`), calling `each` per line, until
    /// the server ends it. No overall timeout: a build may take long; the server bounds it.
    pub async fn follow_lines(
        &self,
        path: &str,
        mut each: impl FnMut(Value),
    ) -> anyhow::Result<()> {
        let mut request = self
            .http
            .request(Method::GET, self.url(path))
            .header(reqwest::header::ACCEPT, "application/x-ndjson");
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(ApiError {
                method: Method::GET,
                path: path.to_owned(),
                status,
                message: error_message(&bytes, None),
                base: display_url(&self.base),
            }
            .into());
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(&self.base, &e))?
        {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(value) = serde_json::from_slice::<Value>(&line) {
                    each(value);
                }
            }
        }
        Ok(())
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, self.url(path))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(TOKEN_HEADER, token);
        }
        request
    }

    /// Sends one request; a non-2xx answer becomes an error carrying Coder's message.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Vec<u8>> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(method, path, request).await
    }

    /// Sends a built request; a non-2xx answer becomes an error carrying Coder's message.
    async fn finish(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<Vec<u8>> {
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(ApiError {
            method,
            path: path.to_owned(),
            status,
            message: error_message(&bytes, location.as_deref()),
            base: display_url(&self.base),
        }
        .into())
    }
}

fn decode<T: DeserializeOwned>(body: &[u8], path: &str) -> anyhow::Result<T> {
    serde_json::from_slice(body)
        .with_context(|| format!("the server's answer to {path} is not what a Coder server sends"))
}

/// A request that got no HTTP answer.
pub fn unreachable(base: &url::Url, err: &reqwest::Error) -> anyhow::Error {
    let what = if err.is_timeout() {
        "did not answer in time".to_owned()
    } else {
        format!("could not be reached: {}", describe(err))
    };
    anyhow::anyhow!("the server at {} {what}", display_url(base))
}

/// An error with its causes on one line (reqwest's own message names only the URL).
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Coder's `{"message","detail"}` as one sentence, or the start of a non-JSON body.
pub fn error_message(body: &[u8], location: Option<&str>) -> String {
    if let Some(location) = location {
        return format!("redirected to {location}; use the server's own URL");
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let field = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if let Some(message) = field("message") {
            let mut text = message.to_owned();
            if let Some(detail) = field("detail") {
                text = format!("{} ({detail})", text.trim_end_matches('.'));
            }
            if let Some(validations) = value.get("validations").and_then(Value::as_array) {
                let fields: Vec<String> = validations
                    .iter()
                    .filter_map(|v| {
                        Some(format!(
                            "{}: {}",
                            v.get("field")?.as_str()?,
                            v.get("detail")?.as_str()?
                        ))
                    })
                    .collect();
                if !fields.is_empty() {
                    text = format!("{text} {}", fields.join("; "));
                }
            }
            return text;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details".to_owned()
    } else {
        text.chars().take(200).collect()
    }
}

/// A Coder API error response.
#[derive(Debug)]
pub struct ApiError {
    pub method: Method,
    pub path: String,
    pub status: StatusCode,
    pub message: String,
    pub base: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} answered {}: {}",
            self.method,
            self.path,
            self.status,
            self.message.trim_end_matches('.')
        )?;
        match self.status {
            StatusCode::UNAUTHORIZED => write!(f, "; run `coder login {}` again", self.base),
            StatusCode::NOT_FOUND if self.path.starts_with("/api/v2/buildinfo") => {
                write!(f, "; is {} the URL of a Coder server?", self.base)
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ApiError {}

/// The status of an API error, if `err` is one.
pub fn api_status(err: &anyhow::Error) -> Option<StatusCode> {
    err.downcast_ref::<ApiError>().map(|e| e.status)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(
            display_url(&parse_server_url("coder.example.com").unwrap()),
            "https://coder.example.com"
        );
        assert_eq!(
            display_url(&parse_server_url("http://127.0.0.1:3000/").unwrap()),
            "http://127.0.0.1:3000"
        );
        assert!(parse_server_url("ftp://x").is_err());
        assert!(parse_server_url("http://").is_err());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let args = ClientArgs {
            token: Some("abcdef1234-s3cr3t".to_owned()),
            ..ClientArgs::default()
        };
        let shown = format!("{args:?}");
        assert!(shown.contains("abcdef1234-<redacted>"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let client = ApiClient::new(
            parse_server_url("http://x").unwrap(),
            Some("s3cr3t".to_owned()),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t"));
    }

    #[test]
    fn coder_error_bodies_become_one_sentence() {
        let body = br#"{"message":"Invalid token request.","validations":[{"field":"lifetime","detail":"Too long."}]}"#;
        assert_eq!(
            error_message(body, None),
            "Invalid token request. lifetime: Too long."
        );
        let body = br#"{"message":"Forbidden.","detail":"Ask an owner."}"#;
        assert_eq!(error_message(body, None), "Forbidden (Ask an owner.)");
        assert_eq!(error_message(b"", None), "no details");
    }
}
