//! `App`: builds the state, binds the listener and serves until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderValue;
use url::Url;

use crate::audit::Auditor;
use crate::auth::access_token::AccessTokenVerifier;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{ServerConfig, parse_access_url};
use crate::domain::{Replica, ReplicaId};
use crate::metrics::Metrics;
use crate::oauth::keys::KeyRing;
use crate::oauth::{OAuthPolicy, OAuthServer, Reporting};
use crate::provisioner::{CommandLimits, HostProvisioner, LocalProvisionerOptions, Provisioning};
use crate::ratelimit::RateLimiter;
use crate::revocation::RevocationList;
use crate::service::agent_links::AgentLinks;
use crate::service::daemons::DaemonLinks;
use crate::service::runner::JobRunner;
use crate::service::{ServicePolicy, Services};
use crate::store::{self, SharedStore};
use crate::web::{AppParts, AppState, HttpSettings};

mod listeners;

use listeners::Listeners;

/// How often expired sessions, tokens, codes and abandoned clients are swept.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(600);
/// How often each replica reads revocations made by the others (a revocation takes effect
/// everywhere within this, well inside the 5 s promise).
const REVOCATION_SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How often signing keys are re-read, to pick up a rotation made elsewhere.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// How often this replica says it is alive (and vouches for its agents' connections); others
/// treat it as gone after `REPLICA_STALE_AFTER` without one.
const REPLICA_HEARTBEAT_INTERVAL: Duration =
    Duration::from_secs(crate::domain::replica::AGENT_CONNECTION_REFRESH_SECS);
/// The agent socket, inside the data directory; its directory is bound into every sandbox.
const AGENT_SOCKET: &str = "agent/agent.sock";

pub struct App {
    listeners: Listeners,
    audit_retention: Option<Duration>,
    /// Where workspace agents dial in from their sandboxes.
    agent_listener: tokio::net::UnixListener,
    replica: ReplicaId,
    links: Arc<AgentLinks>,
    daemons: Arc<DaemonLinks>,
    state: AppState,
    store: SharedStore,
    revocations: Arc<RevocationList>,
    clock: SharedClock,
    runner: Arc<JobRunner>,
}

impl App {
    /// Opens the database and binds the listener; nothing is served until `run_until_stopped`.
    pub async fn build(config: ServerConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: ServerConfig,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let store = store::open(&config.database).await?;
        let listeners = Listeners::bind(&config).await?;
        let (scheme, bound) = listeners.public()?;
        let access_url = match &config.access_url {
            Some(url) => url.clone(),
            None => derived_access_url(scheme, bound)?,
        };
        let metrics = Arc::new(Metrics::new());
        let deployment_id = deployment_id(&store, &clock).await?;
        let oauth2 = &config.oauth2;
        let access_lifetime = chrono::Duration::from_std(oauth2.access_token_lifetime)?;
        let keys = KeyRing::load_or_create(store.clone(), clock.now()).await?;
        // Retain revocations a little longer than any access token they could deny lives.
        let revocations = Arc::new(RevocationList::new(
            access_lifetime + chrono::Duration::minutes(5),
        ));
        revocations.sync(&store, clock.now()).await?;
        let audit = Auditor::start(store.clone(), clock.clone());
        let oauth = OAuthServer::new(
            store.clone(),
            clock.clone(),
            &access_url,
            keys.clone(),
            revocations.clone(),
            OAuthPolicy {
                access_token_lifetime: access_lifetime,
                refresh_token_lifetime: chrono::Duration::from_std(oauth2.refresh_token_lifetime)?,
                code_lifetime: chrono::Duration::minutes(10),
                dynamic_client_ttl: chrono::Duration::from_std(oauth2.dynamic_client_ttl)?,
                rate_limit_per_ip: oauth2.rate_limit_per_ip,
                rate_limit_per_client: oauth2.rate_limit_per_client,
                metadata_documents: metadata_document_fetcher(oauth2)?,
                registrations_per_hour: oauth2.registrations_per_hour,
                max_unused_dynamic_clients: oauth2.max_unused_dynamic_clients,
                cli_session_lifetime: chrono::Duration::from_std(config.session_duration)?,
            },
            Reporting {
                audit: audit.clone(),
                metrics: metrics.clone(),
            },
        );
        let access_tokens = Arc::new(AccessTokenVerifier::new(
            oauth.issuer().to_owned(),
            oauth.resources().clone(),
            keys,
            revocations.clone(),
            clock.clone(),
        ));
        let services = Services::new(
            store.clone(),
            clock.clone(),
            ServicePolicy {
                session_duration: config.session_duration,
                default_token_lifetime: config.default_token_lifetime,
                max_token_lifetime: config.max_token_lifetime,
                password_hash_concurrency: config.password_hash_concurrency,
                password_hash_wait: config.password_hash_wait,
            },
            RateLimiter::new(
                config.login_rate_limit,
                chrono::Duration::minutes(1),
                clock.clone(),
            ),
        );
        let agent_socket = config.data_dir.join(AGENT_SOCKET);
        let agent_listener = crate::provisioner::sandbox::bind_agent_socket(&agent_socket)?;
        let replica = register_replica(&store, &clock, &config, scheme, bound).await?;
        let links = Arc::new(
            AgentLinks::new(
                replica,
                store.clone(),
                clock.clone(),
                store.backend() == "postgres",
            )
            .await?,
        );
        let provisioner_id = crate::provisioner::provisioner_id(&config.data_dir)
            .context("cannot read or create this server's provisioner id")?;
        let provisioning = Provisioning::new(
            Arc::new(
                HostProvisioner::new(
                    local_provisioner_options(&config, agent_socket)?,
                    &config.workspaces.docker_host,
                    &provisioner_id,
                )
                .await,
            ),
            provisioner_id,
            CommandLimits {
                default_timeout: CommandLimits::default()
                    .default_timeout
                    .min(config.max_command_timeout),
                max_timeout: config.max_command_timeout,
            },
            config.workspaces.limits.clone(),
        );
        let daemons = Arc::new(DaemonLinks::new(store.clone(), clock.clone(), replica));
        let runner = Arc::new(
            JobRunner::new(
                store.clone(),
                clock.clone(),
                provisioning.clone(),
                daemons.clone(),
            )
            .with_metrics(metrics.clone()),
        );
        let services = services
            .with_provisioning(provisioning)
            .with_daemon_links(daemons.clone())
            .with_agent_links(links.clone())
            .with_oauth_apps(audit.clone(), revocations.clone(), metrics.clone())
            .with_audit(audit.clone());
        services.ensure_default_organization().await?;
        oauth.ensure_builtin_clients().await?;
        let state = AppState::new(AppParts {
            services,
            oauth,
            access_tokens,
            audit,
            settings: Arc::new(HttpSettings {
                access_url,
                experiments: config.experiments.clone(),
                proxy_trusted_headers: config.proxy_trusted_headers.clone(),
                proxy_trusted_origins: config.proxy_trusted_origins.clone(),
                mcp_allowed_origins: config.mcp_allowed_origins.clone(),
                mcp_max_concurrent_requests: config.mcp_max_concurrent_requests,
                deployment_id,
                tls: config.tls.is_some(),
                strict_transport_security: config
                    .strict_transport_security
                    .as_deref()
                    .map(HeaderValue::from_str)
                    .transpose()?,
                redirect_to_access_url: config.redirect_to_access_url,
            }),
            metrics,
        });
        Ok(Self {
            listeners,
            audit_retention: config.audit_logs_retention,
            agent_listener,
            replica,
            links,
            daemons,
            state,
            store,
            revocations,
            clock,
            runner,
        })
    }

    /// The port of the plain HTTP listener, else of the HTTPS one.
    pub fn port(&self) -> u16 {
        self.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Where plain HTTP is served, else HTTPS.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.local_addr()
    }

    /// Where HTTPS is served.
    pub fn tls_local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.tls_local_addr()
    }

    /// Where the Prometheus metrics are served.
    pub fn metrics_local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners.metrics_local_addr()
    }

    pub fn access_url(&self) -> &Url {
        &self.state.settings.access_url
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; in-flight requests finish, then the database closes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let background = [
            tokio::spawn(cleanup_loop(self.state.clone(), self.audit_retention)),
            tokio::spawn(revocation_sync_loop(
                self.store.clone(),
                self.revocations.clone(),
                self.clock.clone(),
            )),
            tokio::spawn(key_reload_loop(self.state.oauth.clone())),
            tokio::spawn(replica_heartbeat_loop(
                self.store.clone(),
                self.clock.clone(),
                self.replica,
                self.links.clone(),
                self.daemons.clone(),
            )),
        ];
        self.runner.recover().await;
        // Aborted when this future ends or is dropped, taking the jobs it runs with it.
        let runner = AbortOnDrop(tokio::spawn(self.runner.clone().run()));
        let audit = self.state.audit.clone();
        let (stop_agents, agents_stopped) = tokio::sync::watch::channel(false);
        let agent_socket = tokio::spawn(
            axum::serve(
                self.agent_listener,
                crate::web::stack::agent_socket(
                    crate::http::agent_socket_routes(),
                    self.state.clone(),
                ),
            )
            .with_graceful_shutdown(async move {
                let mut stopped = agents_stopped;
                let _ = stopped.wait_for(|s| *s).await;
            })
            .into_future(),
        );
        let served = self.listeners.serve(self.state, shutdown).await;
        for task in background {
            task.abort();
        }
        // Agents reconnect on their own once a server runs again; their workspaces go on.
        let _ = stop_agents.send(true);
        self.links.close_all();
        self.daemons.close_all();
        let _ = agent_socket.await;
        if let Err(err) = self
            .store
            .stop_replica(self.replica, self.clock.now())
            .await
        {
            tracing::warn!(error = %err, "could not mark this replica stopped");
        }
        drop(runner);
        self.runner.shutdown().await;
        // The served requests have ended: what they audited is written before the pool
        // closes. (A tool call that outlived its connection may still record later; its
        // entry fails against the closed pool and is logged.)
        audit.flush().await;
        self.store.close().await;
        served.context("the HTTP server failed")
    }
}

/// Aborts the task when dropped, so an abandoned server leaves no worker behind.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where workspaces live, how they are isolated, and where their agents dial in.
fn local_provisioner_options(
    config: &ServerConfig,
    agent_socket: std::path::PathBuf,
) -> anyhow::Result<LocalProvisionerOptions> {
    let w = &config.workspaces;
    let agent_binary = match &w.agent_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this binary to run agents from")?,
    };
    Ok(LocalProvisionerOptions {
        data_dir: config.data_dir.clone(),
        allow_unsandboxed: config.allow_unsandboxed_workspaces,
        agent_binary,
        agent_socket,
        uid_range: w.uid_range.clone(),
        agent_url: None,
    })
}

/// Records this run of the server in the replicas table, with the URL others relay to.
async fn register_replica(
    store: &SharedStore,
    clock: &SharedClock,
    config: &ServerConfig,
    scheme: &str,
    bound: SocketAddr,
) -> anyhow::Result<ReplicaId> {
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let relay_address = match &config.relay_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => format!("{scheme}://{hostname}:{}", bound.port()),
        None => format!("{scheme}://{bound}"),
    };
    let now = clock.now();
    let replica = Replica {
        id: ReplicaId::new(),
        hostname,
        relay_address,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: now,
        stopped_at: None,
        updated_at: now,
    };
    let id = replica.id;
    store.insert_replica(replica).await?;
    Ok(id)
}

async fn replica_heartbeat_loop(
    store: SharedStore,
    clock: SharedClock,
    replica: ReplicaId,
    links: Arc<AgentLinks>,
    daemons: Arc<DaemonLinks>,
) {
    let mut tick = tokio::time::interval(REPLICA_HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(err) = store.touch_replica(replica, clock.now()).await {
            // An outage is logged once by the store, not on every tick.
            if !err.is_unavailable() {
                tracing::warn!(error = %err, "could not record this replica's heartbeat");
            }
        }
        links.refresh().await;
        daemons.refresh().await;
    }
}

/// Without --access-url, clients reach us at the bound address; a wildcard bind is reached on
/// loopback.
fn derived_access_url(scheme: &str, bound: SocketAddr) -> anyhow::Result<Url> {
    let host = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    parse_access_url(&format!("{scheme}://{host}:{}", bound.port()))
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

async fn cleanup_loop(state: AppState, audit_retention: Option<Duration>) {
    let mut tick = tokio::time::interval(CLEANUP_INTERVAL);
    loop {
        tick.tick().await;
        if let Some(retention) = audit_retention.and_then(|r| chrono::Duration::from_std(r).ok()) {
            match state.services.delete_old_audit_logs(retention).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(count = n, "deleted audit log entries past their retention")
                }
                Err(err) => tracing::warn!(error = %err, "could not delete old audit log entries"),
            }
        }
        match state.services.delete_expired_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "deleted expired sessions and tokens"),
            Err(err) => {
                tracing::warn!(error = %err, "could not delete expired sessions and tokens")
            }
        }
        // Replicas silent for a day are long gone; their rows only tell where agents were.
        let cutoff = state.services.clock().now() - chrono::Duration::days(1);
        if let Err(err) = state.services.store().delete_replicas_before(cutoff).await {
            tracing::warn!(error = %err, "could not forget departed replicas");
        }
        match state.oauth.cleanup().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "deleted expired OAuth2 codes, tokens and abandoned clients"
            ),
            Err(err) => tracing::warn!(error = %err, "could not clean up OAuth2 data"),
        }
    }
}

async fn revocation_sync_loop(
    store: SharedStore,
    revocations: Arc<RevocationList>,
    clock: SharedClock,
) {
    let mut tick = tokio::time::interval(REVOCATION_SYNC_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(err) = revocations.sync(&store, clock.now()).await {
            // An outage is logged once by the store, not on every tick.
            if !err.is_unavailable() {
                tracing::warn!(error = %err, "could not read the OAuth2 revocation feed");
            }
        }
    }
}

async fn key_reload_loop(oauth: OAuthServer) {
    let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(err) = oauth.keys().reload(true).await {
            // An outage is logged once by the store, not on every tick.
            if !err.is_unavailable() {
                tracing::warn!(error = %err, "could not reload the OAuth2 signing keys");
            }
        }
    }
}

/// The metadata-document fetcher, unless `--oauth2-client-id-metadata-document-enable=false`.
/// The test-only trust (`CimdTestTrust`) comes from code, never from flags or files.
fn metadata_document_fetcher(
    oauth2: &crate::config::OAuth2Config,
) -> anyhow::Result<Option<crate::oauth::cimd::Fetcher>> {
    if !oauth2.client_id_metadata_documents {
        return Ok(None);
    }
    let mut settings = crate::oauth::cimd::FetchSettings::default();
    if let Some(trust) = &oauth2.cimd_test_trust {
        tracing::warn!(
            allow_loopback = trust.allow_loopback,
            "test-only trust for client metadata documents is set"
        );
        settings.extra_roots_pem = trust.extra_roots_pem.clone();
        settings.allow_loopback = trust.allow_loopback;
        if let Some(timeout) = trust.fetch_timeout {
            settings.total_timeout = timeout;
            settings.connect_timeout = settings.connect_timeout.min(timeout);
        }
    }
    Ok(Some(crate::oauth::cimd::Fetcher::new(&settings)?))
}
