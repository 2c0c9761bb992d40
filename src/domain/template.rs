//! Organizations, uploaded files, templates, template versions and provisioner jobs.

use super::UserId;
use super::id::uuid_id;
use chrono::{DateTime, Utc};

uuid_id!(OrganizationId);
uuid_id!(FileId);
uuid_id!(TemplateId);
uuid_id!(TemplateVersionId);
uuid_id!(JobId);

/// The name of the organization every deployment has, as in Coder.
pub const DEFAULT_ORGANIZATION_NAME: &str = "coder";

#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An uploaded archive: a template's source.
#[derive(Clone, PartialEq)]
pub struct StoredFile {
    pub id: FileId,
    /// SHA-256 of `data`, lowercase hex.
    pub hash: String,
    pub mimetype: String,
    pub data: Vec<u8>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFile")
            .field("id", &self.id)
            .field("hash", &self.hash)
            .field("mimetype", &self.mimetype)
            .field("size", &self.data.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub id: TemplateId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub active_version_id: TemplateVersionId,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateVersion {
    pub id: TemplateVersionId,
    pub template_id: Option<TemplateId>,
    pub organization_id: OrganizationId,
    pub name: String,
    pub message: String,
    pub readme: String,
    pub job_id: JobId,
    pub file_id: FileId,
    /// The parsed manifest, as JSON; `None` until the import job succeeds.
    pub manifest: Option<String>,
    pub created_by: UserId,
    pub archived: bool,
    /// The tags its workspaces' builds need.
    pub provisioner_tags: super::provisioner::ProvisionerTags,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobType {
    TemplateVersionImport,
    WorkspaceBuild,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::TemplateVersionImport => "template_version_import",
            JobType::WorkspaceBuild => "workspace_build",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "template_version_import" => Some(JobType::TemplateVersionImport),
            "workspace_build" => Some(JobType::WorkspaceBuild),
            _ => None,
        }
    }
}

/// Coder's `ProvisionerJobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceling,
    Canceled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Canceling => "canceling",
            JobStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(JobStatus::Pending),
            "running" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Succeeded),
            "failed" => Some(JobStatus::Failed),
            "canceling" => Some(JobStatus::Canceling),
            "canceled" => Some(JobStatus::Canceled),
            _ => None,
        }
    }

    /// Still queued or in progress: no other build may start meanwhile.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::Pending | JobStatus::Running | JobStatus::Canceling
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionerJob {
    pub id: JobId,
    pub organization_id: OrganizationId,
    pub job_type: JobType,
    pub status: JobStatus,
    pub file_id: FileId,
    pub initiator_id: UserId,
    pub worker_id: Option<String>,
    /// Why the job failed; empty otherwise.
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    /// Which provisioners may take it (`domain::provisioner`).
    pub tags: super::provisioner::ProvisionerTags,
}

impl ProvisionerJob {
    /// A job waiting in the queue.
    pub fn pending(
        organization_id: OrganizationId,
        job_type: JobType,
        file_id: FileId,
        initiator_id: UserId,
        now: DateTime<Utc>,
    ) -> Self {
        ProvisionerJob {
            id: JobId::new(),
            organization_id,
            job_type,
            status: JobStatus::Pending,
            file_id,
            initiator_id,
            worker_id: None,
            error: String::new(),
            created_at: now,
            updated_at: now,
            started_at: None,
            completed_at: None,
            canceled_at: None,
            tags: super::provisioner::ProvisionerTags::default(),
        }
    }

    /// The same job, for provisioners with `tags`.
    pub fn with_tags(self, tags: super::provisioner::ProvisionerTags) -> Self {
        ProvisionerJob { tags, ..self }
    }
}

/// Coder's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "trace" => Some(LogLevel::Trace),
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

/// One line of a job's log, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJobLog {
    pub created_at: DateTime<Utc>,
    /// `provisioner_daemon` for the runner's own lines, `provisioner` for the provisioner's.
    pub source: &'static str,
    pub level: LogLevel,
    pub stage: String,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobLog {
    pub id: i64,
    pub job_id: JobId,
    pub created_at: DateTime<Utc>,
    pub source: String,
    pub level: LogLevel,
    pub stage: String,
    pub output: String,
}
