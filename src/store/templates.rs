//! Organizations, uploaded files, templates and their versions.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::jobs::insert_job_row;
use super::pool::on;
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all, unstorable};
use crate::domain::{
    FileId, JobId, Organization, OrganizationId, ProvisionerJob, StoredFile, Template, TemplateId,
    TemplateVersion, TemplateVersionId, UserId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTemplateOutcome {
    Deleted,
    NotFound,
    /// Workspaces still use the template.
    HasWorkspaces(i64),
}

/// Organizations and files.
impl Store {
    /// Creates the default organization unless one exists, and returns the one that does.
    pub async fn ensure_default_organization(
        &self,
        org: Organization,
    ) -> StoreResult<Organization> {
        // The partial unique index on is_default makes a concurrent second insert a no-op.
        on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO organizations (id, name, display_name, description, icon, \
                 is_default, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(org.id.0)
            .bind(&org.name)
            .bind(&org.display_name)
            .bind(&org.description)
            .bind(&org.icon)
            .bind(DbTime(org.created_at))
            .execute(pool)
            .await?;
        });
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE is_default");
        let row: OrgRow = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).fetch_one(pool).await?
        });
        row.try_into()
    }

    pub async fn get_organization(&self, id: OrganizationId) -> StoreResult<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1");
        let row: Option<OrgRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Organization::try_from).transpose()
    }

    pub async fn get_organization_by_name(&self, name: &str) -> StoreResult<Option<Organization>> {
        if unstorable(name) {
            return Ok(None);
        }
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE lower(name) = lower($1)");
        let row: Option<OrgRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(name).fetch_optional(pool).await?
        });
        row.map(Organization::try_from).transpose()
    }

    /// Stores the file, or returns the one this user already uploaded with the same hash; the
    /// flag is true when a new row was written.
    pub async fn insert_file(&self, file: StoredFile) -> StoreResult<(StoredFile, bool)> {
        let inserted = on!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO files (id, hash, mimetype, data, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (hash, created_by) DO NOTHING",
            )
            .bind(file.id.0)
            .bind(&file.hash)
            .bind(&file.mimetype)
            .bind(&file.data)
            .bind(file.created_by.0)
            .bind(DbTime(file.created_at))
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1;
        if inserted {
            return Ok((file, true));
        }
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE hash = $1 AND created_by = $2");
        let row: FileRow = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(&file.hash)
                .bind(file.created_by.0)
                .fetch_one(pool)
                .await?
        });
        Ok((row.try_into()?, false))
    }

    pub async fn get_file(&self, id: FileId) -> StoreResult<Option<StoredFile>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
        let row: Option<FileRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(StoredFile::try_from).transpose()
    }
}

/// Template versions.
impl Store {
    /// Stores the version with the job that imports it, in one transaction.
    pub async fn insert_template_version(
        &self,
        version: TemplateVersion,
        job: ProvisionerJob,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_job_row(&mut tx, &job).await?;
        on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO template_versions (id, template_id, organization_id, name, message, \
                 readme, job_id, file_id, manifest, created_by, archived, created_at, updated_at, \
                 provisioner_tags) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, FALSE, $11, $11, $12)",
            )
            .bind(version.id.0)
            .bind(version.template_id.map(|t| t.0))
            .bind(version.organization_id.0)
            .bind(&version.name)
            .bind(&version.message)
            .bind(&version.readme)
            .bind(version.job_id.0)
            .bind(version.file_id.0)
            .bind(&version.manifest)
            .bind(version.created_by.0)
            .bind(DbTime(version.created_at))
            .bind(version.provisioner_tags.canonical())
            .execute(c)
            .await?;
        });
        tx.commit().await
    }

    pub async fn get_template_version(
        &self,
        id: TemplateVersionId,
    ) -> StoreResult<Option<TemplateVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE id = $1");
        let row: Option<VersionRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(TemplateVersion::try_from).transpose()
    }

    pub async fn get_template_version_by_job(
        &self,
        job: JobId,
    ) -> StoreResult<Option<TemplateVersion>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE job_id = $1");
        let row: Option<VersionRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(job.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(TemplateVersion::try_from).transpose()
    }

    pub async fn get_template_version_by_name(
        &self,
        template: TemplateId,
        name: &str,
    ) -> StoreResult<Option<TemplateVersion>> {
        if unstorable(name) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions \
             WHERE template_id = $1 AND lower(name) = lower($2)"
        );
        let row: Option<VersionRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(template.0)
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(TemplateVersion::try_from).transpose()
    }

    /// Oldest first.
    pub async fn list_template_versions(
        &self,
        template: TemplateId,
    ) -> StoreResult<Vec<TemplateVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions WHERE template_id = $1 \
             ORDER BY created_at, id"
        );
        let rows: Vec<VersionRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(template.0)
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }

    /// Stores what the import read from the version's files.
    pub async fn set_template_version_manifest(
        &self,
        id: TemplateVersionId,
        manifest: &str,
        readme: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE template_versions SET manifest = $2, readme = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(id.0)
            .bind(manifest)
            .bind(readme)
            .bind(DbTime(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

/// Templates.
impl Store {
    /// Stores the template and attaches its active version to it, in one transaction; false (and
    /// nothing written) when that version already belongs to a template.
    pub async fn insert_template(&self, template: Template) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        on!(tx.conn(), |c| {
            sqlx::query(
                "INSERT INTO templates (id, organization_id, name, display_name, description, \
                 icon, active_version_id, created_by, deleted, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $9)",
            )
            .bind(template.id.0)
            .bind(template.organization_id.0)
            .bind(&template.name)
            .bind(&template.display_name)
            .bind(&template.description)
            .bind(&template.icon)
            .bind(template.active_version_id.0)
            .bind(template.created_by.0)
            .bind(DbTime(template.created_at))
            .execute(c)
            .await?;
        });
        let attached = on!(tx.conn(), |c| {
            sqlx::query(
                "UPDATE template_versions SET template_id = $1, updated_at = $3 \
                 WHERE id = $2 AND template_id IS NULL",
            )
            .bind(template.id.0)
            .bind(template.active_version_id.0)
            .bind(DbTime(template.created_at))
            .execute(c)
            .await?
            .rows_affected()
        });
        if attached != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A template that is not deleted.
    pub async fn get_template(&self, id: TemplateId) -> StoreResult<Option<Template>> {
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1 AND NOT deleted");
        let row: Option<TemplateRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Template::try_from).transpose()
    }

    pub async fn get_template_by_name(
        &self,
        org: OrganizationId,
        name: &str,
    ) -> StoreResult<Option<Template>> {
        if unstorable(name) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates \
             WHERE organization_id = $1 AND lower(name) = lower($2) AND NOT deleted"
        );
        let row: Option<TemplateRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(org.0)
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        row.map(Template::try_from).transpose()
    }

    /// Live templates of one organization, or of all, by name.
    pub async fn list_templates(&self, org: Option<OrganizationId>) -> StoreResult<Vec<Template>> {
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates \
             WHERE NOT deleted AND ($1 IS NULL OR organization_id = $1) \
             ORDER BY lower(name), id"
        );
        let rows: Vec<TemplateRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(org.map(|o| o.0))
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }

    /// False when the template does not exist or was deleted.
    pub async fn set_template_active_version(
        &self,
        id: TemplateId,
        version: TemplateVersionId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let updated = on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE templates SET active_version_id = $2, updated_at = $3 \
                 WHERE id = $1 AND NOT deleted",
            )
            .bind(id.0)
            .bind(version.0)
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes the template unless live workspaces use it, in one transaction.
    pub async fn delete_template(
        &self,
        id: TemplateId,
        now: DateTime<Utc>,
    ) -> StoreResult<DeleteTemplateOutcome> {
        let mut tx = self.pool.begin().await?;
        // Writing the row first takes its lock, so a workspace created concurrently (whose
        // insert writes the same row) is either counted or refused.
        let found = on!(tx.conn(), |c| {
            sqlx::query("UPDATE templates SET updated_at = $2 WHERE id = $1 AND NOT deleted")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(c)
                .await?
                .rows_affected()
        });
        if found == 0 {
            tx.rollback().await?;
            return Ok(DeleteTemplateOutcome::NotFound);
        }
        let (count,): (i64,) = on!(tx.conn(), |c| {
            sqlx::query_as("SELECT COUNT(*) FROM workspaces WHERE template_id = $1 AND NOT deleted")
                .bind(id.0)
                .fetch_one(c)
                .await?
        });
        if count > 0 {
            tx.rollback().await?;
            return Ok(DeleteTemplateOutcome::HasWorkspaces(count));
        }
        on!(tx.conn(), |c| {
            sqlx::query("UPDATE templates SET deleted = TRUE, updated_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(DbTime(now))
                .execute(c)
                .await?;
        });
        tx.commit().await?;
        Ok(DeleteTemplateOutcome::Deleted)
    }
}

const ORG_COLUMNS: &str =
    "id, name, display_name, description, icon, is_default, created_at, updated_at";

const FILE_COLUMNS: &str = "id, hash, mimetype, data, created_by, created_at";

const TEMPLATE_COLUMNS: &str = "id, organization_id, name, display_name, description, icon, \
     active_version_id, created_by, created_at, updated_at";

const VERSION_COLUMNS: &str = "id, template_id, organization_id, name, message, readme, \
     job_id, file_id, manifest, created_by, archived, created_at, updated_at, provisioner_tags";

#[derive(FromRow)]
struct OrgRow {
    id: Uuid,
    name: String,
    display_name: String,
    description: String,
    icon: String,
    is_default: bool,
    created_at: DbTime,
    updated_at: DbTime,
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
struct FileRow {
    id: Uuid,
    hash: String,
    mimetype: String,
    data: Vec<u8>,
    created_by: Uuid,
    created_at: DbTime,
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
struct TemplateRow {
    id: Uuid,
    organization_id: Uuid,
    name: String,
    display_name: String,
    description: String,
    icon: String,
    active_version_id: Uuid,
    created_by: Uuid,
    created_at: DbTime,
    updated_at: DbTime,
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
struct VersionRow {
    id: Uuid,
    template_id: Option<Uuid>,
    organization_id: Uuid,
    name: String,
    message: String,
    readme: String,
    job_id: Uuid,
    file_id: Uuid,
    manifest: Option<String>,
    created_by: Uuid,
    archived: bool,
    created_at: DbTime,
    updated_at: DbTime,
    provisioner_tags: String,
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
            provisioner_tags: crate::domain::provisioner::ProvisionerTags::from_stored(
                &r.provisioner_tags,
            ),
        })
    }
}
