//! Use cases and access control, shared by the REST API, the pages and (later) MCP.

pub mod agent_api;
pub mod agent_links;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod builds;
pub mod daemons;
mod list_cache;
pub mod oauth_apps;
pub mod password;
pub mod provisioner_keys;
pub mod reconcile;
pub mod rpc_link;
pub mod runner;
pub mod templates;
pub mod users;
mod validate;
pub mod views;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditEvent, Auditor};
use crate::clock::SharedClock;
use crate::domain::{Credential, DomainError, Principal};
use crate::metrics::Metrics;
use crate::provisioner::Provisioning;
use crate::ratelimit::{FailureBackoff, RateLimiter};
use crate::revocation::RevocationList;
use crate::store::{Constraint, SharedStore, StoreError};

pub use agents::{AgentTarget, ExecuteRequest};
pub use api_keys::{CreateTokenRequest, IssuedKey};
pub use builds::CreateBuildRequest;
pub use oauth_apps::{AppInput, AppRequest, AuthorizedApp};
pub use templates::{CreateTemplateRequest, CreateTemplateVersionRequest};
pub use users::{CreateUserRequest, UserSelector};
pub use workspaces::{CreateWorkspaceRequest, WorkspaceRef};

/// Lifetimes and limits the services enforce.
#[derive(Debug, Clone)]
pub struct ServicePolicy {
    pub session_duration: Duration,
    pub default_token_lifetime: Duration,
    pub max_token_lifetime: Duration,
    /// Password hashes computed at once, and how long a sign-in waits for a turn.
    pub password_hash_concurrency: usize,
    pub password_hash_wait: Duration,
}

/// Wrong passwords an account may take before each further one blocks it for longer.
const FREE_LOGIN_FAILURES: u32 = 5;
/// The longest an account waits after wrong passwords.
const MAX_LOGIN_BACKOFF_MINUTES: i64 = 15;

/// The use cases, bound to a store and a clock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    store: SharedStore,
    clock: SharedClock,
    policy: Arc<ServicePolicy>,
    login_limiter: Arc<RateLimiter>,
    /// Per-account backoff after wrong passwords, besides the per-IP limit.
    account_backoff: Arc<FailureBackoff>,
    hashing: Arc<password::HashingPool>,
    /// Workspaces run here; absent in commands that never touch them (create-admin-user).
    provisioning: Option<Provisioning>,
    /// The agents connected to this replica, and the way to the others'.
    agent_links: Option<Arc<agent_links::AgentLinks>>,
    /// The provisioner daemons connected to this replica.
    daemon_links: Option<Arc<daemons::DaemonLinks>>,
    /// OAuth application management; absent in commands that never touch it.
    oauth_apps: Option<oauth_apps::OAuthAppsDeps>,
    /// Where the owners' actions and the workspace lifecycle are audited; absent in commands
    /// that serve no requests (create-admin-user).
    audit: Option<Auditor>,
    /// Workspace lists rendered before and still current (`list_cache`).
    list_cache: Arc<list_cache::ListCache>,
}

impl Services {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        policy: ServicePolicy,
        login_limiter: RateLimiter,
    ) -> Self {
        Self {
            account_backoff: Arc::new(FailureBackoff::new(
                FREE_LOGIN_FAILURES,
                chrono::Duration::minutes(MAX_LOGIN_BACKOFF_MINUTES),
                clock.clone(),
            )),
            hashing: Arc::new(password::HashingPool::new(
                policy.password_hash_concurrency,
                policy.password_hash_wait,
            )),
            store,
            clock,
            policy: Arc::new(policy),
            login_limiter: Arc::new(login_limiter),
            provisioning: None,
            agent_links: None,
            daemon_links: None,
            oauth_apps: None,
            audit: None,
            list_cache: Arc::default(),
        }
    }

    /// Audits users, templates, workspaces and API keys to `audit`.
    pub fn with_audit(mut self, audit: Auditor) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Records `event` as done by `actor` (and, for an OAuth token, by its client).
    async fn audit(&self, actor: &Principal, event: AuditEvent) {
        let event = match &actor.credential {
            Credential::OAuth { client_id, .. } => event.client(*client_id),
            Credential::ApiKey { .. } => event,
        };
        self.record(event.by(actor.user.id)).await;
    }

    /// Records `event` as it is (when nobody signed in acted: the first user).
    async fn record(&self, event: AuditEvent) {
        if let Some(audit) = &self.audit {
            audit.record(event).await;
        }
    }

    /// Lets provisioner daemons connect to this replica through `links`.
    pub fn with_daemon_links(mut self, links: Arc<daemons::DaemonLinks>) -> Self {
        self.daemon_links = Some(links);
        self
    }

    /// Enables OAuth application management, audited to `audit`; revocations it makes are
    /// denied at once through `revocations`.
    pub fn with_oauth_apps(
        mut self,
        audit: Auditor,
        revocations: Arc<RevocationList>,
        metrics: Arc<Metrics>,
    ) -> Self {
        self.oauth_apps = Some(oauth_apps::OAuthAppsDeps {
            audit,
            revocations,
            metrics,
        });
        self
    }

    /// Serves workspace agents through `links`.
    pub fn with_agent_links(mut self, links: Arc<agent_links::AgentLinks>) -> Self {
        self.agent_links = Some(links);
        self
    }

    /// Enables the workspace use cases, run by `provisioning`.
    pub fn with_provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = Some(provisioning);
        self
    }

    fn provisioning(&self) -> Result<&Provisioning, DomainError> {
        self.provisioning
            .as_ref()
            .ok_or_else(|| DomainError::internal("workspaces are not enabled in this process"))
    }

    /// This replica's id, when it serves workspace agents.
    pub fn replica_id(&self) -> Option<crate::domain::ReplicaId> {
        self.agent_links.as_ref().map(|l| l.replica())
    }

    /// Workspace agents connected to this replica.
    pub fn agents_connected(&self) -> usize {
        self.agent_links.as_ref().map_or(0, |l| l.connected())
    }

    /// What a metrics scrape reads: the database pool and health, the job queue, and the
    /// agents connected here. The queue is `None` when the database cannot be asked.
    pub async fn metrics_sample(&self) -> crate::metrics::Sample {
        crate::metrics::Sample {
            pool: self.store.pool_stats(),
            database_up: !self.store.is_down(),
            jobs_pending: self.store.count_pending_jobs().await.ok(),
            agents_connected: self.agents_connected(),
        }
    }

    /// The database this deployment runs on: `sqlite` or `postgres`.
    pub fn database_kind(&self) -> &'static str {
        self.store.backend()
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// Owners only, for any use case: 403 for everyone else.
fn require_owner(actor: &Principal) -> Result<(), DomainError> {
    require_owner_to(actor, "Only an owner of this deployment can do this.")
}

/// The one owner check; `refusal` says what only an owner may do.
fn require_owner_to(actor: &Principal, refusal: &str) -> Result<(), DomainError> {
    if actor.is_owner() {
        Ok(())
    } else {
        Err(DomainError::Forbidden(refusal.to_owned()))
    }
}

impl From<StoreError> for DomainError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::FirstUserExists => {
                DomainError::conflict("The initial user has already been created.", None)
            }
            StoreError::Conflict(constraint) => DomainError::conflict(
                format!("Conflicts with an existing record ({constraint})."),
                None,
            ),
            StoreError::Unavailable(_) => DomainError::database_unavailable(),
            other @ (StoreError::Database(_) | StoreError::Corrupt { .. }) => {
                DomainError::internal(other)
            }
        }
    }
}

/// Names the field a uniqueness conflict is about.
fn conflict_field(err: &StoreError) -> Option<&'static str> {
    match err {
        StoreError::Conflict(Constraint::UserUsername) => Some("username"),
        StoreError::Conflict(Constraint::UserEmail) => Some("email"),
        StoreError::Conflict(Constraint::ApiKeyTokenName) => Some("token_name"),
        _ => None,
    }
}

impl Services {
    pub fn session_duration(&self) -> Duration {
        self.policy.session_duration
    }
}
