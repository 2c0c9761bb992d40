//! Workspaces, their builds, agents, agent logs and apps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::uuid_id;
use super::{JobStatus, LogLevel, OrganizationId, TemplateId, TemplateVersionId, UserId};
use crate::domain::JobId;

uuid_id!(WorkspaceId);
uuid_id!(BuildId);
uuid_id!(AgentId);
uuid_id!(AppId);

/// The name every workspace's single agent has.
pub const AGENT_NAME: &str = "main";

/// Where a workspace's home appears inside its sandbox.
pub const WORKSPACE_HOME: &str = "/home/coder";

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub owner_id: UserId,
    pub organization_id: OrganizationId,
    pub template_id: TemplateId,
    pub name: String,
    pub deleted: bool,
    pub last_used_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a workspace list shows, read in one query: the workspace, its owner's name, its
/// template, and its latest build's transition and job status.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceSummary {
    pub id: WorkspaceId,
    pub name: String,
    pub owner_name: String,
    pub template_id: TemplateId,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    pub template_active_version_id: TemplateVersionId,
    pub build_template_version_id: TemplateVersionId,
    pub transition: Transition,
    pub job_status: JobStatus,
}

impl WorkspaceSummary {
    pub fn status(&self) -> WorkspaceStatus {
        WorkspaceStatus::derive(self.transition, self.job_status)
    }

    /// Built from a version other than the template's active one.
    pub fn outdated(&self) -> bool {
        self.build_template_version_id != self.template_active_version_id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Start,
    Stop,
    Delete,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Stop => "stop",
            Transition::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(Transition::Start),
            "stop" => Some(Transition::Stop),
            "delete" => Some(Transition::Delete),
            _ => None,
        }
    }
}

/// A parameter's value for one build, as Coder's `WorkspaceBuildParameter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceBuild {
    pub id: BuildId,
    pub workspace_id: WorkspaceId,
    pub build_number: i64,
    pub transition: Transition,
    pub template_version_id: TemplateVersionId,
    pub job_id: JobId,
    pub initiator_id: UserId,
    pub reason: String,
    /// Every parameter's value for this build, defaults included.
    pub parameters: Vec<ParameterValue>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Coder's `WorkspaceStatus`, derived from the latest build's transition and job status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceStatus {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    Canceling,
    Canceled,
    Deleting,
    Deleted,
}

impl WorkspaceStatus {
    pub const ALL: [WorkspaceStatus; 10] = [
        WorkspaceStatus::Pending,
        WorkspaceStatus::Starting,
        WorkspaceStatus::Running,
        WorkspaceStatus::Stopping,
        WorkspaceStatus::Stopped,
        WorkspaceStatus::Failed,
        WorkspaceStatus::Canceling,
        WorkspaceStatus::Canceled,
        WorkspaceStatus::Deleting,
        WorkspaceStatus::Deleted,
    ];

    pub fn derive(transition: Transition, job: JobStatus) -> Self {
        match (job, transition) {
            (JobStatus::Pending, _) => WorkspaceStatus::Pending,
            (JobStatus::Running, Transition::Start) => WorkspaceStatus::Starting,
            (JobStatus::Running, Transition::Stop) => WorkspaceStatus::Stopping,
            (JobStatus::Running, Transition::Delete) => WorkspaceStatus::Deleting,
            (JobStatus::Succeeded, Transition::Start) => WorkspaceStatus::Running,
            (JobStatus::Succeeded, Transition::Stop) => WorkspaceStatus::Stopped,
            (JobStatus::Succeeded, Transition::Delete) => WorkspaceStatus::Deleted,
            (JobStatus::Failed, _) => WorkspaceStatus::Failed,
            (JobStatus::Canceling, _) => WorkspaceStatus::Canceling,
            (JobStatus::Canceled, _) => WorkspaceStatus::Canceled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceStatus::Pending => "pending",
            WorkspaceStatus::Starting => "starting",
            WorkspaceStatus::Running => "running",
            WorkspaceStatus::Stopping => "stopping",
            WorkspaceStatus::Stopped => "stopped",
            WorkspaceStatus::Failed => "failed",
            WorkspaceStatus::Canceling => "canceling",
            WorkspaceStatus::Canceled => "canceled",
            WorkspaceStatus::Deleting => "deleting",
            WorkspaceStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Coder's `WorkspaceAgentLifecycle`, the subset the local provisioner reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentLifecycle {
    Created,
    Starting,
    Ready,
    StartError,
    StartTimeout,
    Off,
}

impl AgentLifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentLifecycle::Created => "created",
            AgentLifecycle::Starting => "starting",
            AgentLifecycle::Ready => "ready",
            AgentLifecycle::StartError => "start_error",
            AgentLifecycle::StartTimeout => "start_timeout",
            AgentLifecycle::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "created" => Some(AgentLifecycle::Created),
            "starting" => Some(AgentLifecycle::Starting),
            "ready" => Some(AgentLifecycle::Ready),
            "start_error" => Some(AgentLifecycle::StartError),
            "start_timeout" => Some(AgentLifecycle::StartTimeout),
            "off" => Some(AgentLifecycle::Off),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceAgent {
    pub id: AgentId,
    pub workspace_id: WorkspaceId,
    pub build_id: BuildId,
    pub name: String,
    pub lifecycle: AgentLifecycle,
    /// The working directory commands start in, as seen inside the workspace.
    pub directory: String,
    pub logs_length: i64,
    pub logs_overflowed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentLog {
    pub id: i64,
    pub agent_id: AgentId,
    pub created_at: DateTime<Utc>,
    pub level: LogLevel,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceApp {
    pub id: AppId,
    pub agent_id: AgentId,
    pub slug: String,
    pub display_name: String,
    pub url: String,
    pub icon: String,
    pub created_at: DateTime<Utc>,
}
