//! The job runner: takes provisioner jobs from the database queue and runs them.
//!
//! Every server runs one. It wakes when this server queues a job and polls as a fallback (jobs
//! queued on other replicas), claims jobs atomically (row locks on Postgres), heartbeats the
//! ones it runs (which is also how it sees a cancel requested on any replica), and fails jobs
//! whose worker vanished, so no build stays `running` after a crash.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::agent_api::new_agent_token;
use super::daemons::{DaemonLinks, ProvisionerSlot};
use super::reconcile::Reconciler;
use crate::clock::SharedClock;
use crate::domain::manifest::{MANIFEST_FILE, Manifest};
use crate::domain::{
    AGENT_NAME, AgentId, AgentLifecycle, AppId, JobStatus, JobType, LogLevel, NewJobLog,
    ProvisionerJob, TemplateVersion, Transition, Workspace, WorkspaceAgent, WorkspaceApp,
    WorkspaceBuild,
};
use crate::metrics::Metrics;
use crate::provisioner::{Provisioning, StartSpec, read_template_source};
use crate::store::{OrphanScope, SharedStore};

/// How often the queue is polled when no in-process wake-up came.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often a running job is heartbeated (and checked for a cancel request).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// How often jobs of vanished workers are looked for.
const REAP_INTERVAL: Duration = Duration::from_secs(5);
/// How often what this server's provisioner holds is reconciled with the database.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(60);
/// A job whose worker has not heartbeated for this long is abandoned.
const STALE_AFTER_SECS: i64 = 30;
/// Jobs one server runs at once.
const MAX_CONCURRENT_JOBS: usize = 8;
/// How long a start build waits for the workspace's agent to dial in.
const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a start build looks for the agent's progress (it may report to any replica).
const AGENT_POLL_INTERVAL: Duration = Duration::from_millis(100);

pub const RESTART_MESSAGE: &str =
    "The server restarted while this job was running, so it was stopped. Start the build again.";
const SHUTDOWN_MESSAGE: &str =
    "The server shut down while this job was running, so it was stopped. Start the build again.";

/// The jobs whose worker has not sent a heartbeat for `STALE_AFTER_SECS`.
fn stale_before(now: DateTime<Utc>) -> OrphanScope {
    OrphanScope::StaleBefore(now - chrono::Duration::seconds(STALE_AFTER_SECS))
}

/// Why a job failed, in words for its log and its `error` field.
struct JobFailure(String);

/// What a workspace build job builds.
struct BuildTarget {
    build: WorkspaceBuild,
    workspace: Workspace,
    version: TemplateVersion,
    manifest: Manifest,
    /// The owner's username, for logs and the workspace's environment.
    owner: String,
}

impl<E: std::fmt::Display> From<E> for JobFailure {
    fn from(e: E) -> Self {
        JobFailure(e.to_string())
    }
}

#[derive(Debug)]
pub struct JobRunner {
    store: SharedStore,
    clock: SharedClock,
    provisioning: Provisioning,
    /// Daemons connected to this replica; each takes the jobs its tags allow.
    daemons: Arc<DaemonLinks>,
    reconciler: Reconciler,
    worker_id: String,
    metrics: Option<Arc<Metrics>>,
}

impl JobRunner {
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        provisioning: Provisioning,
        daemons: Arc<DaemonLinks>,
    ) -> Self {
        let reconciler = Reconciler {
            store: store.clone(),
            clock: clock.clone(),
        };
        JobRunner {
            store,
            clock,
            provisioning,
            daemons,
            reconciler,
            worker_id: uuid::Uuid::new_v4().to_string(),
            metrics: None,
        }
    }

    /// Counts the builds it runs, with their durations, into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The provisioners jobs can go to: this server's own, then each connected daemon.
    fn slots(&self) -> Vec<ProvisionerSlot> {
        let mut slots = vec![ProvisionerSlot {
            id: self.provisioning.provisioner_id.clone(),
            tags: Default::default(),
            provisioner: self.provisioning.provisioner.clone(),
        }];
        slots.extend(self.daemons.slots());
        slots
    }

    /// Fails the jobs a previous run of the server left `running`. A SQLite database belongs to
    /// one server, so all of them; on Postgres only those whose worker stopped heartbeating.
    pub async fn recover(&self) {
        let now = self.clock.now();
        let scope = if self.store.backend() == "sqlite" {
            OrphanScope::All
        } else {
            stale_before(now)
        };
        self.fail_orphans(
            scope,
            now,
            "provisioner jobs left running by a previous server",
        )
        .await;
    }

    /// Runs until the future is dropped; jobs in progress are aborted with it.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = JoinSet::new();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let mut reap = tokio::time::interval(REAP_INTERVAL);
        // The first tick is at once: what a crash left is cleaned up at start.
        let mut reconcile = tokio::time::interval(RECONCILE_INTERVAL);
        let mut reconciling = JoinSet::new();
        loop {
            'claiming: for slot in self.slots() {
                let tag_sets = slot.tag_sets();
                while tasks.len() < MAX_CONCURRENT_JOBS {
                    match self
                        .store
                        .claim_job(&self.worker_id, &tag_sets, self.clock.now())
                        .await
                    {
                        Ok(Some(job)) => {
                            tasks.spawn(self.clone().process(job, slot.clone()));
                        }
                        Ok(None) => break,
                        Err(err) => {
                            // An outage is logged once by the store, not on every poll.
                            if !err.is_unavailable() {
                                tracing::warn!(error = %err, "could not read the provisioner job queue");
                            }
                            break 'claiming;
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.provisioning.signals.wait_for_job() => {}
                _ = poll.tick() => {}
                _ = reap.tick() => self.reap().await,
                // Off the loop: a daemon's inventory and deletes travel over its link.
                _ = reconcile.tick(), if reconciling.is_empty() => {
                    reconciling.spawn(self.clone().reconcile());
                }
                _ = self.daemons.wait_for_connection(), if reconciling.is_empty() => {
                    reconciling.spawn(self.clone().reconcile());
                }
                Some(_) = reconciling.join_next(), if !reconciling.is_empty() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }

    /// Reconciles every provisioner this server feeds with the database.
    async fn reconcile(self: Arc<Self>) {
        for slot in self.slots() {
            self.reconciler.run_once(&slot).await;
        }
    }

    /// Fails this worker's own jobs as the server stops (their processes end with it).
    pub async fn shutdown(&self) {
        let scope = OrphanScope::Worker(self.worker_id.clone());
        if let Err(err) = self
            .store
            .fail_orphaned_jobs(scope, self.clock.now(), SHUTDOWN_MESSAGE)
            .await
        {
            tracing::warn!(error = %err, "could not mark this server's jobs as stopped");
        }
    }

    async fn reap(&self) {
        let now = self.clock.now();
        self.fail_orphans(
            stale_before(now),
            now,
            "jobs whose server stopped responding",
        )
        .await;
    }

    /// Fails the running jobs in `scope`; `what` names them in the log.
    async fn fail_orphans(&self, scope: OrphanScope, now: DateTime<Utc>, what: &str) {
        match self
            .store
            .fail_orphaned_jobs(scope, now, RESTART_MESSAGE)
            .await
        {
            Ok(jobs) if jobs.is_empty() => {}
            Ok(jobs) => tracing::warn!(count = jobs.len(), "failed {what}"),
            Err(err) => tracing::warn!(error = %err, "could not fail {what}"),
        }
    }

    async fn process(self: Arc<Self>, job: ProvisionerJob, slot: ProvisionerSlot) {
        let started = std::time::Instant::now();
        let cancel = self.provisioning.signals.watch_cancel(job.id);
        tracing::info!(job = %job.id, kind = job.job_type.as_str(), "running provisioner job");
        let result = tokio::select! {
            r = self.execute(&job, &slot) => Some(r),
            _ = self.cancel_requested(&job, &cancel) => None,
        };
        self.provisioning.signals.unwatch_cancel(job.id);
        let now = self.clock.now();
        let (status, error) = match result {
            Some(Ok(())) => (JobStatus::Succeeded, String::new()),
            Some(Err(JobFailure(message))) => {
                self.log(&job, LogLevel::Error, "Failed", &message).await;
                (JobStatus::Failed, message)
            }
            None => {
                self.after_cancel(&job, &slot).await;
                self.log(&job, LogLevel::Warn, "Canceled", "The job was canceled.")
                    .await;
                (JobStatus::Canceled, "Canceled by a user.".to_owned())
            }
        };
        // Counted before the job is seen to end, so whoever waits for it finds it counted.
        if let Some(metrics) = &self.metrics
            && job.job_type == JobType::WorkspaceBuild
            && let Ok(Some(build)) = self.store.get_workspace_build_by_job(job.id).await
        {
            metrics.build_finished(
                build.transition.as_str(),
                status.as_str(),
                started.elapsed(),
            );
        }
        match self.store.complete_job(job.id, status, &error, now).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, "the job had already been finished elsewhere")
            }
            Err(err) => {
                tracing::warn!(job = %job.id, error = %err, "could not record the job's result")
            }
        }
    }

    /// Resolves when someone asks to cancel the job, here or on another replica; heartbeats
    /// meanwhile.
    async fn cancel_requested(&self, job: &ProvisionerJob, local: &Notify) {
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tokio::select! {
                _ = local.notified() => return,
                _ = tick.tick() => {
                    match self.store.heartbeat_job(job.id, self.clock.now()).await {
                        Ok(Some(JobStatus::Canceling)) => return,
                        Ok(_) => {}
                        Err(err) => tracing::warn!(job = %job.id, error = %err, "heartbeat failed"),
                    }
                }
            }
        }
    }

    async fn after_cancel(&self, job: &ProvisionerJob, slot: &ProvisionerSlot) {
        if job.job_type != JobType::WorkspaceBuild {
            return;
        }
        let Ok(Some(build)) = self.store.get_workspace_build_by_job(job.id).await else {
            return;
        };
        if build.transition == Transition::Start {
            if let Err(err) = slot.provisioner.stop(build.workspace_id).await {
                tracing::warn!(error = %err, "could not stop a canceled workspace's processes");
            }
            let _ = self
                .store
                .delete_workspace_agent_tokens(build.workspace_id)
                .await;
            let _ = self
                .store
                .stop_workspace_agents(build.workspace_id, self.clock.now())
                .await;
        }
    }

    async fn log(&self, job: &ProvisionerJob, level: LogLevel, stage: &str, output: &str) {
        let line = NewJobLog {
            created_at: self.clock.now(),
            source: "provisioner_daemon",
            level,
            stage: stage.to_owned(),
            output: output.to_owned(),
        };
        if let Err(err) = self.store.insert_job_logs(job.id, &[line]).await {
            tracing::warn!(job = %job.id, error = %err, "could not write a job log line");
        }
    }

    async fn execute(
        &self,
        job: &ProvisionerJob,
        slot: &ProvisionerSlot,
    ) -> Result<(), JobFailure> {
        match job.job_type {
            JobType::TemplateVersionImport => self.import(job).await,
            JobType::WorkspaceBuild => self.build(job, slot).await,
        }
    }

    async fn import(&self, job: &ProvisionerJob) -> Result<(), JobFailure> {
        const STAGE: &str = "Parsing template manifest";
        let version = self
            .store
            .get_template_version_by_job(job.id)
            .await?
            .ok_or_else(|| {
                JobFailure("The template version of this job no longer exists.".into())
            })?;
        let file = self.store.get_file(version.file_id).await?.ok_or_else(|| {
            JobFailure("The uploaded file of this version no longer exists.".into())
        })?;
        self.log(
            job,
            LogLevel::Info,
            STAGE,
            &format!(
                "Reading {MANIFEST_FILE} from the uploaded archive ({} bytes).",
                file.data.len()
            ),
        )
        .await;
        let data = file.data;
        let source = tokio::task::spawn_blocking(move || read_template_source(&data)).await??;
        let Some(text) = source.manifest else {
            return Err(JobFailure(format!(
                "The archive has no {MANIFEST_FILE} at its root. Add one (see docs/templates.md) and upload the archive again."
            )));
        };
        let manifest = tokio::task::spawn_blocking(move || Manifest::parse(&text)).await??;
        let names: Vec<&str> = manifest
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        self.log(
            job,
            LogLevel::Info,
            STAGE,
            &format!(
                "Found {} parameter(s){}, {} app(s), a startup script of {} line(s).",
                names.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                },
                manifest.apps.len(),
                manifest.agent.startup_script.lines().count()
            ),
        )
        .await;
        self.store
            .set_template_version_manifest(
                version.id,
                &manifest.to_json(),
                &source.readme,
                self.clock.now(),
            )
            .await?;
        self.log(job, LogLevel::Info, STAGE, "The template version is ready.")
            .await;
        Ok(())
    }

    /// A workspace build on `slot`'s provisioner: one function per transition.
    async fn build(&self, job: &ProvisionerJob, slot: &ProvisionerSlot) -> Result<(), JobFailure> {
        let target = self.build_target(job).await?;
        self.log(
            job,
            LogLevel::Info,
            "Setting up",
            &format!(
                "Build #{} of {}/{}: {} with template version {} on the {} provisioner.",
                target.build.build_number,
                target.owner,
                target.workspace.name,
                target.build.transition.as_str(),
                target.version.name,
                slot.provisioner.name()
            ),
        )
        .await;
        match target.build.transition {
            Transition::Stop => self.stop(job, slot, &target.workspace).await,
            Transition::Delete => self.delete(job, slot, &target.workspace).await,
            Transition::Start => self.start(job, slot, &target).await,
        }
    }

    /// What a build job builds: the build, its workspace and owner, and the imported version.
    async fn build_target(&self, job: &ProvisionerJob) -> Result<BuildTarget, JobFailure> {
        let build = self
            .store
            .get_workspace_build_by_job(job.id)
            .await?
            .ok_or_else(|| JobFailure("The build of this job no longer exists.".into()))?;
        let workspace = self
            .store
            .get_workspace(build.workspace_id)
            .await?
            .ok_or_else(|| JobFailure("The workspace no longer exists.".into()))?;
        let version = self
            .store
            .get_template_version(build.template_version_id)
            .await?
            .ok_or_else(|| JobFailure("The template version no longer exists.".into()))?;
        let manifest = version
            .manifest
            .as_deref()
            .map(Manifest::from_json)
            .transpose()?
            .ok_or_else(|| {
                JobFailure("The template version was never imported successfully.".into())
            })?;
        let owner = self
            .store
            .get_user_by_id(workspace.owner_id)
            .await?
            .map(|u| u.username)
            .unwrap_or_else(|| "unknown".into());
        Ok(BuildTarget {
            build,
            workspace,
            version,
            manifest,
            owner,
        })
    }

    /// A stop build: every process ends, the files stay.
    async fn stop(
        &self,
        job: &ProvisionerJob,
        slot: &ProvisionerSlot,
        workspace: &Workspace,
    ) -> Result<(), JobFailure> {
        // The token goes first: an agent that outlives the stop can no longer act.
        self.store
            .delete_workspace_agent_tokens(workspace.id)
            .await?;
        slot.provisioner.stop(workspace.id).await?;
        self.store
            .stop_workspace_agents(workspace.id, self.clock.now())
            .await?;
        self.log(
            job,
            LogLevel::Info,
            "Stopping workspace",
            "Every process of the workspace was stopped; its files are kept.",
        )
        .await;
        Ok(())
    }

    /// A delete build: the processes stop, the files go, the workspace is marked deleted.
    async fn delete(
        &self,
        job: &ProvisionerJob,
        slot: &ProvisionerSlot,
        workspace: &Workspace,
    ) -> Result<(), JobFailure> {
        self.store
            .delete_workspace_agent_tokens(workspace.id)
            .await?;
        slot.provisioner.delete(workspace.id).await?;
        self.store
            .stop_workspace_agents(workspace.id, self.clock.now())
            .await?;
        self.store
            .mark_workspace_deleted(workspace.id, self.clock.now())
            .await?;
        self.log(
            job,
            LogLevel::Info,
            "Deleting workspace",
            "The workspace's processes were stopped and its files removed.",
        )
        .await;
        Ok(())
    }

    /// A start build: a new agent with a new token, the provisioner starts it, and the build
    /// ends once the agent has connected and run its startup script.
    async fn start(
        &self,
        job: &ProvisionerJob,
        slot: &ProvisionerSlot,
        target: &BuildTarget,
    ) -> Result<(), JobFailure> {
        let provisioner = &slot.provisioner;
        if let Some(why) = provisioner.unavailable() {
            return Err(JobFailure(why));
        }
        let file = self
            .store
            .get_file(target.version.file_id)
            .await?
            .ok_or_else(|| JobFailure("The template's files no longer exist.".into()))?;
        let (agent_id, token) = self.replace_agent(target).await?;
        self.log(
            job,
            LogLevel::Info,
            "Starting workspace",
            "Preparing the home and starting the agent.",
        )
        .await;
        let started = provisioner
            .start(StartSpec {
                workspace_id: target.workspace.id,
                workspace_name: target.workspace.name.clone(),
                owner_name: target.owner.clone(),
                archive: Arc::new(file.data),
                agent_token: token,
                limits: self.provisioning.workspace_limits.clone(),
                kind: target.manifest.provisioner,
                docker: target.manifest.docker.clone(),
            })
            .await;
        let notes = match started {
            Ok(notes) => notes,
            Err(err) => {
                self.store
                    .update_agent_lifecycle(agent_id, AgentLifecycle::StartError, self.clock.now())
                    .await?;
                return Err(err.into());
            }
        };
        for note in notes {
            self.log(job, LogLevel::Info, "Starting workspace", &note)
                .await;
        }
        // Its files now live on this provisioner's host: its next builds go there.
        self.store
            .set_workspace_provisioner(target.workspace.id, &slot.id, self.clock.now())
            .await?;
        self.await_agent(job, slot, target, agent_id).await
    }

    /// Stores the build's agent and its apps in place of the previous agent, whose token dies
    /// with it; returns the new agent and its own token.
    async fn replace_agent(&self, target: &BuildTarget) -> Result<(AgentId, String), JobFailure> {
        let (workspace, manifest) = (&target.workspace, &target.manifest);
        let now = self.clock.now();
        let agent = WorkspaceAgent {
            id: AgentId::new(),
            workspace_id: workspace.id,
            build_id: target.build.id,
            name: AGENT_NAME.to_owned(),
            lifecycle: AgentLifecycle::Created,
            directory: manifest.agent.dir.clone(),
            logs_length: 0,
            logs_overflowed: false,
            started_at: None,
            ready_at: None,
            created_at: now,
            updated_at: now,
        };
        let apps = manifest
            .apps
            .iter()
            .map(|a| WorkspaceApp {
                id: AppId::new(),
                agent_id: agent.id,
                slug: a.slug.clone(),
                display_name: a.display_name.clone(),
                url: a.url.clone(),
                icon: a.icon.clone(),
                created_at: now,
            })
            .collect();
        let agent_id = agent.id;
        // The previous agent's token dies with it; the new agent gets its own.
        self.store
            .delete_workspace_agent_tokens(workspace.id)
            .await?;
        self.store.stop_workspace_agents(workspace.id, now).await?;
        self.store.insert_agent(agent, apps).await?;
        let (token, hash) = new_agent_token();
        self.store.insert_agent_token(agent_id, &hash, now).await?;
        Ok((agent_id, token))
    }

    /// Waits for the started agent to dial in, then for its startup script.
    async fn await_agent(
        &self,
        job: &ProvisionerJob,
        slot: &ProvisionerSlot,
        target: &BuildTarget,
        agent_id: AgentId,
    ) -> Result<(), JobFailure> {
        if !self.wait_for_connection(agent_id).await? {
            let _ = slot.provisioner.stop(target.workspace.id).await;
            self.store
                .update_agent_lifecycle(agent_id, AgentLifecycle::StartError, self.clock.now())
                .await?;
            return Err(JobFailure(format!(
                "The workspace's agent did not connect within {} s; its own log is in the workspace directory on the provisioner's host (agent.log). Start the workspace again; if it keeps failing, tell an owner.",
                AGENT_CONNECT_TIMEOUT.as_secs()
            )));
        }
        let stage = "Running startup script";
        self.log(
            job,
            LogLevel::Info,
            stage,
            "The agent connected. Waiting for the startup script (its output is in the agent logs).",
        )
        .await;
        let timeout = target.manifest.agent.startup_timeout_secs;
        let (level, message) = match self
            .wait_for_startup(agent_id, Duration::from_secs(timeout) + Duration::from_secs(10))
            .await?
        {
            Some(AgentLifecycle::Ready) => (
                LogLevel::Info,
                "The startup script finished; the agent is ready.".to_owned(),
            ),
            Some(AgentLifecycle::StartError) => (
                LogLevel::Warn,
                "The startup script failed; see the agent logs. The workspace runs but may not be fully set up.".to_owned(),
            ),
            Some(_) | None => (
                LogLevel::Warn,
                format!(
                    "The startup script is still running after {timeout} s (the template's startup_timeout); it keeps running."
                ),
            ),
        };
        self.log(job, level, stage, &message).await;
        Ok(())
    }

    /// Whether the agent dialed in within `AGENT_CONNECT_TIMEOUT`.
    async fn wait_for_connection(&self, agent: AgentId) -> Result<bool, JobFailure> {
        let deadline = tokio::time::Instant::now() + AGENT_CONNECT_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if self.store.get_agent_connection(agent).await?.is_some() {
                return Ok(true);
            }
            tokio::time::sleep(AGENT_POLL_INTERVAL).await;
        }
        Ok(false)
    }

    /// The lifecycle state the agent ended its startup in, or None when it did not within
    /// `limit` (the agent reports `start_timeout` itself; this is the backstop).
    async fn wait_for_startup(
        &self,
        agent: AgentId,
        limit: Duration,
    ) -> Result<Option<AgentLifecycle>, JobFailure> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let state = self.store.get_agent(agent).await?.map(|a| a.lifecycle);
            match state {
                Some(
                    s @ (AgentLifecycle::Ready
                    | AgentLifecycle::StartError
                    | AgentLifecycle::StartTimeout
                    | AgentLifecycle::Off),
                ) => return Ok(Some(s)),
                _ => tokio::time::sleep(AGENT_POLL_INTERVAL).await,
            }
        }
        Ok(None)
    }
}
