//! The workspace SQL both backends share, written once (see `queries.rs` for why this is a
//! macro). What differs is passed in by each backend: the statement that claims a job, the
//! aggregates a page of workspace summaries is read through, and the list order's collation.

/// The joins of every workspace list; `list_from` adds the filter's conditions. The latest
/// build's transition, version and job status are the workspace's own copies (migration 0005),
/// so a list reads no builds or jobs. A workspace whose first build is not in yet is not
/// listed.
const LIST_JOINS: &str = "FROM workspaces w \
     JOIN users o ON o.id = w.owner_id \
     JOIN templates t ON t.id = w.template_id \
     WHERE NOT w.deleted AND w.latest_job_id IS NOT NULL";

/// A workspace's status, derived from its latest build exactly as `WorkspaceStatus::derive`
/// does, so filtering by status happens in the database.
const STATUS_SQL: &str = "(CASE \
       WHEN w.latest_job_status = 'running' AND w.latest_transition = 'start' THEN 'starting' \
       WHEN w.latest_job_status = 'running' AND w.latest_transition = 'stop' THEN 'stopping' \
       WHEN w.latest_job_status = 'running' THEN 'deleting' \
       WHEN w.latest_job_status = 'succeeded' AND w.latest_transition = 'start' THEN 'running' \
       WHEN w.latest_job_status = 'succeeded' AND w.latest_transition = 'stop' THEN 'stopped' \
       WHEN w.latest_job_status = 'succeeded' THEN 'deleted' \
       ELSE w.latest_job_status END)";

/// The `FROM ... WHERE` of a workspace list and how many placeholders it uses. Only the
/// filter's present fields get a condition, numbered from $1 in `bind_list_filter`'s order
/// (owner, name, template name, template id, status): the catch-all form
/// `($1 IS NULL OR w.owner_id = $1)` kept SQLite from using the owner index, so listing one
/// user's workspaces read every workspace.
pub(crate) fn list_from(filter: &super::WorkspaceFilter) -> (String, usize) {
    let conditions = [
        filter.owner_id.is_some().then_some("w.owner_id = {}"),
        filter
            .name
            .is_some()
            .then_some("lower(w.name) LIKE '%' || lower({}) || '%'"),
        filter
            .template_name
            .is_some()
            .then_some("lower(t.name) = lower({})"),
        filter.template_id.is_some().then_some("w.template_id = {}"),
        filter.status.is_some().then_some("{status} = {}"),
    ];
    let mut sql = String::from(LIST_JOINS);
    let mut placeholders = 0;
    for condition in conditions.into_iter().flatten() {
        placeholders += 1;
        sql.push_str(" AND ");
        sql.push_str(
            &condition
                .replace("{status}", STATUS_SQL)
                .replace("{}", &format!("${placeholders}")),
        );
    }
    (sql, placeholders)
}

/// Sorts summaries read through an aggregate into list order (`$list_order` of
/// `impl_workspace_store!`): the name lower-cased byte by byte, then the id. Sorting here
/// instead of in the aggregate saved SQLite a second sort (docs/benchmarks.md).
pub(crate) fn sort_in_list_order(rows: &mut [crate::domain::WorkspaceSummary]) {
    fn lowered(name: &str) -> impl Iterator<Item = u8> + '_ {
        name.bytes().map(|c| c.to_ascii_lowercase())
    }
    rows.sort_by(|a, b| {
        lowered(&a.name)
            .cmp(lowered(&b.name))
            .then_with(|| a.id.0.cmp(&b.id.0))
    });
}

/// The number of matches a page tells by itself: one that is not full ends the list, unless it
/// is empty past the first page (an offset beyond the end says nothing about the size).
pub(crate) fn total_from_page(page: super::Page, found: usize) -> Option<i64> {
    let found = found as i64;
    (found < page.limit && (found > 0 || page.offset == 0)).then_some(page.offset + found)
}

/// Implements `WorkspaceStore` for `$store`, whose `pool` field is a `sqlx::Pool` of that
/// backend; `$claim_sql` takes the oldest pending job (binds: worker id, now);
/// `$summary_page` aggregates the rows of `SUMMARY_COLUMNS` (selected from `listed`) into the
/// two columns `summaries_from_page` reads: the text fields as JSON, the ids as packed bytes,
/// both in the same order (one aggregation feeds each row to both; an `ORDER BY` or `DISTINCT`
/// inside either aggregate would sort its input apart and break the pairing); `$list_order` orders
/// every list as `sort_in_list_order` does: by the name lower-cased byte by byte, then the id.
macro_rules! impl_workspace_store {
    ($store:ty, $claim_sql:expr, $summary_page:expr, $list_order:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::WorkspaceStore for $store {
            async fn ensure_default_organization(
                &self,
                org: $crate::domain::Organization,
            ) -> $crate::store::StoreResult<$crate::domain::Organization> {
                use $crate::store::time::DbTime;
                use $crate::store::workspace_rows::{OrgRow, ORG_COLUMNS};
                // The partial unique index on is_default makes a concurrent second insert a no-op.
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
                .execute(&self.pool)
                .await?;
                let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE is_default");
                let row = sqlx::query_as::<_, OrgRow>(&sql).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn get_organization(
                &self,
                id: $crate::domain::OrganizationId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Organization>> {
                use $crate::store::workspace_rows::{OrgRow, ORG_COLUMNS};
                let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1");
                sqlx::query_as::<_, OrgRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Organization::try_from)
                    .transpose()
            }

            async fn get_organization_by_name(
                &self,
                name: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Organization>> {
                use $crate::store::workspace_rows::{OrgRow, ORG_COLUMNS};
                if $crate::store::queries::unstorable(name) {
                    return Ok(None);
                }
                let sql =
                    format!("SELECT {ORG_COLUMNS} FROM organizations WHERE lower(name) = lower($1)");
                sqlx::query_as::<_, OrgRow>(&sql)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Organization::try_from)
                    .transpose()
            }

            async fn insert_file(
                &self,
                file: $crate::domain::StoredFile,
            ) -> $crate::store::StoreResult<($crate::domain::StoredFile, bool)> {
                use $crate::store::time::DbTime;
                use $crate::store::workspace_rows::{FileRow, FILE_COLUMNS};
                let inserted = sqlx::query(
                    "INSERT INTO files (id, hash, mimetype, data, created_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (hash, created_by) DO NOTHING",
                )
                .bind(file.id.0)
                .bind(&file.hash)
                .bind(&file.mimetype)
                .bind(&file.data)
                .bind(file.created_by.0)
                .bind(DbTime(file.created_at))
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    return Ok((file, true));
                }
                let sql =
                    format!("SELECT {FILE_COLUMNS} FROM files WHERE hash = $1 AND created_by = $2");
                let row = sqlx::query_as::<_, FileRow>(&sql)
                    .bind(&file.hash)
                    .bind(file.created_by.0)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_into()?, false))
            }

            async fn get_file(
                &self,
                id: $crate::domain::FileId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::StoredFile>> {
                use $crate::store::workspace_rows::{FileRow, FILE_COLUMNS};
                let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
                sqlx::query_as::<_, FileRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::StoredFile::try_from)
                    .transpose()
            }

            async fn get_job(
                &self,
                id: $crate::domain::JobId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::ProvisionerJob>> {
                use $crate::store::workspace_rows::{JobRow, JOB_COLUMNS};
                let sql = format!("SELECT {JOB_COLUMNS} FROM provisioner_jobs WHERE id = $1");
                sqlx::query_as::<_, JobRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::ProvisionerJob::try_from)
                    .transpose()
            }

            async fn claim_job(
                &self,
                worker: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::domain::ProvisionerJob>> {
                use $crate::store::workspace_rows::{JobRow, JOB_COLUMNS};
                let sql = format!("{} RETURNING {JOB_COLUMNS}", $claim_sql);
                sqlx::query_as::<_, JobRow>(&sql)
                    .bind(worker)
                    .bind($crate::store::time::DbTime(now))
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::ProvisionerJob::try_from)
                    .transpose()
            }

            async fn heartbeat_job(
                &self,
                id: $crate::domain::JobId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::domain::JobStatus>> {
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE provisioner_jobs SET heartbeat_at = $2 WHERE id = $1 RETURNING status",
                )
                .bind(id.0)
                .bind($crate::store::time::DbTime(now))
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(s,)| $crate::domain::JobStatus::parse(&s)))
            }

            async fn complete_job(
                &self,
                id: $crate::domain::JobId,
                status: $crate::domain::JobStatus,
                error: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let canceled_at =
                    (status == $crate::domain::JobStatus::Canceled).then_some(DbTime(now));
                let done = sqlx::query(
                    "UPDATE provisioner_jobs SET status = $2, error = $3, completed_at = $4, \
                     updated_at = $4, canceled_at = COALESCE(canceled_at, $5) \
                     WHERE id = $1 AND status IN ('running', 'canceling')",
                )
                .bind(id.0)
                .bind(status.as_str())
                .bind(error)
                .bind(DbTime(now))
                .bind(canceled_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_job(
                &self,
                id: $crate::domain::JobId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::domain::JobStatus>> {
                use $crate::store::time::DbTime;
                // One statement decides, so a job that starts meanwhile is still canceled.
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE provisioner_jobs SET \
                     status = CASE WHEN status = 'pending' THEN 'canceled' ELSE 'canceling' END, \
                     completed_at = CASE WHEN status = 'pending' THEN $2 ELSE completed_at END, \
                     error = CASE WHEN status = 'pending' THEN 'Canceled before it started.' ELSE error END, \
                     canceled_at = $2, updated_at = $2 \
                     WHERE id = $1 AND status IN ('pending', 'running') RETURNING status",
                )
                .bind(id.0)
                .bind(DbTime(now))
                .fetch_optional(&self.pool)
                .await?;
                if let Some((status,)) = row {
                    return Ok($crate::domain::JobStatus::parse(&status));
                }
                let row: Option<(String,)> =
                    sqlx::query_as("SELECT status FROM provisioner_jobs WHERE id = $1")
                        .bind(id.0)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.and_then(|(s,)| $crate::domain::JobStatus::parse(&s)))
            }

            async fn fail_orphaned_jobs(
                &self,
                scope: $crate::store::OrphanScope,
                now: chrono::DateTime<chrono::Utc>,
                message: &str,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::JobId>> {
                use $crate::store::time::DbTime;
                use $crate::store::OrphanScope;
                let (kind, stale, worker) = match &scope {
                    OrphanScope::All => ("all", DbTime(now), String::new()),
                    OrphanScope::StaleBefore(t) => ("stale", DbTime(*t), String::new()),
                    OrphanScope::Worker(w) => ("worker", DbTime(now), w.clone()),
                };
                const SCOPE: &str = "status IN ('running', 'canceling') AND ($1 = 'all' \
                     OR ($1 = 'stale' AND (heartbeat_at IS NULL OR heartbeat_at < $2)) \
                     OR ($1 = 'worker' AND worker_id = $3))";
                // The common case finds nothing: answer it without opening a transaction, so a
                // server stopped mid-check never leaves one open.
                let (candidates,): (i64,) =
                    sqlx::query_as(&format!("SELECT COUNT(*) FROM provisioner_jobs WHERE {SCOPE}"))
                        .bind(kind)
                        .bind(stale)
                        .bind(&worker)
                        .fetch_one(&self.pool)
                        .await?;
                if candidates == 0 {
                    return Ok(Vec::new());
                }
                let mut tx = self.pool.begin().await?;
                let finished: Vec<(uuid::Uuid,)> = sqlx::query_as(
                    "UPDATE provisioner_jobs SET \
                     status = CASE WHEN status = 'canceling' THEN 'canceled' ELSE 'failed' END, \
                     error = $1, completed_at = $2, updated_at = $2 \
                     WHERE status IN ('running', 'canceling') AND ($3 = 'all' \
                     OR ($3 = 'stale' AND (heartbeat_at IS NULL OR heartbeat_at < $4)) \
                     OR ($3 = 'worker' AND worker_id = $5)) RETURNING id",
                )
                .bind(message)
                .bind(DbTime(now))
                .bind(kind)
                .bind(stale)
                .bind(worker)
                .fetch_all(&mut *tx)
                .await?;
                for (job,) in &finished {
                    sqlx::query(
                        "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
                         VALUES ($1, $2, 'provisioner_daemon', 'error', 'Cleaning up', $3)",
                    )
                    .bind(job)
                    .bind(DbTime(now))
                    .bind(message)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE workspace_agents SET lifecycle_state = 'start_error', updated_at = $2 \
                         WHERE lifecycle_state IN ('created', 'starting') \
                         AND build_id IN (SELECT id FROM workspace_builds WHERE job_id = $1)",
                    )
                    .bind(job)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(finished.into_iter().map(|(id,)| $crate::domain::JobId(id)).collect())
            }

            async fn insert_job_logs(
                &self,
                job: $crate::domain::JobId,
                logs: &[$crate::domain::NewJobLog],
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                if let [log] = logs {
                    sqlx::query(
                        "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(job.0)
                    .bind(DbTime(log.created_at))
                    .bind(log.source)
                    .bind(log.level.as_str())
                    .bind(&log.stage)
                    .bind(&log.output)
                    .execute(&self.pool)
                    .await?;
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for log in logs {
                    sqlx::query(
                        "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(job.0)
                    .bind(DbTime(log.created_at))
                    .bind(log.source)
                    .bind(log.level.as_str())
                    .bind(&log.stage)
                    .bind(&log.output)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_job_logs(
                &self,
                job: $crate::domain::JobId,
                after: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::JobLog>> {
                use $crate::store::workspace_rows::{JobLogRow, JOB_LOG_COLUMNS};
                let sql = format!(
                    "SELECT {JOB_LOG_COLUMNS} FROM provisioner_job_logs \
                     WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query_as::<_, JobLogRow>(&sql)
                    .bind(job.0)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn insert_template_version(
                &self,
                version: $crate::domain::TemplateVersion,
                job: $crate::domain::ProvisionerJob,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                insert_job_row(&mut *tx, &job).await?;
                sqlx::query(
                    "INSERT INTO template_versions (id, template_id, organization_id, name, message, \
                     readme, job_id, file_id, manifest, created_by, archived, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, FALSE, $11, $11)",
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
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_template_version(
                &self,
                id: $crate::domain::TemplateVersionId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::TemplateVersion>> {
                use $crate::store::workspace_rows::{VersionRow, VERSION_COLUMNS};
                let sql = format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE id = $1");
                sqlx::query_as::<_, VersionRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::TemplateVersion::try_from)
                    .transpose()
            }

            async fn get_template_version_by_job(
                &self,
                job: $crate::domain::JobId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::TemplateVersion>> {
                use $crate::store::workspace_rows::{VersionRow, VERSION_COLUMNS};
                let sql =
                    format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE job_id = $1");
                sqlx::query_as::<_, VersionRow>(&sql)
                    .bind(job.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::TemplateVersion::try_from)
                    .transpose()
            }

            async fn get_template_version_by_name(
                &self,
                template: $crate::domain::TemplateId,
                name: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::TemplateVersion>> {
                use $crate::store::workspace_rows::{VersionRow, VERSION_COLUMNS};
                if $crate::store::queries::unstorable(name) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM template_versions \
                     WHERE template_id = $1 AND lower(name) = lower($2)"
                );
                sqlx::query_as::<_, VersionRow>(&sql)
                    .bind(template.0)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::TemplateVersion::try_from)
                    .transpose()
            }

            async fn list_template_versions(
                &self,
                template: $crate::domain::TemplateId,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::TemplateVersion>> {
                use $crate::store::workspace_rows::{VersionRow, VERSION_COLUMNS};
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM template_versions WHERE template_id = $1 \
                     ORDER BY created_at, id"
                );
                let rows = sqlx::query_as::<_, VersionRow>(&sql)
                    .bind(template.0)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn set_template_version_manifest(
                &self,
                id: $crate::domain::TemplateVersionId,
                manifest: &str,
                readme: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE template_versions SET manifest = $2, readme = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id.0)
                .bind(manifest)
                .bind(readme)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_template(
                &self,
                template: $crate::domain::Template,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
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
                .execute(&mut *tx)
                .await?;
                let attached = sqlx::query(
                    "UPDATE template_versions SET template_id = $1, updated_at = $3 \
                     WHERE id = $2 AND template_id IS NULL",
                )
                .bind(template.id.0)
                .bind(template.active_version_id.0)
                .bind(DbTime(template.created_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if attached != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn get_template(
                &self,
                id: $crate::domain::TemplateId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Template>> {
                use $crate::store::workspace_rows::{TemplateRow, TEMPLATE_COLUMNS};
                let sql = format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1 AND NOT deleted"
                );
                sqlx::query_as::<_, TemplateRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Template::try_from)
                    .transpose()
            }

            async fn get_template_by_name(
                &self,
                org: $crate::domain::OrganizationId,
                name: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Template>> {
                use $crate::store::workspace_rows::{TemplateRow, TEMPLATE_COLUMNS};
                if $crate::store::queries::unstorable(name) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM templates \
                     WHERE organization_id = $1 AND lower(name) = lower($2) AND NOT deleted"
                );
                sqlx::query_as::<_, TemplateRow>(&sql)
                    .bind(org.0)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Template::try_from)
                    .transpose()
            }

            async fn list_templates(
                &self,
                org: Option<$crate::domain::OrganizationId>,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Template>> {
                use $crate::store::workspace_rows::{TemplateRow, TEMPLATE_COLUMNS};
                let sql = format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM templates \
                     WHERE NOT deleted AND ($1 IS NULL OR organization_id = $1) \
                     ORDER BY lower(name), id"
                );
                let rows = sqlx::query_as::<_, TemplateRow>(&sql)
                    .bind(org.map(|o| o.0))
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn set_template_active_version(
                &self,
                id: $crate::domain::TemplateId,
                version: $crate::domain::TemplateVersionId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE templates SET active_version_id = $2, updated_at = $3 \
                     WHERE id = $1 AND NOT deleted",
                )
                .bind(id.0)
                .bind(version.0)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_template(
                &self,
                id: $crate::domain::TemplateId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::DeleteTemplateOutcome> {
                use $crate::store::time::DbTime;
                use $crate::store::DeleteTemplateOutcome;
                let mut tx = self.pool.begin().await?;
                // Writing the row first takes its lock, so a workspace created concurrently (whose
                // insert writes the same row) is either counted or refused.
                let found = sqlx::query(
                    "UPDATE templates SET updated_at = $2 WHERE id = $1 AND NOT deleted",
                )
                .bind(id.0)
                .bind(DbTime(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    tx.rollback().await?;
                    return Ok(DeleteTemplateOutcome::NotFound);
                }
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM workspaces WHERE template_id = $1 AND NOT deleted",
                )
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
                if count > 0 {
                    tx.rollback().await?;
                    return Ok(DeleteTemplateOutcome::HasWorkspaces(count));
                }
                sqlx::query("UPDATE templates SET deleted = TRUE, updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(DbTime(now))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(DeleteTemplateOutcome::Deleted)
            }

            async fn insert_workspace(
                &self,
                workspace: $crate::domain::Workspace,
                build: $crate::domain::WorkspaceBuild,
                job: $crate::domain::ProvisionerJob,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                // Locks the template row: see delete_template.
                let template = sqlx::query(
                    "UPDATE templates SET updated_at = updated_at WHERE id = $1 AND NOT deleted",
                )
                .bind(workspace.template_id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if template == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO workspaces (id, owner_id, organization_id, template_id, name, \
                     deleted, last_used_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6, $6)",
                )
                .bind(workspace.id.0)
                .bind(workspace.owner_id.0)
                .bind(workspace.organization_id.0)
                .bind(workspace.template_id.0)
                .bind(&workspace.name)
                .bind(DbTime(workspace.created_at))
                .execute(&mut *tx)
                .await?;
                insert_job_row(&mut *tx, &job).await?;
                insert_build_row(&mut *tx, &build, 1).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn get_workspace(
                &self,
                id: $crate::domain::WorkspaceId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Workspace>> {
                use $crate::store::workspace_rows::{WorkspaceRow, WORKSPACE_COLUMNS};
                let sql = format!(
                    "SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1 AND NOT deleted"
                );
                sqlx::query_as::<_, WorkspaceRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Workspace::try_from)
                    .transpose()
            }

            async fn get_workspace_including_deleted(
                &self,
                id: $crate::domain::WorkspaceId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Workspace>> {
                use $crate::store::workspace_rows::{WorkspaceRow, WORKSPACE_COLUMNS};
                let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE id = $1");
                sqlx::query_as::<_, WorkspaceRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Workspace::try_from)
                    .transpose()
            }

            async fn get_workspace_by_owner_and_name(
                &self,
                owner: $crate::domain::UserId,
                name: &str,
            ) -> $crate::store::StoreResult<Option<$crate::domain::Workspace>> {
                use $crate::store::workspace_rows::{WorkspaceRow, WORKSPACE_COLUMNS};
                if $crate::store::queries::unstorable(name) {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {WORKSPACE_COLUMNS} FROM workspaces \
                     WHERE owner_id = $1 AND lower(name) = lower($2) AND NOT deleted"
                );
                sqlx::query_as::<_, WorkspaceRow>(&sql)
                    .bind(owner.0)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::Workspace::try_from)
                    .transpose()
            }

            async fn list_workspaces(
                &self,
                filter: &$crate::store::WorkspaceFilter,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<(Vec<$crate::domain::Workspace>, i64)> {
                use $crate::store::workspace_rows::{WorkspaceRow, WORKSPACE_COLUMNS};
                let columns: String = WORKSPACE_COLUMNS
                    .split(", ")
                    .map(|c| format!("w.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = list_page_sql(&columns, filter);
                let rows = bind_list_filter(sqlx::query_as::<_, WorkspaceRow>(&sql), filter)
                    .bind(page.limit)
                    .bind(page.offset)
                    .fetch_all(&self.pool)
                    .await?;
                let count = count_workspaces(&self.pool, filter, page, rows.len()).await?;
                Ok(($crate::store::rows::convert_all(rows)?, count))
            }

            async fn list_workspace_summaries(
                &self,
                filter: &$crate::store::WorkspaceFilter,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<(Vec<$crate::domain::WorkspaceSummary>, i64)> {
                // One row for the page instead of a row per workspace: decoding rows column by
                // column (on SQLite, also handing each from sqlx's worker thread to this task)
                // cost more than the query (docs/benchmarks.md).
                use $crate::store::workspace_rows::{summaries_from_page, SUMMARY_COLUMNS};
                let sql = format!(
                    "SELECT {} FROM ({}) listed",
                    $summary_page,
                    list_page_sql(SUMMARY_COLUMNS, filter)
                );
                let (texts, ids): (String, Vec<u8>) =
                    bind_list_filter(sqlx::query_as(&sql), filter)
                        .bind(page.limit)
                        .bind(page.offset)
                        .fetch_one(&self.pool)
                        .await?;
                let mut rows = summaries_from_page(&texts, &ids)?;
                // An aggregate's input order is not guaranteed (and sorting there cost SQLite
                // a second sort): the page is put in list order here.
                $crate::store::workspace_queries::sort_in_list_order(&mut rows);
                let count = count_workspaces(&self.pool, filter, page, rows.len()).await?;
                Ok((rows, count))
            }

            async fn mark_workspace_deleted(
                &self,
                id: $crate::domain::WorkspaceId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE workspaces SET deleted = TRUE, updated_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind($crate::store::time::DbTime(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_workspace_build(
                &self,
                build: $crate::domain::WorkspaceBuild,
                job: $crate::domain::ProvisionerJob,
            ) -> $crate::store::StoreResult<$crate::store::InsertBuildOutcome> {
                use $crate::store::time::DbTime;
                use $crate::store::InsertBuildOutcome;
                let mut tx = self.pool.begin().await?;
                // Writing first takes the workspace row's lock (Postgres) or the database's write
                // lock (SQLite), so concurrent requests for one workspace queue up here.
                let found = sqlx::query(
                    "UPDATE workspaces SET updated_at = $2 WHERE id = $1 AND NOT deleted",
                )
                .bind(build.workspace_id.0)
                .bind(DbTime(build.created_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    tx.rollback().await?;
                    return Ok(InsertBuildOutcome::WorkspaceMissing);
                }
                let latest: Option<(uuid::Uuid, i64, String)> = sqlx::query_as(
                    "SELECT b.id, b.build_number, j.status FROM workspace_builds b \
                     JOIN provisioner_jobs j ON j.id = b.job_id \
                     WHERE b.workspace_id = $1 ORDER BY b.build_number DESC LIMIT 1",
                )
                .bind(build.workspace_id.0)
                .fetch_optional(&mut *tx)
                .await?;
                let mut number = 1;
                if let Some((id, n, status)) = latest {
                    if $crate::domain::JobStatus::parse(&status).is_some_and(|s| s.is_active()) {
                        tx.rollback().await?;
                        return Ok(InsertBuildOutcome::Busy($crate::domain::BuildId(id)));
                    }
                    number = n + 1;
                }
                insert_job_row(&mut *tx, &job).await?;
                insert_build_row(&mut *tx, &build, number).await?;
                tx.commit().await?;
                Ok(InsertBuildOutcome::Created(number))
            }

            async fn get_workspace_build(
                &self,
                id: $crate::domain::BuildId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceBuild>> {
                use $crate::store::workspace_rows::{BuildRow, BUILD_COLUMNS};
                let sql = format!("SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE id = $1");
                sqlx::query_as::<_, BuildRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceBuild::try_from)
                    .transpose()
            }

            async fn get_workspace_build_by_job(
                &self,
                job: $crate::domain::JobId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceBuild>> {
                use $crate::store::workspace_rows::{BuildRow, BUILD_COLUMNS};
                let sql =
                    format!("SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE job_id = $1");
                sqlx::query_as::<_, BuildRow>(&sql)
                    .bind(job.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceBuild::try_from)
                    .transpose()
            }

            async fn get_latest_workspace_build(
                &self,
                workspace: $crate::domain::WorkspaceId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceBuild>> {
                use $crate::store::workspace_rows::{BuildRow, BUILD_COLUMNS};
                let sql = format!(
                    "SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE workspace_id = $1 \
                     ORDER BY build_number DESC LIMIT 1"
                );
                sqlx::query_as::<_, BuildRow>(&sql)
                    .bind(workspace.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceBuild::try_from)
                    .transpose()
            }

            async fn list_workspace_builds(
                &self,
                workspace: $crate::domain::WorkspaceId,
                page: $crate::store::Page,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::WorkspaceBuild>> {
                use $crate::store::workspace_rows::{BuildRow, BUILD_COLUMNS};
                let sql = format!(
                    "SELECT {BUILD_COLUMNS} FROM workspace_builds WHERE workspace_id = $1 \
                     ORDER BY build_number DESC LIMIT $2 OFFSET $3"
                );
                let rows = sqlx::query_as::<_, BuildRow>(&sql)
                    .bind(workspace.0)
                    .bind(page.limit)
                    .bind(page.offset)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn insert_agent(
                &self,
                agent: $crate::domain::WorkspaceAgent,
                apps: Vec<$crate::domain::WorkspaceApp>,
            ) -> $crate::store::StoreResult<()> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO workspace_agents (id, workspace_id, build_id, name, lifecycle_state, \
                     directory, logs_length, logs_overflowed, started_at, ready_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, FALSE, NULL, NULL, $7, $7)",
                )
                .bind(agent.id.0)
                .bind(agent.workspace_id.0)
                .bind(agent.build_id.0)
                .bind(&agent.name)
                .bind(agent.lifecycle.as_str())
                .bind(&agent.directory)
                .bind(DbTime(agent.created_at))
                .execute(&mut *tx)
                .await?;
                for (position, app) in apps.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO workspace_apps (id, agent_id, slug, display_name, url, icon, \
                         position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                    )
                    .bind(app.id.0)
                    .bind(agent.id.0)
                    .bind(&app.slug)
                    .bind(&app.display_name)
                    .bind(&app.url)
                    .bind(&app.icon)
                    .bind(position as i64)
                    .bind(DbTime(app.created_at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_agent(
                &self,
                id: $crate::domain::AgentId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceAgent>> {
                use $crate::store::workspace_rows::{AgentRow, AGENT_COLUMNS};
                let sql = format!("SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE id = $1");
                sqlx::query_as::<_, AgentRow>(&sql)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceAgent::try_from)
                    .transpose()
            }

            async fn get_agent_by_build(
                &self,
                build: $crate::domain::BuildId,
            ) -> $crate::store::StoreResult<Option<$crate::domain::WorkspaceAgent>> {
                use $crate::store::workspace_rows::{AgentRow, AGENT_COLUMNS};
                let sql = format!(
                    "SELECT {AGENT_COLUMNS} FROM workspace_agents WHERE build_id = $1 \
                     ORDER BY created_at LIMIT 1"
                );
                sqlx::query_as::<_, AgentRow>(&sql)
                    .bind(build.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map($crate::domain::WorkspaceAgent::try_from)
                    .transpose()
            }

            async fn update_agent_lifecycle(
                &self,
                id: $crate::domain::AgentId,
                state: $crate::domain::AgentLifecycle,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                use $crate::domain::AgentLifecycle;
                use $crate::store::time::DbTime;
                let started = (state == AgentLifecycle::Starting).then_some(DbTime(now));
                let ended = matches!(
                    state,
                    AgentLifecycle::Ready | AgentLifecycle::StartError | AgentLifecycle::StartTimeout
                )
                .then_some(DbTime(now));
                sqlx::query(
                    "UPDATE workspace_agents SET lifecycle_state = $2, updated_at = $3, \
                     started_at = COALESCE($4, started_at), ready_at = COALESCE($5, ready_at) \
                     WHERE id = $1",
                )
                .bind(id.0)
                .bind(state.as_str())
                .bind(DbTime(now))
                .bind(started)
                .bind(ended)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn stop_workspace_agents(
                &self,
                workspace: $crate::domain::WorkspaceId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE workspace_agents SET lifecycle_state = 'off', updated_at = $2 \
                     WHERE workspace_id = $1 AND lifecycle_state <> 'off'",
                )
                .bind(workspace.0)
                .bind($crate::store::time::DbTime(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_agent_logs(
                &self,
                agent: $crate::domain::AgentId,
                lines: &[(chrono::DateTime<chrono::Utc>, $crate::domain::LogLevel, String)],
                max_bytes: i64,
            ) -> $crate::store::StoreResult<bool> {
                use $crate::store::time::DbTime;
                let mut tx = self.pool.begin().await?;
                // Writing first takes the agent row's lock (Postgres) or the database's write
                // lock (SQLite, where the busy timeout applies): a read first let concurrent
                // appends lose each other's length on Postgres, and on SQLite fail with
                // "database is locked" when the read snapshot could not become a writer.
                let state: Option<(i64, bool)> = sqlx::query_as(
                    "UPDATE workspace_agents SET logs_length = logs_length WHERE id = $1 \
                     RETURNING logs_length, logs_overflowed",
                )
                .bind(agent.0)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((mut length, overflowed)) = state else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                if overflowed {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let mut now_overflowed = false;
                for (at, level, output) in lines {
                    let size = output.len() as i64;
                    if length + size > max_bytes {
                        sqlx::query(
                            "INSERT INTO workspace_agent_logs (agent_id, created_at, level, output) \
                             VALUES ($1, $2, 'warn', $3)",
                        )
                        .bind(agent.0)
                        .bind(DbTime(*at))
                        .bind(format!(
                            "The agent log reached its limit of {} KiB; later output is not kept.",
                            max_bytes / 1024
                        ))
                        .execute(&mut *tx)
                        .await?;
                        now_overflowed = true;
                        break;
                    }
                    sqlx::query(
                        "INSERT INTO workspace_agent_logs (agent_id, created_at, level, output) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(agent.0)
                    .bind(DbTime(*at))
                    .bind(level.as_str())
                    .bind(output)
                    .execute(&mut *tx)
                    .await?;
                    length += size;
                }
                sqlx::query(
                    "UPDATE workspace_agents SET logs_length = $2, logs_overflowed = $3 WHERE id = $1",
                )
                .bind(agent.0)
                .bind(length)
                .bind(now_overflowed)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(!now_overflowed)
            }

            async fn list_agent_logs(
                &self,
                agent: $crate::domain::AgentId,
                after: i64,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::AgentLog>> {
                use $crate::store::workspace_rows::{AgentLogRow, AGENT_LOG_COLUMNS};
                let sql = format!(
                    "SELECT {AGENT_LOG_COLUMNS} FROM workspace_agent_logs \
                     WHERE agent_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query_as::<_, AgentLogRow>(&sql)
                    .bind(agent.0)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }

            async fn list_agent_apps(
                &self,
                agent: $crate::domain::AgentId,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::WorkspaceApp>> {
                use $crate::store::workspace_rows::{AppRow, APP_COLUMNS};
                let sql = format!(
                    "SELECT {APP_COLUMNS} FROM workspace_apps WHERE agent_id = $1 ORDER BY position"
                );
                let rows = sqlx::query_as::<_, AppRow>(&sql)
                    .bind(agent.0)
                    .fetch_all(&self.pool)
                    .await?;
                $crate::store::rows::convert_all(rows)
            }
        }

        /// One page of a workspace list: `columns` of the workspaces `filter` matches, in list
        /// order. Binds: the filter (`bind_list_filter`), then limit and offset.
        fn list_page_sql(columns: &str, filter: &$crate::store::WorkspaceFilter) -> String {
            let (from, n) = $crate::store::workspace_queries::list_from(filter);
            format!(
                "SELECT {columns} {from} ORDER BY {} LIMIT ${} OFFSET ${}",
                $list_order,
                n + 1,
                n + 2
            )
        }

        /// How many workspaces match `filter`, given that the page read at `page` held `found`.
        async fn count_workspaces(
            pool: &sqlx::Pool<<$store as $crate::store::Backend>::Db>,
            filter: &$crate::store::WorkspaceFilter,
            page: $crate::store::Page,
            found: usize,
        ) -> $crate::store::StoreResult<i64> {
            if let Some(total) = $crate::store::workspace_queries::total_from_page(page, found) {
                return Ok(total);
            }
            let (from, _) = $crate::store::workspace_queries::list_from(filter);
            let count_sql = format!("SELECT COUNT(*) {from}");
            let (count,): (i64,) = bind_list_filter(sqlx::query_as(&count_sql), filter)
                .fetch_one(pool)
                .await?;
            Ok(count)
        }

        /// Binds the present fields of a workspace list's filter to `list_from`'s placeholders.
        fn bind_list_filter<'q, O>(
            query: sqlx::query::QueryAs<
                'q,
                <$store as $crate::store::Backend>::Db,
                O,
                <<$store as $crate::store::Backend>::Db as sqlx::Database>::Arguments<'q>,
            >,
            filter: &'q $crate::store::WorkspaceFilter,
        ) -> sqlx::query::QueryAs<
            'q,
            <$store as $crate::store::Backend>::Db,
            O,
            <<$store as $crate::store::Backend>::Db as sqlx::Database>::Arguments<'q>,
        > {
            let mut query = query;
            if let Some(owner) = filter.owner_id {
                query = query.bind(owner.0);
            }
            if let Some(name) = filter.name.as_deref() {
                query = query.bind(name);
            }
            if let Some(template_name) = filter.template_name.as_deref() {
                query = query.bind(template_name);
            }
            if let Some(template) = filter.template_id {
                query = query.bind(template.0);
            }
            if let Some(status) = filter.status {
                query = query.bind(status.as_str());
            }
            query
        }

        async fn insert_job_row<'e, E>(
            executor: E,
            job: &$crate::domain::ProvisionerJob,
        ) -> $crate::store::StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::Backend>::Db>,
        {
            use $crate::store::time::DbTime;
            sqlx::query(
                "INSERT INTO provisioner_jobs (id, organization_id, job_type, status, file_id, \
                 initiator_id, worker_id, error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, '', $7, $7)",
            )
            .bind(job.id.0)
            .bind(job.organization_id.0)
            .bind(job.job_type.as_str())
            .bind(job.status.as_str())
            .bind(job.file_id.0)
            .bind(job.initiator_id.0)
            .bind(DbTime(job.created_at))
            .execute(executor)
            .await?;
            Ok(())
        }

        async fn insert_build_row<'e, E>(
            executor: E,
            build: &$crate::domain::WorkspaceBuild,
            number: i64,
        ) -> $crate::store::StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = <$store as $crate::store::Backend>::Db>,
        {
            use $crate::store::time::DbTime;
            sqlx::query(
                "INSERT INTO workspace_builds (id, workspace_id, build_number, transition, \
                 template_version_id, job_id, initiator_id, reason, parameters, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            )
            .bind(build.id.0)
            .bind(build.workspace_id.0)
            .bind(number)
            .bind(build.transition.as_str())
            .bind(build.template_version_id.0)
            .bind(build.job_id.0)
            .bind(build.initiator_id.0)
            .bind(&build.reason)
            .bind($crate::store::workspace_rows::parameters_json(&build.parameters))
            .bind(DbTime(build.created_at))
            .execute(executor)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_workspace_store;

#[cfg(test)]
mod tests {
    use super::{list_from, total_from_page};
    use crate::domain::{UserId, WorkspaceStatus};
    use crate::store::{Page, WorkspaceFilter};

    #[test]
    fn only_present_filters_become_conditions_numbered_from_one() {
        let (sql, n) = list_from(&WorkspaceFilter::default());
        assert_eq!(n, 0);
        assert!(sql.ends_with("w.latest_job_id IS NOT NULL"), "{sql}");

        let filter = WorkspaceFilter {
            owner_id: Some(UserId::new()),
            status: Some(WorkspaceStatus::Running),
            ..WorkspaceFilter::default()
        };
        let (sql, n) = list_from(&filter);
        assert_eq!(n, 2);
        assert!(sql.contains("AND w.owner_id = $1 AND (CASE"), "{sql}");
        assert!(sql.ends_with("END) = $2"), "{sql}");
        assert!(!sql.contains("IS NULL"), "{sql}");
    }

    fn page(limit: i64, offset: i64) -> Page {
        Page { limit, offset }
    }

    #[test]
    fn a_page_that_is_not_full_ends_the_list() {
        assert_eq!(total_from_page(page(100, 0), 0), Some(0));
        assert_eq!(total_from_page(page(100, 0), 3), Some(3));
        assert_eq!(total_from_page(page(2, 4), 1), Some(5));
    }

    #[test]
    fn a_full_page_or_an_empty_one_past_the_start_needs_a_count() {
        assert_eq!(total_from_page(page(2, 0), 2), None);
        assert_eq!(total_from_page(page(2, 4), 0), None);
        assert_eq!(total_from_page(page(0, 0), 0), None);
    }
}
