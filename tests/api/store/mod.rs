//! The store contract: every `Store` method, called directly, with the same expectations on
//! SQLite and PostgreSQL. One module per aggregate, as in `src/store/`; this one holds the
//! fixtures they share.

mod agents;
mod audit;
mod jobs;
mod oauth;
mod provisioner_daemons;
mod provisioner_keys;
mod site_config;
mod templates;
mod users;
mod workspace_list;
mod workspaces;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coderd::domain::{
    BuildId, DEFAULT_ORGANIZATION_NAME, FileId, JobId, JobStatus, JobType, NewUser, Organization,
    OrganizationId, ParameterValue, ProvisionerJob, Role, StoredFile, Template, TemplateId,
    TemplateVersion, TemplateVersionId, Transition, User, UserId, Workspace, WorkspaceBuild,
    WorkspaceId,
};
use coderd::store::{Constraint, SharedStore, StoreError};

use crate::both_backends;
use crate::helpers::{Backend, TestDatabase};

both_backends!(reports_backend_pings_and_closes);

pub async fn open(backend: &Backend) -> (SharedStore, TestDatabase) {
    let db = TestDatabase::new(backend).await;
    let store = coderd::store::open(&db.target).await.expect("store opens");
    (store, db)
}

/// The tag sets of a provisioner with no tags: it takes untagged jobs.
pub fn any() -> Vec<String> {
    coderd::domain::provisioner::ProvisionerTags::default().subsets()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).single().unwrap()
}

/// `minutes` after `t0`, for events that happen in order.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

pub fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: username.to_owned(),
        email: format!("{username}@example.com"),
        name: format!("{username} name"),
        hashed_password: format!("$argon2id$hash-of-{username}"),
        role,
        created_at: t0(),
    }
}

pub fn assert_conflict_on(err: StoreError, expected: Constraint) {
    match err {
        StoreError::Conflict(constraint) => assert_eq!(constraint, expected),
        other => panic!("expected a conflict on {expected}, got {other:?}"),
    }
}

async fn reports_backend_pings_and_closes(backend: Backend) {
    let (store, db) = open(&backend).await;
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    assert_eq!(store.backend(), expected);
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store cannot be used");

    // Opening the same database again finds the migrated schema in place.
    let again = coderd::store::open(&db.target).await.expect("reopen");
    again.ping().await.unwrap();
    again.close().await;
}

/// A deployment as workspaces need it: an owner, the default organization, an uploaded file,
/// and the template `docker` whose imported version `v1` is active.
pub struct Deployment {
    pub store: SharedStore,
    pub owner: User,
    pub org: Organization,
    pub file: StoredFile,
    pub template: Template,
    pub version: TemplateVersion,
    /// The database, kept until the deployment is dropped; a server can be started on it.
    pub db: TestDatabase,
}

impl Deployment {
    pub async fn new(backend: &Backend) -> Deployment {
        let (store, db) = open(backend).await;
        let owner = store
            .create_first_user(new_user("owner", Role::Owner))
            .await
            .unwrap();
        let org = store
            .ensure_default_organization(Organization {
                id: OrganizationId::new(),
                name: DEFAULT_ORGANIZATION_NAME.to_owned(),
                display_name: "Coder".to_owned(),
                description: String::new(),
                icon: String::new(),
                is_default: true,
                created_at: t0(),
                updated_at: t0(),
            })
            .await
            .unwrap();
        let file = StoredFile {
            id: FileId::new(),
            hash: "f".repeat(64),
            mimetype: "application/x-tar".to_owned(),
            data: vec![0, 1, 2, 255],
            created_by: owner.id,
            created_at: t0(),
        };
        store.insert_file(file.clone()).await.unwrap();
        let job = ProvisionerJob::pending(
            org.id,
            JobType::TemplateVersionImport,
            file.id,
            owner.id,
            t0(),
        );
        let version = version_imported_by(&job, "v1");
        store
            .insert_template_version(version.clone(), job.clone())
            .await
            .unwrap();
        finish(&store, job.id, JobStatus::Succeeded).await;
        let template = template_of(&version, "docker");
        assert!(store.insert_template(template.clone()).await.unwrap());
        Deployment {
            store,
            owner,
            org,
            file,
            version: TemplateVersion {
                template_id: Some(template.id),
                ..version
            },
            template,
            db,
        }
    }

    /// A pending job of this deployment, created at `created_at`.
    pub fn job(&self, job_type: JobType, created_at: DateTime<Utc>) -> ProvisionerJob {
        ProvisionerJob::pending(
            self.org.id,
            job_type,
            self.file.id,
            self.owner.id,
            created_at,
        )
    }

    /// A version named `name`, not attached to a template, with its pending import job.
    pub fn version(
        &self,
        name: &str,
        created_at: DateTime<Utc>,
    ) -> (TemplateVersion, ProvisionerJob) {
        let job = self.job(JobType::TemplateVersionImport, created_at);
        (version_imported_by(&job, name), job)
    }

    /// A workspace of `owner` on the deployment's template, with its first build (a start) and
    /// that build's pending job.
    pub fn workspace(
        &self,
        owner: UserId,
        name: &str,
        created_at: DateTime<Utc>,
    ) -> (Workspace, WorkspaceBuild, ProvisionerJob) {
        let workspace = Workspace {
            id: WorkspaceId::new(),
            owner_id: owner,
            organization_id: self.org.id,
            template_id: self.template.id,
            name: name.to_owned(),
            deleted: false,
            last_used_at: created_at,
            created_at,
            updated_at: created_at,
        };
        let (build, job) = self.build(&workspace, Transition::Start, 1, created_at);
        (workspace, build, job)
    }

    /// Build `number` of `workspace`, on the active version, with its pending job.
    pub fn build(
        &self,
        workspace: &Workspace,
        transition: Transition,
        number: i64,
        created_at: DateTime<Utc>,
    ) -> (WorkspaceBuild, ProvisionerJob) {
        let job = self.job(JobType::WorkspaceBuild, created_at);
        let build = WorkspaceBuild {
            id: BuildId::new(),
            workspace_id: workspace.id,
            build_number: number,
            transition,
            template_version_id: self.template.active_version_id,
            job_id: job.id,
            initiator_id: workspace.owner_id,
            reason: "initiator".to_owned(),
            parameters: vec![ParameterValue {
                name: "region".to_owned(),
                value: "eu ✓".to_owned(),
            }],
            created_at,
            updated_at: created_at,
        };
        (build, job)
    }

    /// Stores a workspace of `owner` with its first build, whose job stays pending.
    pub async fn create_workspace(&self, owner: UserId, name: &str) -> (Workspace, WorkspaceBuild) {
        let (workspace, build, job) = self.workspace(owner, name, t0());
        assert!(
            self.store
                .insert_workspace(workspace.clone(), build.clone(), job)
                .await
                .unwrap()
        );
        (workspace, build)
    }

    pub async fn finish(&self, job: JobId, status: JobStatus) {
        finish(&self.store, job, status).await;
    }
}

/// The version `job` imports, named `name` and not attached to a template.
pub fn version_imported_by(job: &ProvisionerJob, name: &str) -> TemplateVersion {
    TemplateVersion {
        id: TemplateVersionId::new(),
        template_id: None,
        organization_id: job.organization_id,
        name: name.to_owned(),
        message: format!("{name} message"),
        readme: String::new(),
        job_id: job.id,
        file_id: job.file_id,
        manifest: None,
        created_by: job.initiator_id,
        archived: false,
        created_at: job.created_at,
        updated_at: job.created_at,
        provisioner_tags: Default::default(),
    }
}

/// A template named `name` whose active version is `version`.
pub fn template_of(version: &TemplateVersion, name: &str) -> Template {
    Template {
        id: TemplateId::new(),
        organization_id: version.organization_id,
        name: name.to_owned(),
        display_name: format!("{name} display"),
        description: format!("{name} description"),
        icon: format!("/icon/{name}.svg"),
        active_version_id: version.id,
        created_by: version.created_by,
        created_at: version.created_at,
        updated_at: version.created_at,
    }
}

/// Takes `job` as a worker would (it must be the oldest pending one) and moves it to `status`:
/// `Running` leaves it taken, `Canceling` requests its cancellation, and any other status
/// completes it.
pub async fn finish(store: &SharedStore, job: JobId, status: JobStatus) {
    let claimed = store.claim_job("worker-1", &any(), t0()).await.unwrap();
    assert_eq!(claimed.map(|j| j.id), Some(job), "the oldest pending job");
    match status {
        JobStatus::Running => {}
        JobStatus::Canceling => assert_eq!(
            store.cancel_job(job, t0()).await.unwrap(),
            Some(JobStatus::Canceling)
        ),
        _ => assert!(store.complete_job(job, status, "", t0()).await.unwrap()),
    }
}
