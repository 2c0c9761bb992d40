//! Use cases and access control, shared by the REST API, the pages and (later) MCP.

pub mod agent_api;
pub mod agent_links;
pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod builds;
pub mod password;
pub mod runner;
pub mod templates;
pub mod users;
mod validate;
pub mod views;
pub mod workspaces;

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::domain::DomainError;
use crate::provisioner::Provisioning;
use crate::ratelimit::RateLimiter;
use crate::store::{Constraint, SharedStore, StoreError};

pub use agents::{AgentTarget, ExecuteRequest};
pub use api_keys::{CreateTokenRequest, IssuedKey};
pub use builds::CreateBuildRequest;
pub use templates::{CreateTemplateRequest, CreateTemplateVersionRequest};
pub use users::{CreateUserRequest, UserSelector};
pub use workspaces::{CreateWorkspaceRequest, WorkspaceRef};

/// Lifetimes and limits the services enforce.
#[derive(Debug, Clone)]
pub struct ServicePolicy {
    pub session_duration: Duration,
    pub default_token_lifetime: Duration,
    pub max_token_lifetime: Duration,
}

/// The use cases, bound to a store and a clock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    store: SharedStore,
    clock: SharedClock,
    policy: Arc<ServicePolicy>,
    login_limiter: Arc<RateLimiter>,
    /// Workspaces run here; absent in commands that never touch them (create-admin-user).
    provisioning: Option<Provisioning>,
    /// The agents connected to this replica, and the way to the others'.
    agent_links: Option<Arc<agent_links::AgentLinks>>,
}

impl Services {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        policy: ServicePolicy,
        login_limiter: RateLimiter,
    ) -> Self {
        Self {
            store,
            clock,
            policy: Arc::new(policy),
            login_limiter: Arc::new(login_limiter),
            provisioning: None,
            agent_links: None,
        }
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

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
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
