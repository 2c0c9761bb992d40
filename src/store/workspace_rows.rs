//! Workspace row shapes shared by both backends, and their conversion into domain entities.

use sqlx::FromRow;
use uuid::Uuid;

use super::StoreError;
use super::rows::corrupt;
use super::time::DbTime;
use crate::domain::{
    AgentId, AgentLifecycle, AgentLog, AppId, BuildId, FileId, JobId, JobLog, JobStatus, JobType,
    LogLevel, Organization, OrganizationId, ParameterValue, ProvisionerJob, StoredFile, Template,
    TemplateId, TemplateVersion, TemplateVersionId, Transition, UserId, Workspace, WorkspaceAgent,
    WorkspaceApp, WorkspaceBuild, WorkspaceId,
};

pub const ORG_COLUMNS: &str =
    "id, name, display_name, description, icon, is_default, created_at, updated_at";
pub const FILE_COLUMNS: &str = "id, hash, mimetype, data, created_by, created_at";
pub const JOB_COLUMNS: &str = "id, organization_id, job_type, status, file_id, initiator_id, \
     worker_id, error, created_at, updated_at, started_at, completed_at, canceled_at";
pub const JOB_LOG_COLUMNS: &str = "id, job_id, created_at, source, level, stage, output";
pub const TEMPLATE_COLUMNS: &str = "id, organization_id, name, display_name, description, icon, \
     active_version_id, created_by, created_at, updated_at";
pub const VERSION_COLUMNS: &str = "id, template_id, organization_id, name, message, readme, \
     job_id, file_id, manifest, created_by, archived, created_at, updated_at";
pub const WORKSPACE_COLUMNS: &str = "id, owner_id, organization_id, template_id, name, deleted, \
     last_used_at, created_at, updated_at";
pub const BUILD_COLUMNS: &str = "id, workspace_id, build_number, transition, \
     template_version_id, job_id, initiator_id, reason, parameters, created_at, updated_at";
pub const AGENT_COLUMNS: &str = "id, workspace_id, build_id, name, lifecycle_state, directory, \
     logs_length, logs_overflowed, started_at, ready_at, created_at, updated_at";
pub const AGENT_LOG_COLUMNS: &str = "id, agent_id, created_at, level, output";
pub const APP_COLUMNS: &str = "id, agent_id, slug, display_name, url, icon, created_at";

#[derive(FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub is_default: bool,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;

    fn try_from(r: OrgRow) -> Result<Self, Self::Error> {
        Ok(Organization {
            id: OrganizationId(r.id),
            name: r.name,
            display_name: r.display_name,
            description: r.description,
            icon: r.icon,
            is_default: r.is_default,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct FileRow {
    pub id: Uuid,
    pub hash: String,
    pub mimetype: String,
    pub data: Vec<u8>,
    pub created_by: Uuid,
    pub created_at: DbTime,
}

impl TryFrom<FileRow> for StoredFile {
    type Error = StoreError;

    fn try_from(r: FileRow) -> Result<Self, Self::Error> {
        Ok(StoredFile {
            id: FileId(r.id),
            hash: r.hash,
            mimetype: r.mimetype,
            data: r.data,
            created_by: UserId(r.created_by),
            created_at: r.created_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub job_type: String,
    pub status: String,
    pub file_id: Uuid,
    pub initiator_id: Uuid,
    pub worker_id: Option<String>,
    pub error: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
    pub started_at: Option<DbTime>,
    pub completed_at: Option<DbTime>,
    pub canceled_at: Option<DbTime>,
}

impl TryFrom<JobRow> for ProvisionerJob {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, Self::Error> {
        Ok(ProvisionerJob {
            id: JobId(r.id),
            organization_id: OrganizationId(r.organization_id),
            job_type: JobType::parse(&r.job_type)
                .ok_or_else(|| corrupt("provisioner_jobs.job_type", &r.job_type))?,
            status: JobStatus::parse(&r.status)
                .ok_or_else(|| corrupt("provisioner_jobs.status", &r.status))?,
            file_id: FileId(r.file_id),
            initiator_id: UserId(r.initiator_id),
            worker_id: r.worker_id,
            error: r.error,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            started_at: r.started_at.map(|t| t.0),
            completed_at: r.completed_at.map(|t| t.0),
            canceled_at: r.canceled_at.map(|t| t.0),
        })
    }
}

#[derive(FromRow)]
pub struct JobLogRow {
    pub id: i64,
    pub job_id: Uuid,
    pub created_at: DbTime,
    pub source: String,
    pub level: String,
    pub stage: String,
    pub output: String,
}

impl TryFrom<JobLogRow> for JobLog {
    type Error = StoreError;

    fn try_from(r: JobLogRow) -> Result<Self, Self::Error> {
        Ok(JobLog {
            id: r.id,
            job_id: JobId(r.job_id),
            created_at: r.created_at.0,
            level: LogLevel::parse(&r.level)
                .ok_or_else(|| corrupt("provisioner_job_logs.level", &r.level))?,
            source: r.source,
            stage: r.stage,
            output: r.output,
        })
    }
}

#[derive(FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub active_version_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<TemplateRow> for Template {
    type Error = StoreError;

    fn try_from(r: TemplateRow) -> Result<Self, Self::Error> {
        Ok(Template {
            id: TemplateId(r.id),
            organization_id: OrganizationId(r.organization_id),
            name: r.name,
            display_name: r.display_name,
            description: r.description,
            icon: r.icon,
            active_version_id: TemplateVersionId(r.active_version_id),
            created_by: UserId(r.created_by),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct VersionRow {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: String,
    pub message: String,
    pub readme: String,
    pub job_id: Uuid,
    pub file_id: Uuid,
    pub manifest: Option<String>,
    pub created_by: Uuid,
    pub archived: bool,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<VersionRow> for TemplateVersion {
    type Error = StoreError;

    fn try_from(r: VersionRow) -> Result<Self, Self::Error> {
        Ok(TemplateVersion {
            id: TemplateVersionId(r.id),
            template_id: r.template_id.map(TemplateId),
            organization_id: OrganizationId(r.organization_id),
            name: r.name,
            message: r.message,
            readme: r.readme,
            job_id: JobId(r.job_id),
            file_id: FileId(r.file_id),
            manifest: r.manifest,
            created_by: UserId(r.created_by),
            archived: r.archived,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub organization_id: Uuid,
    pub template_id: Uuid,
    pub name: String,
    pub deleted: bool,
    pub last_used_at: DbTime,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<WorkspaceRow> for Workspace {
    type Error = StoreError;

    fn try_from(r: WorkspaceRow) -> Result<Self, Self::Error> {
        Ok(Workspace {
            id: WorkspaceId(r.id),
            owner_id: UserId(r.owner_id),
            organization_id: OrganizationId(r.organization_id),
            template_id: TemplateId(r.template_id),
            name: r.name,
            deleted: r.deleted,
            last_used_at: r.last_used_at.0,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct BuildRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub build_number: i64,
    pub transition: String,
    pub template_version_id: Uuid,
    pub job_id: Uuid,
    pub initiator_id: Uuid,
    pub reason: String,
    pub parameters: String,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<BuildRow> for WorkspaceBuild {
    type Error = StoreError;

    fn try_from(r: BuildRow) -> Result<Self, Self::Error> {
        let parameters: Vec<ParameterValue> = serde_json::from_str(&r.parameters).map_err(|e| {
            StoreError::Database(format!("invalid JSON in workspace_builds.parameters: {e}"))
        })?;
        Ok(WorkspaceBuild {
            id: BuildId(r.id),
            workspace_id: WorkspaceId(r.workspace_id),
            build_number: r.build_number,
            transition: Transition::parse(&r.transition)
                .ok_or_else(|| corrupt("workspace_builds.transition", &r.transition))?,
            template_version_id: TemplateVersionId(r.template_version_id),
            job_id: JobId(r.job_id),
            initiator_id: UserId(r.initiator_id),
            reason: r.reason,
            parameters,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

pub fn parameters_json(values: &[ParameterValue]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(FromRow)]
pub struct AgentRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub build_id: Uuid,
    pub name: String,
    pub lifecycle_state: String,
    pub directory: String,
    pub logs_length: i64,
    pub logs_overflowed: bool,
    pub started_at: Option<DbTime>,
    pub ready_at: Option<DbTime>,
    pub created_at: DbTime,
    pub updated_at: DbTime,
}

impl TryFrom<AgentRow> for WorkspaceAgent {
    type Error = StoreError;

    fn try_from(r: AgentRow) -> Result<Self, Self::Error> {
        Ok(WorkspaceAgent {
            id: AgentId(r.id),
            workspace_id: WorkspaceId(r.workspace_id),
            build_id: BuildId(r.build_id),
            name: r.name,
            lifecycle: AgentLifecycle::parse(&r.lifecycle_state)
                .ok_or_else(|| corrupt("workspace_agents.lifecycle_state", &r.lifecycle_state))?,
            directory: r.directory,
            logs_length: r.logs_length,
            logs_overflowed: r.logs_overflowed,
            started_at: r.started_at.map(|t| t.0),
            ready_at: r.ready_at.map(|t| t.0),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(FromRow)]
pub struct AgentLogRow {
    pub id: i64,
    pub agent_id: Uuid,
    pub created_at: DbTime,
    pub level: String,
    pub output: String,
}

impl TryFrom<AgentLogRow> for AgentLog {
    type Error = StoreError;

    fn try_from(r: AgentLogRow) -> Result<Self, Self::Error> {
        Ok(AgentLog {
            id: r.id,
            agent_id: AgentId(r.agent_id),
            created_at: r.created_at.0,
            level: LogLevel::parse(&r.level)
                .ok_or_else(|| corrupt("workspace_agent_logs.level", &r.level))?,
            output: r.output,
        })
    }
}

#[derive(FromRow)]
pub struct AppRow {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub slug: String,
    pub display_name: String,
    pub url: String,
    pub icon: String,
    pub created_at: DbTime,
}

impl TryFrom<AppRow> for WorkspaceApp {
    type Error = StoreError;

    fn try_from(r: AppRow) -> Result<Self, Self::Error> {
        Ok(WorkspaceApp {
            id: AppId(r.id),
            agent_id: AgentId(r.agent_id),
            slug: r.slug,
            display_name: r.display_name,
            url: r.url,
            icon: r.icon,
            created_at: r.created_at.0,
        })
    }
}

/// The columns a page of workspace summaries is aggregated from (`summaries_from_page`), from
/// the workspace list's joins.
pub const SUMMARY_COLUMNS: &str = "w.id, w.name, o.username AS owner_name, t.id AS template_id, \
     t.name AS template_name, t.display_name AS template_display_name, t.icon AS template_icon, \
     t.active_version_id, w.latest_template_version_id AS template_version_id, \
     w.latest_transition AS transition, w.latest_job_status AS job_status";

/// How many bytes of ids each workspace adds to a page: its own, its template's, the template's
/// active version's and its latest build's version's, 16 bytes each.
const SUMMARY_IDS_LEN: usize = 4 * 16;

/// The text fields of one workspace summary, read from a JSON array in this order.
#[derive(serde::Deserialize)]
struct SummaryTexts {
    name: String,
    owner_name: String,
    template_name: String,
    template_display_name: String,
    template_icon: String,
    transition: String,
    job_status: String,
}

/// A page of workspace summaries from the one row `list_workspace_summaries` reads: `texts`, a
/// JSON array with each workspace's text fields (`SummaryTexts`), and `ids`, the same
/// workspaces' ids packed as 16-byte UUIDs (`SUMMARY_IDS_LEN` per workspace) in the same
/// order. Ids travel as bytes because turning them into text (`hex()` on four blobs a row)
/// was about 40% of what the query cost SQLite (docs/benchmarks.md).
pub fn summaries_from_page(
    texts: &str,
    ids: &[u8],
) -> Result<Vec<crate::domain::WorkspaceSummary>, StoreError> {
    let texts: Vec<SummaryTexts> = serde_json::from_str(texts)
        .map_err(|e| StoreError::Database(format!("unreadable workspace summaries: {e}")))?;
    if ids.len() != texts.len() * SUMMARY_IDS_LEN {
        return Err(StoreError::Database(format!(
            "workspace summaries: {} bytes of ids for {} workspaces",
            ids.len(),
            texts.len()
        )));
    }
    texts
        .into_iter()
        .zip(ids.chunks_exact(SUMMARY_IDS_LEN))
        .map(|(t, ids)| summary(t, ids))
        .collect()
}

fn summary(t: SummaryTexts, ids: &[u8]) -> Result<crate::domain::WorkspaceSummary, StoreError> {
    let id = |n: usize| {
        ids.get(n * 16..(n + 1) * 16)
            .and_then(|bytes| Uuid::from_slice(bytes).ok())
            .ok_or_else(|| StoreError::Database("workspace summaries: a short id".into()))
    };
    Ok(crate::domain::WorkspaceSummary {
        id: WorkspaceId(id(0)?),
        template_id: TemplateId(id(1)?),
        template_active_version_id: TemplateVersionId(id(2)?),
        build_template_version_id: TemplateVersionId(id(3)?),
        transition: Transition::parse(&t.transition)
            .ok_or_else(|| corrupt("workspaces.latest_transition", &t.transition))?,
        job_status: JobStatus::parse(&t.job_status)
            .ok_or_else(|| corrupt("workspaces.latest_job_status", &t.job_status))?,
        name: t.name,
        owner_name: t.owner_name,
        template_name: t.template_name,
        template_display_name: t.template_display_name,
        template_icon: t.template_icon,
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::summaries_from_page;
    use crate::domain::{JobStatus, Transition};
    use uuid::Uuid;

    const TEXTS: &str = r#"[["dev","alice","docker","Docker","/icon.svg","start","succeeded"]]"#;

    #[test]
    fn a_page_pairs_each_workspace_texts_with_its_four_ids_in_order() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let packed: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
        let page = summaries_from_page(TEXTS, &packed).expect("a page");
        let [w] = page.as_slice() else {
            panic!("one workspace, got {}", page.len())
        };
        assert_eq!(
            (w.id.0, w.template_id.0),
            (ids[0], ids[1]),
            "workspace, then template"
        );
        assert_eq!(w.template_active_version_id.0, ids[2]);
        assert_eq!(w.build_template_version_id.0, ids[3]);
        assert!(w.outdated());
        assert_eq!((w.name.as_str(), w.owner_name.as_str()), ("dev", "alice"));
        assert_eq!(w.template_display_name, "Docker");
        assert_eq!(
            (w.transition, w.job_status),
            (Transition::Start, JobStatus::Succeeded)
        );
    }

    #[test]
    fn an_empty_page_has_no_ids() {
        assert!(summaries_from_page("[]", &[]).expect("empty").is_empty());
    }

    #[test]
    fn ids_that_do_not_match_the_texts_are_an_error_not_a_misread() {
        for len in [0, 63, 65, 128] {
            assert!(
                summaries_from_page(TEXTS, &vec![7; len]).is_err(),
                "{len} bytes of ids for one workspace"
            );
        }
        let unknown_status = TEXTS.replace("succeeded", "exploded");
        assert!(summaries_from_page(&unknown_status, &[7; 64]).is_err());
    }
}
