//! `AppState`: what every handler can reach. Cheap to clone: one `Arc`.

use std::sync::Arc;

use url::Url;

use crate::audit::Auditor;
use crate::auth::access_token::AccessTokenVerifier;
use crate::config::IpNetwork;
use crate::domain::{Experiment, Experiments};
use crate::metrics::Metrics;
use crate::oauth::OAuthServer;
use crate::service::Services;

/// Settings the HTTP layer needs, resolved once at start.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The public URL, validated; with a trailing slash as `Url` renders it.
    pub access_url: Url,
    pub experiments: Experiments,
    pub proxy_trusted_headers: Vec<String>,
    pub proxy_trusted_origins: Vec<IpNetwork>,
    /// Browser origins, besides the access URL's, allowed on the MCP endpoint.
    pub mcp_allowed_origins: Vec<String>,
    /// MCP requests worked on at once; `None` sizes it to the machine (`mcp::admission`).
    pub mcp_max_concurrent_requests: Option<usize>,
    /// A random id for this deployment, reported by `/api/v2/buildinfo`.
    pub deployment_id: String,
    /// The server terminates TLS itself (`--tls-enable`).
    pub tls: bool,
    /// `Strict-Transport-Security` for responses that reach the user over HTTPS.
    pub strict_transport_security: Option<axum::http::HeaderValue>,
    /// Send requests that arrive on another scheme or host to the access URL.
    pub redirect_to_access_url: bool,
}

impl HttpSettings {
    /// The access URL without a trailing slash, the form used in every document and link.
    pub fn access_url_str(&self) -> &str {
        self.access_url.as_str().trim_end_matches('/')
    }

    /// Cookies carry `Secure` when users reach us over https: the access URL says so, or the
    /// server serves HTTPS itself.
    pub fn secure_cookies(&self) -> bool {
        self.access_url.scheme() == "https" || self.tls
    }
}

/// What every handler can reach, behind one `Arc`: axum clones the state for every handler and
/// `from_fn_with_state` layer a request passes, and cloning the parts one by one (twenty-odd
/// reference counts, `Services` and the OAuth server included) cost about 2% of a token
/// request's CPU (docs/benchmarks.md, the token endpoint's profile).
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

#[derive(Debug)]
pub struct AppParts {
    pub services: Services,
    pub oauth: OAuthServer,
    pub access_tokens: Arc<AccessTokenVerifier>,
    pub audit: Auditor,
    pub settings: Arc<HttpSettings>,
    pub metrics: Arc<Metrics>,
}

impl AppParts {
    pub fn experiment_enabled(&self, experiment: Experiment) -> bool {
        self.settings.experiments.enabled(experiment)
    }
}
