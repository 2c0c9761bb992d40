//! Coder-shaped JSON views (`codersdk` field names) of templates, workspaces, builds, jobs and
//! agents, so the REST API and the MCP tools return the same documents.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::manifest::Parameter;
use crate::domain::replica::AGENT_CONNECTION_TIMEOUT;
use crate::domain::{
    AgentConnection, AgentLifecycle, AgentLog, AgentStatus, JobLog, JobStatus, Organization,
    ProvisionerJob, Role, Template, TemplateVersion, User, Workspace, WorkspaceAgent, WorkspaceApp,
    WorkspaceBuild, WorkspaceStatus,
};

#[derive(Debug, Clone, Serialize)]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Organization> for OrganizationView {
    fn from(o: &Organization) -> Self {
        OrganizationView {
            id: o.id.0,
            name: o.name.clone(),
            display_name: o.display_name.clone(),
            description: o.description.clone(),
            icon: o.icon.clone(),
            is_default: o.is_default,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Coder's `MinimalUser`.
#[derive(Debug, Clone, Serialize)]
pub struct MinimalUserView {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub avatar_url: String,
}

impl MinimalUserView {
    pub fn of(user: Option<&User>, id: Uuid) -> Self {
        MinimalUserView {
            id,
            username: user.map(|u| u.username.clone()).unwrap_or_default(),
            name: user.map(|u| u.name.clone()).unwrap_or_default(),
            avatar_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct JobInputView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_version_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_build_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct JobMetadataView {
    pub template_version_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
}

/// Coder's `ProvisionerJob`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionerJobView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub error_code: String,
    pub status: &'static str,
    pub worker_id: Option<String>,
    pub file_id: Uuid,
    pub tags: Value,
    pub queue_position: i64,
    pub queue_size: i64,
    pub organization_id: Uuid,
    pub input: JobInputView,
    #[serde(rename = "type")]
    pub job_type: &'static str,
    pub metadata: JobMetadataView,
    pub logs_overflowed: bool,
}

/// Coder's job tags: its own, with Coder's defaults for an organization-wide job.
fn job_tags(job: &ProvisionerJob) -> Value {
    let mut tags = serde_json::Map::new();
    tags.insert("scope".into(), json!("organization"));
    tags.insert("owner".into(), json!(""));
    for (k, v) in &job.tags.0 {
        tags.insert(k.clone(), json!(v));
    }
    Value::Object(tags)
}

impl ProvisionerJobView {
    pub fn new(job: &ProvisionerJob, input: JobInputView, metadata: JobMetadataView) -> Self {
        ProvisionerJobView {
            id: job.id.0,
            created_at: job.created_at,
            started_at: job.started_at,
            completed_at: job.completed_at,
            canceled_at: job.canceled_at,
            error: job.error.clone(),
            error_code: String::new(),
            status: job.status.as_str(),
            worker_id: job.worker_id.clone(),
            file_id: job.file_id.0,
            tags: job_tags(job),
            queue_position: 0,
            queue_size: 0,
            organization_id: job.organization_id.0,
            input,
            job_type: job.job_type.as_str(),
            metadata,
            logs_overflowed: false,
        }
    }
}

/// Coder's `ProvisionerJobLog`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionerJobLogView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub log_source: String,
    pub log_level: &'static str,
    pub stage: String,
    pub output: String,
}

impl From<&JobLog> for ProvisionerJobLogView {
    fn from(l: &JobLog) -> Self {
        ProvisionerJobLogView {
            id: l.id,
            created_at: l.created_at,
            log_source: l.source.clone(),
            log_level: l.level.as_str(),
            stage: l.stage.clone(),
            output: l.output.clone(),
        }
    }
}

/// Coder's `TemplateVersion`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateVersionView {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub message: String,
    pub job: ProvisionerJobView,
    pub readme: String,
    pub created_by: MinimalUserView,
    pub archived: bool,
    pub warnings: Vec<String>,
}

impl TemplateVersionView {
    pub fn new(
        version: &TemplateVersion,
        job: &ProvisionerJob,
        template: Option<&Template>,
        creator: Option<&User>,
    ) -> Self {
        TemplateVersionView {
            id: version.id.0,
            template_id: version.template_id.map(|t| t.0),
            organization_id: version.organization_id.0,
            created_at: version.created_at,
            updated_at: version.updated_at,
            name: version.name.clone(),
            message: version.message.clone(),
            job: ProvisionerJobView::new(
                job,
                JobInputView {
                    template_version_id: Some(version.id.0),
                    workspace_build_id: None,
                },
                job_metadata(version, template, None),
            ),
            readme: version.readme.clone(),
            created_by: MinimalUserView::of(creator, version.created_by.0),
            archived: version.archived,
            warnings: Vec::new(),
        }
    }
}

fn job_metadata(
    version: &TemplateVersion,
    template: Option<&Template>,
    workspace: Option<&Workspace>,
) -> JobMetadataView {
    JobMetadataView {
        template_version_name: version.name.clone(),
        template_id: template.map(|t| t.id.0).unwrap_or_default(),
        template_name: template.map(|t| t.name.clone()).unwrap_or_default(),
        template_display_name: template.map(|t| t.display_name.clone()).unwrap_or_default(),
        template_icon: template.map(|t| t.icon.clone()).unwrap_or_default(),
        workspace_id: workspace.map(|w| w.id.0),
        workspace_name: workspace.map(|w| w.name.clone()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ParameterOptionView {
    pub name: String,
    pub description: String,
    pub value: String,
    pub icon: String,
}

/// Coder's `TemplateVersionParameter`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateVersionParameterView {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub description_plaintext: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub form_type: &'static str,
    pub mutable: bool,
    pub default_value: String,
    pub icon: String,
    pub options: Vec<ParameterOptionView>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub validation_error: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub validation_regex: String,
    pub validation_min: Option<i64>,
    pub validation_max: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub validation_monotonic: String,
    pub required: bool,
    pub ephemeral: bool,
}

impl From<&Parameter> for TemplateVersionParameterView {
    fn from(p: &Parameter) -> Self {
        use crate::domain::manifest::ParameterType;
        TemplateVersionParameterView {
            name: p.name.clone(),
            display_name: p.display_name.clone(),
            description: p.description.clone(),
            description_plaintext: p.description.clone(),
            kind: p.kind.as_str(),
            form_type: match (p.kind, p.options.is_empty()) {
                (ParameterType::Bool, _) => "checkbox",
                (ParameterType::ListString, false) => "multi-select",
                (ParameterType::ListString, true) => "tag-select",
                (_, false) => "dropdown",
                (_, true) => "input",
            },
            mutable: p.mutable,
            default_value: p.default.clone().unwrap_or_default(),
            icon: p.icon.clone(),
            options: p
                .options
                .iter()
                .map(|o| ParameterOptionView {
                    name: o.name.clone(),
                    description: o.description.clone(),
                    value: o.value.clone(),
                    icon: o.icon.clone(),
                })
                .collect(),
            validation_error: p.validation.error.clone(),
            validation_regex: p.validation.regex.clone().unwrap_or_default(),
            validation_min: p.validation.min,
            validation_max: p.validation.max,
            validation_monotonic: String::new(),
            required: p.required(),
            ephemeral: false,
        }
    }
}

/// Coder's `Template`.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub organization_display_name: String,
    pub organization_icon: String,
    pub name: String,
    pub display_name: String,
    pub provisioner: &'static str,
    pub active_version_id: Uuid,
    pub active_user_count: i64,
    pub build_time_stats: Value,
    pub description: String,
    pub deprecated: bool,
    pub deprecation_message: String,
    pub icon: String,
    pub default_ttl_ms: i64,
    pub activity_bump_ms: i64,
    pub autostop_requirement: Value,
    pub autostart_requirement: Value,
    pub allow_user_autostart: bool,
    pub allow_user_autostop: bool,
    pub allow_user_cancel_workspace_jobs: bool,
    pub failure_ttl_ms: i64,
    pub time_til_dormant_ms: i64,
    pub time_til_dormant_autodelete_ms: i64,
    pub require_active_version: bool,
    pub max_port_share_level: &'static str,
    pub created_by_id: Uuid,
    pub created_by_name: String,
    pub use_classic_parameter_flow: bool,
}

impl TemplateView {
    pub fn new(
        template: &Template,
        org: Option<&Organization>,
        creator: Option<&User>,
        provisioner: &'static str,
    ) -> Self {
        let no_stats = json!({"p50": null, "p95": null});
        TemplateView {
            id: template.id.0,
            created_at: template.created_at,
            updated_at: template.updated_at,
            organization_id: template.organization_id.0,
            organization_name: org.map(|o| o.name.clone()).unwrap_or_default(),
            organization_display_name: org.map(|o| o.display_name.clone()).unwrap_or_default(),
            organization_icon: org.map(|o| o.icon.clone()).unwrap_or_default(),
            name: template.name.clone(),
            display_name: template.display_name.clone(),
            provisioner,
            active_version_id: template.active_version_id.0,
            active_user_count: 0,
            build_time_stats: json!({"start": no_stats, "stop": no_stats, "delete": no_stats}),
            description: template.description.clone(),
            deprecated: false,
            deprecation_message: String::new(),
            icon: template.icon.clone(),
            default_ttl_ms: 0,
            activity_bump_ms: 0,
            autostop_requirement: json!({"days_of_week": [], "weeks": 1}),
            autostart_requirement: json!({"days_of_week": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}),
            allow_user_autostart: false,
            allow_user_autostop: false,
            allow_user_cancel_workspace_jobs: true,
            failure_ttl_ms: 0,
            time_til_dormant_ms: 0,
            time_til_dormant_autodelete_ms: 0,
            require_active_version: false,
            max_port_share_level: "owner",
            created_by_id: template.created_by.0,
            created_by_name: creator.map(|u| u.username.clone()).unwrap_or_default(),
            use_classic_parameter_flow: false,
        }
    }
}

/// Coder's `WorkspaceApp`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceAppView {
    pub id: Uuid,
    pub url: String,
    pub external: bool,
    pub slug: String,
    pub display_name: String,
    pub command: String,
    pub icon: String,
    pub subdomain: bool,
    pub subdomain_name: String,
    pub sharing_level: &'static str,
    pub healthcheck: Value,
    pub health: &'static str,
    pub hidden: bool,
    pub open_in: &'static str,
    pub statuses: Vec<Value>,
}

impl From<&WorkspaceApp> for WorkspaceAppView {
    fn from(a: &WorkspaceApp) -> Self {
        WorkspaceAppView {
            id: a.id.0,
            url: a.url.clone(),
            // The local provisioner shares the host's network: the URL is opened as is.
            external: true,
            slug: a.slug.clone(),
            display_name: a.display_name.clone(),
            command: String::new(),
            icon: a.icon.clone(),
            subdomain: false,
            subdomain_name: String::new(),
            sharing_level: "owner",
            healthcheck: json!({"url": "", "interval": 0, "threshold": 0}),
            health: "disabled",
            hidden: false,
            open_in: "slim-window",
            statuses: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub healthy: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Coder's `WorkspaceAgent`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceAgentView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub first_connected_at: Option<DateTime<Utc>>,
    pub last_connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub status: &'static str,
    pub lifecycle_state: &'static str,
    pub name: String,
    pub resource_id: Uuid,
    pub instance_id: String,
    pub architecture: &'static str,
    pub operating_system: &'static str,
    pub environment_variables: Value,
    pub logs_length: i64,
    pub logs_overflowed: bool,
    pub directory: String,
    pub expanded_directory: String,
    pub version: String,
    pub api_version: String,
    pub apps: Vec<WorkspaceAppView>,
    pub connection_timeout_seconds: i64,
    pub troubleshooting_url: String,
    pub subsystems: Vec<String>,
    pub health: HealthView,
    pub display_apps: Vec<String>,
    pub log_sources: Vec<Value>,
    pub scripts: Vec<Value>,
    pub startup_script_behavior: &'static str,
}

impl WorkspaceAgentView {
    pub fn new(
        agent: &WorkspaceAgent,
        connection: Option<&AgentConnection>,
        apps: &[WorkspaceApp],
        now: DateTime<Utc>,
    ) -> Self {
        let status = AgentStatus::derive(agent, connection, now);
        let (healthy, reason) = match (status, agent.lifecycle) {
            (_, AgentLifecycle::Off) => (false, "The workspace is stopped."),
            (AgentStatus::Connecting, _) => (false, "The agent is starting."),
            (AgentStatus::Timeout, _) => (
                false,
                "The agent has not connected; see the build logs, then restart the workspace.",
            ),
            (AgentStatus::Disconnected, _) => (
                false,
                "The agent is not connected; it reconnects on its own after a server restart.",
            ),
            (AgentStatus::Connected, AgentLifecycle::StartError) => {
                (false, "The startup script failed; see the agent logs.")
            }
            (AgentStatus::Connected, AgentLifecycle::StartTimeout) => {
                (false, "The startup script exceeded its timeout.")
            }
            (AgentStatus::Connected, _) => (true, ""),
        };
        let status = status.as_str();
        WorkspaceAgentView {
            id: agent.id.0,
            created_at: agent.created_at,
            updated_at: agent.updated_at,
            first_connected_at: connection.map(|c| c.first_connected_at),
            last_connected_at: connection.map(|c| c.last_connected_at),
            disconnected_at: connection.and_then(|c| c.disconnected_at),
            started_at: agent.started_at,
            ready_at: agent.ready_at,
            status,
            lifecycle_state: agent.lifecycle.as_str(),
            name: agent.name.clone(),
            resource_id: agent.build_id.0,
            instance_id: String::new(),
            architecture: std::env::consts::ARCH,
            operating_system: "linux",
            environment_variables: json!({}),
            logs_length: agent.logs_length,
            logs_overflowed: agent.logs_overflowed,
            directory: agent.directory.clone(),
            expanded_directory: agent.directory.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: "2.0".to_owned(),
            apps: apps.iter().map(WorkspaceAppView::from).collect(),
            connection_timeout_seconds: AGENT_CONNECTION_TIMEOUT.num_seconds(),
            troubleshooting_url: String::new(),
            subsystems: Vec::new(),
            health: HealthView {
                healthy,
                reason: reason.to_owned(),
            },
            display_apps: Vec::new(),
            log_sources: Vec::new(),
            scripts: Vec::new(),
            startup_script_behavior: "blocking",
        }
    }
}

/// Coder's `WorkspaceAgentLog`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceAgentLogView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub output: String,
    pub level: &'static str,
    pub source_id: Uuid,
}

impl From<&AgentLog> for WorkspaceAgentLogView {
    fn from(l: &AgentLog) -> Self {
        WorkspaceAgentLogView {
            id: l.id,
            created_at: l.created_at,
            output: l.output.clone(),
            level: l.level.as_str(),
            source_id: Uuid::nil(),
        }
    }
}

/// Coder's `WorkspaceResource`: the local provisioner makes one per start build.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceResourceView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub job_id: Uuid,
    pub workspace_transition: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'static str,
    pub hide: bool,
    pub icon: String,
    pub agents: Vec<WorkspaceAgentView>,
    pub metadata: Vec<Value>,
    pub daily_cost: i64,
}

/// Everything a build view needs, loaded by the service.
pub struct BuildParts<'a> {
    pub build: &'a WorkspaceBuild,
    pub workspace: &'a Workspace,
    pub owner: Option<&'a User>,
    pub initiator: Option<&'a User>,
    pub job: &'a ProvisionerJob,
    pub version: Option<&'a TemplateVersion>,
    pub template: Option<&'a Template>,
    pub agent: Option<(
        &'a WorkspaceAgent,
        Option<&'a AgentConnection>,
        &'a [WorkspaceApp],
    )>,
    /// When the view is made, for the agent's connection status.
    pub now: DateTime<Utc>,
}

/// Coder's `WorkspaceBuild`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceBuildView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub workspace_owner_id: Uuid,
    pub workspace_owner_name: String,
    pub workspace_owner_avatar_url: String,
    pub template_version_id: Uuid,
    pub template_version_name: String,
    pub build_number: i64,
    pub transition: &'static str,
    pub initiator_id: Uuid,
    pub initiator_name: String,
    pub job: ProvisionerJobView,
    pub reason: String,
    pub resources: Vec<WorkspaceResourceView>,
    pub deadline: Option<DateTime<Utc>>,
    pub max_deadline: Option<DateTime<Utc>>,
    pub status: &'static str,
    pub daily_cost: i64,
}

impl WorkspaceBuildView {
    pub fn new(p: BuildParts<'_>) -> Self {
        let status = WorkspaceStatus::derive(p.build.transition, p.job.status);
        let resources = p
            .agent
            .map(|(agent, connection, apps)| WorkspaceResourceView {
                id: p.build.id.0,
                created_at: p.build.created_at,
                job_id: p.job.id.0,
                workspace_transition: p.build.transition.as_str(),
                kind: "local_workspace",
                name: "workspace",
                hide: false,
                icon: String::new(),
                agents: vec![WorkspaceAgentView::new(agent, connection, apps, p.now)],
                metadata: Vec::new(),
                daily_cost: 0,
            })
            .into_iter()
            .collect();
        let metadata = p
            .version
            .map(|v| job_metadata(v, p.template, Some(p.workspace)))
            .unwrap_or_default();
        WorkspaceBuildView {
            id: p.build.id.0,
            created_at: p.build.created_at,
            updated_at: p.build.updated_at,
            workspace_id: p.workspace.id.0,
            workspace_name: p.workspace.name.clone(),
            workspace_owner_id: p.workspace.owner_id.0,
            workspace_owner_name: p.owner.map(|u| u.username.clone()).unwrap_or_default(),
            workspace_owner_avatar_url: String::new(),
            template_version_id: p.build.template_version_id.0,
            template_version_name: p.version.map(|v| v.name.clone()).unwrap_or_default(),
            build_number: p.build.build_number,
            transition: p.build.transition.as_str(),
            initiator_id: p.build.initiator_id.0,
            initiator_name: p.initiator.map(|u| u.username.clone()).unwrap_or_default(),
            job: ProvisionerJobView::new(
                p.job,
                JobInputView {
                    template_version_id: None,
                    workspace_build_id: Some(p.build.id.0),
                },
                metadata,
            ),
            reason: p.build.reason.clone(),
            resources,
            deadline: None,
            max_deadline: None,
            status: status.as_str(),
            daily_cost: 0,
        }
    }

    pub fn finished(&self) -> bool {
        JobStatus::parse(self.job.status).is_some_and(|s| !s.is_active())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceHealthView {
    pub healthy: bool,
    pub failing_agents: Vec<Uuid>,
}

/// Coder's `Workspace`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub owner_avatar_url: String,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub template_display_name: String,
    pub template_icon: String,
    pub template_allow_user_cancel_workspace_jobs: bool,
    pub template_active_version_id: Uuid,
    pub template_require_active_version: bool,
    pub latest_build: WorkspaceBuildView,
    pub latest_app_status: Option<Value>,
    pub outdated: bool,
    pub name: String,
    pub autostart_schedule: Option<String>,
    pub ttl_ms: Option<i64>,
    pub last_used_at: DateTime<Utc>,
    pub deleting_at: Option<DateTime<Utc>>,
    pub dormant_at: Option<DateTime<Utc>>,
    pub health: WorkspaceHealthView,
    pub automatic_updates: &'static str,
    pub allow_renames: bool,
    pub favorite: bool,
    pub next_start_at: Option<DateTime<Utc>>,
}

impl WorkspaceView {
    pub fn new(
        workspace: &Workspace,
        org: Option<&Organization>,
        template: Option<&Template>,
        latest_build: WorkspaceBuildView,
    ) -> Self {
        let running = latest_build.status == WorkspaceStatus::Running.as_str();
        let failing_agents: Vec<Uuid> = latest_build
            .resources
            .iter()
            .flat_map(|r| &r.agents)
            .filter(|a| !a.health.healthy)
            .map(|a| a.id)
            .collect();
        let template_active_version_id =
            template.map(|t| t.active_version_id.0).unwrap_or_default();
        WorkspaceView {
            id: workspace.id.0,
            created_at: workspace.created_at,
            updated_at: workspace.updated_at,
            owner_id: workspace.owner_id.0,
            owner_name: latest_build.workspace_owner_name.clone(),
            owner_avatar_url: String::new(),
            organization_id: workspace.organization_id.0,
            organization_name: org.map(|o| o.name.clone()).unwrap_or_default(),
            template_id: workspace.template_id.0,
            template_name: template.map(|t| t.name.clone()).unwrap_or_default(),
            template_display_name: template.map(|t| t.display_name.clone()).unwrap_or_default(),
            template_icon: template.map(|t| t.icon.clone()).unwrap_or_default(),
            template_allow_user_cancel_workspace_jobs: true,
            template_active_version_id,
            template_require_active_version: false,
            outdated: template.is_some()
                && latest_build.template_version_id != template_active_version_id,
            latest_app_status: None,
            name: workspace.name.clone(),
            autostart_schedule: None,
            ttl_ms: None,
            last_used_at: workspace.last_used_at,
            deleting_at: None,
            dormant_at: None,
            health: WorkspaceHealthView {
                healthy: !running || failing_agents.is_empty(),
                failing_agents,
            },
            automatic_updates: "never",
            allow_renames: false,
            favorite: false,
            next_start_at: None,
            latest_build,
        }
    }
}

/// Coder's `WorkspacesResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspacesView {
    pub workspaces: Vec<WorkspaceView>,
    pub count: i64,
}

/// The result of running a command in a workspace.
#[derive(Debug, Clone, Serialize)]
pub struct ExecResultView {
    pub output: String,
    pub exit_code: i32,
    pub timed_out: bool,
    pub truncated: bool,
    /// The background process started (read its output with the process routes and tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
}

/// Coder's `codersdk.User`, for the REST API and the MCP tools alike.
#[derive(Debug, Serialize)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub status: &'static str,
    pub login_type: &'static str,
    pub theme_preference: &'static str,
    pub avatar_url: &'static str,
    pub roles: Vec<RoleResponse>,
}

#[derive(Debug, Serialize)]
pub struct RoleResponse {
    pub name: &'static str,
    pub display_name: &'static str,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        // Coder lists only granted site roles; "member" is implicit.
        let roles = match u.role {
            Role::Owner => vec![RoleResponse {
                name: Role::Owner.as_str(),
                display_name: Role::Owner.display_name(),
            }],
            Role::Member => Vec::new(),
        };
        UserResponse {
            id: u.id.0,
            username: u.username,
            name: u.name,
            email: u.email,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_seen_at: u.last_seen_at,
            status: u.status.as_str(),
            login_type: "password",
            theme_preference: "",
            avatar_url: "",
            roles,
        }
    }
}
