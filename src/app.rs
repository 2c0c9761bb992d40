//! `App`: builds the state, binds the listener and serves until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use url::Url;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{ServerConfig, parse_access_url};
use crate::ratelimit::RateLimiter;
use crate::service::{ServicePolicy, Services};
use crate::state::{AppState, HttpSettings};
use crate::store::{self, SharedStore};

/// How often expired sessions and tokens are swept.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(600);

pub struct App {
    listener: TcpListener,
    state: AppState,
    store: SharedStore,
}

impl App {
    /// Opens the database and binds the listener; nothing is served until `run_until_stopped`.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: ServerConfig, clock: SharedClock) -> anyhow::Result<Self> {
        let store = store::open(&config.database).await?;
        let listener = TcpListener::bind(&config.http_address)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_address))?;
        let bound = listener.local_addr()?;
        let access_url = match &config.access_url {
            Some(url) => url.clone(),
            None => derived_access_url(bound)?,
        };
        let deployment_id = deployment_id(&store, &clock).await?;
        let services = Services::new(
            store.clone(),
            clock.clone(),
            ServicePolicy {
                session_duration: config.session_duration,
                default_token_lifetime: config.default_token_lifetime,
                max_token_lifetime: config.max_token_lifetime,
            },
            RateLimiter::new(config.login_rate_limit, chrono::Duration::minutes(1), clock),
        );
        let state = AppState {
            services,
            settings: Arc::new(HttpSettings {
                access_url,
                experiments: config.experiments.clone(),
                proxy_trusted_headers: config.proxy_trusted_headers.clone(),
                proxy_trusted_origins: config.proxy_trusted_origins.clone(),
                deployment_id,
            }),
        };
        Ok(Self { listener, state, store })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn access_url(&self) -> &Url {
        &self.state.settings.access_url
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; in-flight requests finish, then the database closes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let cleanup = tokio::spawn(cleanup_loop(self.state.services.clone()));
        let router = crate::http::router(self.state);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        cleanup.abort();
        self.store.close().await;
        served.context("the HTTP server failed")
    }
}

/// Without --access-url, clients reach us at the bound address; a wildcard bind is reached on
/// loopback.
fn derived_access_url(bound: SocketAddr) -> anyhow::Result<Url> {
    let host = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    parse_access_url(&format!("http://{host}:{}", bound.port()))
}

/// A stable random id for the deployment, created on first start.
async fn deployment_id(store: &SharedStore, clock: &SharedClock) -> anyhow::Result<String> {
    const KEY: &str = "deployment_id";
    if let Some(id) = store.get_site_config(KEY).await? {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    store.upsert_site_config(KEY, &id, clock.now()).await?;
    Ok(id)
}

async fn cleanup_loop(services: Services) {
    let mut tick = tokio::time::interval(CLEANUP_INTERVAL);
    loop {
        tick.tick().await;
        match services.delete_expired_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "deleted expired sessions and tokens"),
            Err(err) => tracing::warn!(error = %err, "could not delete expired sessions and tokens"),
        }
    }
}
