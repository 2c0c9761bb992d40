//! Reconciling what each provisioner holds (the server's own, and every daemon connected to
//! it) with the database, after a crash or anything done behind Coder's back: a container or directory left from a workspace that no
//! longer exists is removed, and a running workspace whose processes are gone (a container
//! removed by hand, a host that rebooted) is recorded as failed, with a build that says why.

use super::daemons::ProvisionerSlot;
use crate::clock::SharedClock;
use crate::domain::provisioner::{PROVISIONER_ID_TAG, ProvisionerTags};
use crate::domain::{
    BuildId, JobStatus, JobType, LogLevel, NewJobLog, ProvisionerJob, Transition, Workspace,
    WorkspaceBuild,
};
use crate::provisioner::Held;
use crate::store::{InsertBuildOutcome, SharedStore};

/// Why a running workspace became a failed one.
pub const VANISHED_MESSAGE: &str = "The workspace's processes ended outside Coder (its container was removed, or its host restarted). Start the workspace again; its files are kept.";

#[derive(Debug)]
pub struct Reconciler {
    pub store: SharedStore,
    pub clock: SharedClock,
}

impl Reconciler {
    /// One pass over what `slot`'s provisioner holds; what it cannot read it leaves for the
    /// next.
    pub async fn run_once(&self, slot: &ProvisionerSlot) {
        let held = match slot.provisioner.inventory().await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(provisioner = %slot.id, error = %err, "could not list the workspaces a provisioner holds");
                return;
            }
        };
        for h in held {
            if let Err(err) = self.reconcile(slot, h).await {
                tracing::warn!(workspace = %h.workspace, error = %err, "could not reconcile a workspace");
            }
        }
    }

    async fn reconcile(
        &self,
        slot: &ProvisionerSlot,
        held: Held,
    ) -> Result<(), crate::domain::DomainError> {
        let workspace = self
            .store
            .get_workspace_including_deleted(held.workspace)
            .await?;
        let latest = self
            .store
            .get_latest_workspace_build(held.workspace)
            .await?;
        let job = match &latest {
            Some(b) => self.store.get_job(b.job_id).await?,
            None => None,
        };
        // A build in flight owns the workspace's state; judge it once it has ended.
        if job.as_ref().is_some_and(|j| j.status.is_active()) {
            return Ok(());
        }
        let Some(workspace) = workspace.filter(|w| !w.deleted) else {
            tracing::warn!(workspace = %held.workspace, "removing what is left of a deleted workspace");
            slot.provisioner
                .delete(held.workspace)
                .await
                .map_err(crate::domain::DomainError::internal)?;
            return Ok(());
        };
        let ran = latest
            .as_ref()
            .is_some_and(|b| b.transition == Transition::Start)
            && job
                .as_ref()
                .is_some_and(|j| j.status == JobStatus::Succeeded);
        let ours = self
            .store
            .get_workspace_provisioner(workspace.id)
            .await?
            .as_deref()
            == Some(slot.id.as_str());
        if held.running || !ran || !ours {
            return Ok(());
        }
        if let Some(build) = latest {
            tracing::warn!(workspace = %workspace.id, "a running workspace's processes are gone; recording it as failed");
            self.record_failure(&workspace, &build).await?;
        }
        Ok(())
    }

    /// A new build of the workspace, failed at once with `VANISHED_MESSAGE`. Its job carries a
    /// tag no provisioner has, so none takes it in the moment before it is failed.
    async fn record_failure(
        &self,
        workspace: &Workspace,
        previous: &WorkspaceBuild,
    ) -> Result<(), crate::domain::DomainError> {
        let Some(previous_job) = self.store.get_job(previous.job_id).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let job = ProvisionerJob::pending(
            workspace.organization_id,
            JobType::WorkspaceBuild,
            previous_job.file_id,
            previous.initiator_id,
            now,
        )
        .with_tags(ProvisionerTags(
            [(PROVISIONER_ID_TAG.to_owned(), "coder-reconciler".to_owned())].into(),
        ));
        let build = WorkspaceBuild {
            id: BuildId::new(),
            job_id: job.id,
            reason: "reconcile".to_owned(),
            created_at: now,
            updated_at: now,
            ..previous.clone()
        };
        let job_id = job.id;
        if !matches!(
            self.store.insert_workspace_build(build, job).await?,
            InsertBuildOutcome::Created(_)
        ) {
            return Ok(());
        }
        self.store
            .fail_pending_job(job_id, VANISHED_MESSAGE, now)
            .await?;
        self.store
            .insert_job_logs(
                job_id,
                &[NewJobLog {
                    created_at: now,
                    source: "provisioner_daemon",
                    level: LogLevel::Error,
                    stage: "Reconciling".to_owned(),
                    output: VANISHED_MESSAGE.to_owned(),
                }],
            )
            .await?;
        self.store
            .delete_workspace_agent_tokens(workspace.id)
            .await?;
        self.store.stop_workspace_agents(workspace.id, now).await?;
        Ok(())
    }
}
