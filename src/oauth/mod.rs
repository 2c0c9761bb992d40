//! The OAuth2 authorization server, independent of HTTP: discovery metadata, client registration,
//! authorization codes, tokens and revocation.

pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod device;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod metadata;
pub mod pkce;
pub mod registrar;
pub mod resource;
pub mod revoke;
pub mod scopes;
pub mod token;

use std::sync::Arc;

use chrono::Duration;

use crate::audit::Auditor;
use crate::clock::SharedClock;
use crate::domain::GrantId;
use crate::domain::oauth::{DCR_SETTING, dcr_enabled};
use crate::metrics::Metrics;
use crate::ratelimit::{RateLimiter, ip_key};
use crate::revocation::RevocationList;
use crate::store::SharedStore;

pub use error::{ErrorCode, OAuthError, OAuthResult};

/// Lifetimes and limits of the authorization server.
#[derive(Debug, Clone)]
pub struct OAuthPolicy {
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// RFC 6749 §4.1.2 recommends at most 10 minutes.
    pub code_lifetime: Duration,
    /// Dynamically registered clients never used for a token are deleted after this.
    pub dynamic_client_ttl: Duration,
    /// Requests per minute per client IP, for each OAuth endpoint.
    pub rate_limit_per_ip: u32,
    /// Requests per minute per client id, for each OAuth endpoint.
    pub rate_limit_per_client: u32,
    /// The fetcher of Client ID Metadata Documents; `None` when the server flag turned them off.
    pub metadata_documents: Option<cimd::Fetcher>,
    /// Dynamic registrations per hour from all callers together, besides the per-IP limit:
    /// many addresses (a botnet, an IPv6 range) must not fill the database.
    pub registrations_per_hour: u32,
    /// Dynamically registered clients never used for a token that may exist at once; more
    /// registrations wait until some are used or cleaned up.
    pub max_unused_dynamic_clients: u32,
    /// How long an API session opened by `coder login --device` lasts: the session duration of
    /// a password sign-in.
    pub cli_session_lifetime: Duration,
}

#[derive(Debug, Clone)]
pub struct OAuthServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: SharedStore,
    clock: SharedClock,
    issuer: String,
    resources: resource::Resources,
    keys: Arc<keys::KeyRing>,
    revocations: Arc<RevocationList>,
    policy: OAuthPolicy,
    ip_limiter: RateLimiter,
    client_limiter: RateLimiter,
    registration_limiter: RateLimiter,
    audit: Auditor,
    metrics: Arc<Metrics>,
    documents: Option<cimd::Documents>,
}

/// Where the authorization server reports what happened: the audit log and the metrics.
#[derive(Debug, Clone)]
pub struct Reporting {
    pub audit: Auditor,
    pub metrics: Arc<Metrics>,
}

impl OAuthServer {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        access_url: &url::Url,
        keys: Arc<keys::KeyRing>,
        revocations: Arc<RevocationList>,
        policy: OAuthPolicy,
        Reporting { audit, metrics }: Reporting,
    ) -> Self {
        let minute = Duration::minutes(1);
        OAuthServer {
            inner: Arc::new(Inner {
                audit,
                metrics,
                ip_limiter: RateLimiter::new(policy.rate_limit_per_ip, minute, clock.clone()),
                client_limiter: RateLimiter::new(
                    policy.rate_limit_per_client,
                    minute,
                    clock.clone(),
                ),
                documents: policy
                    .metadata_documents
                    .clone()
                    .map(|fetcher| cimd::Documents::new(fetcher, clock.clone())),
                registration_limiter: RateLimiter::new(
                    policy.registrations_per_hour,
                    Duration::hours(1),
                    clock.clone(),
                ),
                issuer: access_url.as_str().trim_end_matches('/').to_owned(),
                resources: resource::Resources::new(access_url),
                store,
                clock,
                keys,
                revocations,
                policy,
            }),
        }
    }

    /// The issuer identifier (RFC 8414 §2): the access URL without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn resources(&self) -> &resource::Resources {
        &self.inner.resources
    }

    pub fn keys(&self) -> &Arc<keys::KeyRing> {
        &self.inner.keys
    }

    pub fn policy(&self) -> &OAuthPolicy {
        &self.inner.policy
    }

    // Every endpoint's rate limits are checked here and only here: each counts the caller's IP
    // (an IPv6 caller by its /64) before it reads the request. The per-client limit is charged
    // only once the client proved who it is (a confidential client's secret): a client id alone
    // proves nothing, so a request that names a client without proving it (authorization, and
    // every request of a public client) is counted against that client from that IP only.
    // Otherwise anyone who knows a public client's id could exhaust its limit for all its users.

    /// Counts a request to `endpoint` against the per-IP limit.
    fn check_ip_limit(&self, endpoint: &str, ip: &str) -> OAuthResult<()> {
        self.inner
            .ip_limiter
            .check(&format!("{endpoint}:{}", ip_key(ip)))
            .map_err(|r| OAuthError::rate_limited(r.0))
    }

    /// Counts a request to `endpoint` against the per-client limit of a client that proved its
    /// identity. Per-IP limits alone would either choke or not protect clients behind shared
    /// egress (mcp-requirements D7).
    fn check_client_limit(&self, endpoint: &str, client: &str) -> OAuthResult<()> {
        self.inner
            .client_limiter
            .check(&format!("{endpoint}:{client}"))
            .map_err(|r| OAuthError::rate_limited(r.0))
    }

    /// Counts a request to `endpoint` that names `client` without proving it: against that
    /// client's limit from this IP (/64) only.
    fn check_unproven_client_limit(
        &self,
        endpoint: &str,
        client: &str,
        ip: &str,
    ) -> OAuthResult<()> {
        self.inner
            .client_limiter
            .check(&format!("{endpoint}:{client}@{}", ip_key(ip)))
            .map_err(|r| OAuthError::rate_limited(r.0))
    }

    /// The per-client limit for a client that authenticated at the token or revocation
    /// endpoint: by itself when it proved a secret, by itself and the IP when it is public.
    fn check_authenticated_client_limit(
        &self,
        endpoint: &str,
        client: &client_auth::AuthenticatedClient,
        ip: &str,
    ) -> OAuthResult<()> {
        let id = client.app.id.to_string();
        match client.secret_id {
            Some(_) => self.check_client_limit(endpoint, &id),
            None => self.check_unproven_client_limit(endpoint, &id, ip),
        }
    }

    pub async fn dynamic_registration_enabled(&self) -> OAuthResult<bool> {
        let stored = self.inner.store.get_site_config(DCR_SETTING).await?;
        Ok(dcr_enabled(stored.as_deref()))
    }

    /// Records revoked grants locally so this instance denies their tokens at once.
    fn note_revoked(&self, grants: impl IntoIterator<Item = GrantId>) {
        self.inner.revocations.add(grants, self.inner.clock.now());
    }

    /// Writes the clients built into the server (the Coder CLI) if they are missing; run at
    /// every start.
    pub async fn ensure_builtin_clients(&self) -> crate::store::StoreResult<()> {
        let cli = crate::domain::OAuthApp::coder_cli(self.inner.clock.now());
        self.inner.store.ensure_oauth_app(cli).await
    }

    /// Deletes expired codes, refresh tokens, old revocations and retired keys, and abandoned
    /// dynamically registered clients. Returns how many rows went.
    pub async fn cleanup(&self) -> OAuthResult<u64> {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let policy = &self.inner.policy;
        let mut removed = store.delete_expired_auth_codes(now).await?;
        removed += store.delete_expired_refresh_tokens(now).await?;
        removed += store.delete_expired_device_codes(now).await?;
        // A revocation must outlive every access token it denies.
        let horizon = now - policy.access_token_lifetime - Duration::minutes(5);
        removed += store.delete_revocations_before(horizon).await?;
        removed += store.delete_signing_keys_retired_before(horizon).await?;
        removed += store.delete_expired_assertion_jtis(now).await?;
        removed += store
            .delete_abandoned_dynamic_apps(now - policy.dynamic_client_ttl)
            .await?;
        Ok(removed)
    }
}
