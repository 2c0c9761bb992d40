//! The agent's side of the server connection: where the server is (`CODER_AGENT_URL`, an
//! `http(s)://` URL or a Unix socket), the agent's HTTP calls, and dialing its WebSocket.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::domain::agent::{
    AGENT_API_VERSION, AgentManifest, MAX_MESSAGE, PatchAgentLogs, RPC_PATH, ReportLifecycle,
    TOKEN_HEADER, VERSION_HEADER,
};

/// Where the server is: its URL, reached directly or through a Unix socket (the sandboxes'
/// only way out). Over a socket the agent still speaks to the URL: plain HTTP to
/// `http://localhost` when the socket is the server's own, or TLS to the server's `https` URL
/// when the socket only forwards bytes to it (a provisioner daemon's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUrl {
    pub url: url::Url,
    pub socket: Option<PathBuf>,
}

impl AgentUrl {
    /// Reads `CODER_AGENT_URL`: `http://…`, `https://…`, `unix:///path`, `unix:/path` or a bare
    /// absolute path; `socket` is `CODER_AGENT_SOCKET`, a socket to reach an `http(s)` URL by.
    pub fn parse(raw: &str, socket: Option<&str>) -> anyhow::Result<Self> {
        let raw = raw.trim();
        let unix = raw
            .strip_prefix("unix://")
            .or_else(|| raw.strip_prefix("unix:"))
            .or_else(|| raw.starts_with('/').then_some(raw));
        if let Some(path) = unix {
            if !path.starts_with('/') {
                anyhow::bail!("CODER_AGENT_URL {raw:?}: a Unix socket needs an absolute path");
            }
            let url = url::Url::parse("http://localhost")?;
            return Ok(AgentUrl {
                url,
                socket: Some(PathBuf::from(path)),
            });
        }
        let url = url::Url::parse(raw).map_err(|e| {
            anyhow::anyhow!("CODER_AGENT_URL {raw:?} is not a URL ({e}); use http(s)://host[:port] or unix:///path/to/socket")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!(
                "CODER_AGENT_URL {raw:?} has the scheme {:?}; use http, https or unix",
                url.scheme()
            );
        }
        let socket = match socket.map(str::trim).filter(|s| !s.is_empty()) {
            Some(path) if !path.starts_with('/') => {
                anyhow::bail!("CODER_AGENT_SOCKET {path:?} must be an absolute path")
            }
            other => other.map(PathBuf::from),
        };
        Ok(AgentUrl { url, socket })
    }

    fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

impl fmt::Display for AgentUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())?;
        if let Some(socket) = &self.socket {
            write!(f, " through {}", socket.display())?;
        }
        Ok(())
    }
}

/// Why a session with the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The server is down or unreachable: retry soon.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered and said no (a revoked token, a stopped workspace): retry slowly.
    #[error("{0}")]
    Refused(String),
}

impl From<reqwest::Error> for SessionError {
    fn from(e: reqwest::Error) -> Self {
        SessionError::Unreachable(e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ServerClient {
    pub fn new(url: &AgentUrl, token: &str) -> anyhow::Result<Self> {
        // HTTP/1.1 only: the WebSocket is an HTTP/1.1 upgrade (RFC 6455 §4.1).
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("coder-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &url.socket {
            builder = builder.unix_socket(path.clone());
        }
        Ok(ServerClient {
            http: builder.build()?,
            base: url.base(),
            token: token.to_owned(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(TOKEN_HEADER, &self.token)
            .header(VERSION_HEADER, AGENT_API_VERSION)
    }

    pub async fn manifest(&self) -> Result<AgentManifest, SessionError> {
        let response = self
            .request(reqwest::Method::GET, "/api/v2/workspaceagents/me/manifest")
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        Ok(checked(response).await?.json().await?)
    }

    pub async fn patch_logs(&self, logs: &PatchAgentLogs) -> Result<(), SessionError> {
        let response = self
            .request(reqwest::Method::PATCH, "/api/v2/workspaceagents/me/logs")
            .timeout(Duration::from_secs(30))
            .json(logs)
            .send()
            .await?;
        checked(response).await.map(|_| ())
    }

    pub async fn report_lifecycle(&self, report: &ReportLifecycle) -> Result<(), SessionError> {
        let response = self
            .request(
                reqwest::Method::POST,
                "/api/v2/workspaceagents/me/report-lifecycle",
            )
            .timeout(Duration::from_secs(30))
            .json(report)
            .send()
            .await?;
        checked(response).await.map(|_| ())
    }

    /// Opens the agent's WebSocket.
    pub async fn dial_rpc(&self) -> Result<WebSocketStream<reqwest::Upgraded>, SessionError> {
        dial_websocket(self.request(reqwest::Method::GET, RPC_PATH), MAX_MESSAGE).await
    }
}

/// Opens a WebSocket with `request` (RFC 6455 §4.1 client handshake, on a client that speaks
/// HTTP/1.1): the agent's and a provisioner daemon's connection to the server.
pub async fn dial_websocket(
    request: reqwest::RequestBuilder,
    max_message: usize,
) -> Result<WebSocketStream<reqwest::Upgraded>, SessionError> {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let response = request
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", &key)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Err(refusal(response).await);
    }
    let accept = response
        .headers()
        .get("sec-websocket-accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept != derive_accept_key(key.as_bytes()) {
        return Err(SessionError::Refused(
            "the server's WebSocket handshake did not match (is a proxy rewriting it?)".into(),
        ));
    }
    let upgraded = response.upgrade().await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    Ok(WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await)
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, SessionError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(refusal(response).await)
    }
}

/// A non-success answer as an error: 5xx and 429 mean "retry soon", the rest that the server
/// will not serve this agent as it is.
async fn refusal(response: reqwest::Response) -> SessionError {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("no message")
        .to_owned();
    let text = format!("{status}: {message}");
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        SessionError::Unreachable(text)
    } else {
        SessionError::Refused(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls_are_http_or_unix_sockets() {
        let unix = |p: &str| AgentUrl {
            url: url::Url::parse("http://localhost").unwrap_or_else(|_| unreachable!()),
            socket: Some(PathBuf::from(p)),
        };
        assert_eq!(
            AgentUrl::parse("unix:///run/a.sock", None).ok(),
            Some(unix("/run/a.sock"))
        );
        assert_eq!(
            AgentUrl::parse("unix:/run/a.sock", None).ok(),
            Some(unix("/run/a.sock"))
        );
        assert_eq!(
            AgentUrl::parse("/run/a.sock", None).ok(),
            Some(unix("/run/a.sock"))
        );
        let direct = AgentUrl::parse("https://coder.example.com/", None).ok();
        assert_eq!(direct.and_then(|u| u.socket), None);
        let through = AgentUrl::parse("https://coder.example.com", Some("/run/a.sock")).ok();
        assert_eq!(
            through.and_then(|u| u.socket),
            Some(PathBuf::from("/run/a.sock"))
        );
        for bad in ["unix:relative.sock", "ftp://x", "not a url"] {
            assert!(AgentUrl::parse(bad, None).is_err(), "{bad}");
        }
        assert!(AgentUrl::parse("https://x", Some("relative")).is_err());
    }
}
