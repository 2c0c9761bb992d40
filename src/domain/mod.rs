//! Core entities, ids and errors; free of HTTP, SQL and MCP types.

pub mod agent;
pub mod api_key;
pub mod container;
pub mod credentials;
pub mod error;
pub mod experiment;
mod id;
pub mod manifest;
pub mod oauth;
pub mod page;
pub mod principal;
pub mod provisioner;
pub mod redirect_uri;
pub mod replica;
pub mod scope;
pub mod size;
pub mod template;
pub mod text;
pub mod user;
pub mod workspace;

pub use api_key::{ApiKey, ApiKeyId, LoginType};
pub use error::{DomainError, FieldError};
pub use experiment::{Experiment, Experiments};
pub use oauth::{
    AppSecret, AuditEntry, AuthorizationCode, CLI_CLIENT_ID, ClientId, ClientType,
    DEVICE_CODE_GRANT, DeviceCode, Grant, GrantId, OAuthApp, RefreshToken, StoredSigningKey,
    TokenAuthMethod,
};
pub use page::{Page, ZeroLimit};
pub use principal::{Credential, Principal};
pub use replica::{AgentConnection, AgentStatus, Replica, ReplicaId};
pub use scope::{Scope, ScopeSet};
pub use template::{
    DEFAULT_ORGANIZATION_NAME, FileId, JobId, JobLog, JobStatus, JobType, LogLevel, NewJobLog,
    Organization, OrganizationId, ProvisionerJob, StoredFile, Template, TemplateId,
    TemplateVersion, TemplateVersionId,
};
pub use user::{NewUser, Role, User, UserId, UserStatus};
pub use workspace::{
    AGENT_NAME, AgentId, AgentLifecycle, AgentLog, AppId, BuildId, ParameterValue, Transition,
    WORKSPACE_HOME, Workspace, WorkspaceAgent, WorkspaceApp, WorkspaceBuild, WorkspaceId,
    WorkspaceStatus, WorkspaceSummary,
};
