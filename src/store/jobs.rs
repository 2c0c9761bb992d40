//! Provisioner jobs (template imports and workspace builds) and their logs: the queue that
//! every replica's worker and every provisioner daemon takes work from.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::error::corrupt;
use super::pool::{Backend, Tx, on};
use super::time::DbTime;
use super::{Store, StoreError, StoreResult, convert_all};
use crate::domain::provisioner::ProvisionerTags;
use crate::domain::{
    FileId, JobId, JobLog, JobStatus, JobType, LogLevel, NewJobLog, OrganizationId, ProvisionerJob,
    UserId,
};

/// Which abandoned jobs to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanScope {
    /// Every running job: the database has a single server (SQLite) that just started.
    All,
    /// Jobs whose worker has not reported since this time (a crashed replica).
    StaleBefore(DateTime<Utc>),
    /// Jobs of one worker that is shutting down.
    Worker(String),
}

impl Store {
    /// Jobs waiting for a worker: the queue's depth.
    pub async fn count_pending_jobs(&self) -> StoreResult<i64> {
        let (count,): (i64,) = on!(&self.pool, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM provisioner_jobs WHERE status = 'pending'")
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }

    pub async fn get_job(&self, id: JobId) -> StoreResult<Option<ProvisionerJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM provisioner_jobs WHERE id = $1");
        let row: Option<JobRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(ProvisionerJob::try_from).transpose()
    }

    /// Takes the oldest pending job whose tags are one of `tag_sets` (canonical texts: the
    /// subsets of a provisioner's tags) for `worker`, atomically, so that no two workers get it.
    pub async fn claim_job(
        &self,
        worker: &str,
        tag_sets: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ProvisionerJob>> {
        if tag_sets.is_empty() {
            return Ok(None);
        }
        let placeholders: Vec<String> =
            (0..tag_sets.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "{} RETURNING {JOB_COLUMNS}",
            self.dialect()
                .claim_job
                .replace("{tags}", &placeholders.join(", "))
        );
        let row: Option<JobRow> = on!(&self.pool, |pool| {
            let mut query = sqlx::query_as(&sql).bind(worker).bind(DbTime(now));
            for tags in tag_sets {
                query = query.bind(tags);
            }
            query.fetch_optional(pool).await?
        });
        row.map(ProvisionerJob::try_from).transpose()
    }

    /// Records that the worker is still on the job; returns the job's status, so that a cancel
    /// request made on any replica is seen.
    pub async fn heartbeat_job(
        &self,
        id: JobId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<JobStatus>> {
        let row: Option<(String,)> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "UPDATE provisioner_jobs SET heartbeat_at = $2 WHERE id = $1 RETURNING status",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(s,)| JobStatus::parse(&s)))
    }

    /// Finishes a running or canceling job; false when it had already been finished (for example
    /// failed by recovery).
    pub async fn complete_job(
        &self,
        id: JobId,
        status: JobStatus,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let canceled_at = (status == JobStatus::Canceled).then_some(DbTime(now));
        let finished = on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE provisioner_jobs SET status = $2, error = $3, completed_at = $4, \
                 updated_at = $4, canceled_at = COALESCE(canceled_at, $5) \
                 WHERE id = $1 AND status IN ('running', 'canceling')",
            )
            .bind(id.0)
            .bind(status.as_str())
            .bind(error)
            .bind(DbTime(now))
            .bind(canceled_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(finished == 1)
    }

    /// Cancels a pending job at once, marks a running one `canceling`; returns the status after.
    pub async fn cancel_job(
        &self,
        id: JobId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<JobStatus>> {
        // One statement decides, so a job that starts meanwhile is still canceled.
        let row: Option<(String,)> = on!(&self.pool, |pool| {
            sqlx::query_as(
                "UPDATE provisioner_jobs SET \
                 status = CASE WHEN status = 'pending' THEN 'canceled' ELSE 'canceling' END, \
                 completed_at = CASE WHEN status = 'pending' THEN $2 ELSE completed_at END, \
                 error = CASE WHEN status = 'pending' THEN 'Canceled before it started.' ELSE error END, \
                 canceled_at = $2, updated_at = $2 \
                 WHERE id = $1 AND status IN ('pending', 'running') RETURNING status",
            )
            .bind(id.0)
            .bind(DbTime(now))
            .fetch_optional(pool)
            .await?
        });
        if let Some((status,)) = row {
            return Ok(JobStatus::parse(&status));
        }
        let row: Option<(String,)> = on!(&self.pool, |pool| {
            sqlx::query_as("SELECT status FROM provisioner_jobs WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(s,)| JobStatus::parse(&s)))
    }

    /// Fails a job that no provisioner has taken, with `error`; false when it had been taken or
    /// finished meanwhile.
    pub async fn fail_pending_job(
        &self,
        id: JobId,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(on!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE provisioner_jobs SET status = 'failed', error = $2, completed_at = $3, \
                 updated_at = $3 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id.0)
            .bind(error)
            .bind(DbTime(now))
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        }))
    }

    /// Fails the running jobs in `scope` (canceling ones become canceled), logs `message` on each,
    /// and marks their agents `start_error`. Returns the jobs it finished.
    pub async fn fail_orphaned_jobs(
        &self,
        scope: OrphanScope,
        now: DateTime<Utc>,
        message: &str,
    ) -> StoreResult<Vec<JobId>> {
        let (kind, stale, worker) = match &scope {
            OrphanScope::All => ("all", DbTime(now), ""),
            OrphanScope::StaleBefore(t) => ("stale", DbTime(*t), ""),
            OrphanScope::Worker(w) => ("worker", DbTime(now), w.as_str()),
        };
        const SCOPE: &str = "status IN ('running', 'canceling') AND ($1 = 'all' \
             OR ($1 = 'stale' AND (heartbeat_at IS NULL OR heartbeat_at < $2)) \
             OR ($1 = 'worker' AND worker_id = $3))";
        // The common case finds nothing: answer it without opening a transaction, so a
        // server stopped mid-check never leaves one open.
        let count_sql = format!("SELECT COUNT(*) FROM provisioner_jobs WHERE {SCOPE}");
        let (candidates,): (i64,) = on!(&self.pool, |pool| {
            sqlx::query_as(&count_sql)
                .bind(kind)
                .bind(stale)
                .bind(worker)
                .fetch_one(pool)
                .await?
        });
        if candidates == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let finished: Vec<(Uuid,)> = on!(tx.conn(), |c| {
            sqlx::query_as(
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
            .fetch_all(c)
            .await?
        });
        for (job,) in &finished {
            on!(tx.conn(), |c| {
                sqlx::query(
                    "INSERT INTO provisioner_job_logs (job_id, created_at, source, level, stage, output) \
                     VALUES ($1, $2, 'provisioner_daemon', 'error', 'Cleaning up', $3)",
                )
                .bind(job)
                .bind(DbTime(now))
                .bind(message)
                .execute(c)
                .await?;
            });
            on!(tx.conn(), |c| {
                sqlx::query(
                    "UPDATE workspace_agents SET lifecycle_state = 'start_error', updated_at = $2 \
                     WHERE lifecycle_state IN ('created', 'starting') \
                     AND build_id IN (SELECT id FROM workspace_builds WHERE job_id = $1)",
                )
                .bind(job)
                .bind(DbTime(now))
                .execute(c)
                .await?;
            });
        }
        tx.commit().await?;
        Ok(finished.into_iter().map(|(id,)| JobId(id)).collect())
    }

    /// Appends the lines, all or none.
    pub async fn insert_job_logs(&self, job: JobId, logs: &[NewJobLog]) -> StoreResult<()> {
        if let [log] = logs {
            return insert_job_log(self.pool.by_ref(), job, log).await;
        }
        let mut tx = self.pool.begin().await?;
        for log in logs {
            insert_job_log(tx.conn(), job, log).await?;
        }
        tx.commit().await
    }

    /// Lines with an id above `after`, oldest first.
    pub async fn list_job_logs(
        &self,
        job: JobId,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobLog>> {
        let sql = format!(
            "SELECT {JOB_LOG_COLUMNS} FROM provisioner_job_logs \
             WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows: Vec<JobLogRow> = on!(&self.pool, |pool| {
            sqlx::query_as(&sql)
                .bind(job.0)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        convert_all(rows)
    }
}

/// Stores a new job, in the transaction that stores what it works on (a template version, a
/// workspace build).
pub(super) async fn insert_job_row(tx: &mut Tx, job: &ProvisionerJob) -> StoreResult<()> {
    on!(tx.conn(), |c| {
        sqlx::query(
            "INSERT INTO provisioner_jobs (id, organization_id, job_type, status, file_id, \
             initiator_id, worker_id, error, created_at, updated_at, tags) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, '', $7, $7, $8)",
        )
        .bind(job.id.0)
        .bind(job.organization_id.0)
        .bind(job.job_type.as_str())
        .bind(job.status.as_str())
        .bind(job.file_id.0)
        .bind(job.initiator_id.0)
        .bind(DbTime(job.created_at))
        .bind(job.tags.canonical())
        .execute(c)
        .await?;
    });
    Ok(())
}

async fn insert_job_log<'s, 'p>(
    on: Backend<impl sqlx::SqliteExecutor<'s>, impl sqlx::PgExecutor<'p>>,
    job: JobId,
    log: &NewJobLog,
) -> StoreResult<()> {
    on!(on, |c| {
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
        .execute(c)
        .await?;
    });
    Ok(())
}

const JOB_COLUMNS: &str = "id, organization_id, job_type, status, file_id, initiator_id, \
     worker_id, error, created_at, updated_at, started_at, completed_at, canceled_at, tags";

const JOB_LOG_COLUMNS: &str = "id, job_id, created_at, source, level, stage, output";

#[derive(FromRow)]
struct JobRow {
    id: Uuid,
    organization_id: Uuid,
    job_type: String,
    status: String,
    file_id: Uuid,
    initiator_id: Uuid,
    worker_id: Option<String>,
    error: String,
    created_at: DbTime,
    updated_at: DbTime,
    started_at: Option<DbTime>,
    completed_at: Option<DbTime>,
    canceled_at: Option<DbTime>,
    tags: String,
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
            tags: ProvisionerTags::from_stored(&r.tags),
        })
    }
}

#[derive(FromRow)]
struct JobLogRow {
    id: i64,
    job_id: Uuid,
    created_at: DbTime,
    source: String,
    level: String,
    stage: String,
    output: String,
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
