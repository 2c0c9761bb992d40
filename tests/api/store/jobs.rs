//! Provisioner jobs and their logs.

use std::collections::BTreeSet;

use coderd::domain::{
    AgentId, AgentLifecycle, JobId, JobStatus, LogLevel, NewJobLog, ProvisionerJob, WorkspaceAgent,
};
use coderd::store::{OrphanScope, StoreError};

use super::{Deployment, any, at};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    jobs_are_claimed_oldest_first_and_only_once,
    a_running_job_sees_its_cancel_request_through_heartbeats,
    a_pending_job_is_canceled_at_once,
    only_a_taken_job_completes,
    orphaned_jobs_fail_by_scope_and_fail_their_agents,
    job_logs_are_appended_and_read_in_pages,
    a_job_goes_only_to_a_provisioner_whose_tags_cover_its_own,
);

/// Stores a pending import job created at `minute` and returns it.
async fn queue(d: &Deployment, minute: i64) -> ProvisionerJob {
    let (version, job) = d.version(&format!("v-{minute}"), at(minute));
    d.store
        .insert_template_version(version, job.clone())
        .await
        .unwrap();
    job
}

async fn jobs_are_claimed_oldest_first_and_only_once(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let newest = queue(&d, 3).await;
    let oldest = queue(&d, 1).await;
    let middle = queue(&d, 2).await;

    let claimed = d.store.claim_job("worker-a", &any(), at(10)).await.unwrap();
    let taken = ProvisionerJob {
        status: JobStatus::Running,
        worker_id: Some("worker-a".to_owned()),
        started_at: Some(at(10)),
        updated_at: at(10),
        ..oldest.clone()
    };
    assert_eq!(claimed, Some(taken.clone()));
    assert_eq!(d.store.get_job(oldest.id).await.unwrap(), Some(taken));
    assert_eq!(d.store.get_job(JobId::new()).await.unwrap(), None);

    // Workers racing for the two jobs left each get a different one, or none.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let store = d.store.clone();
        tasks.spawn(async move { store.claim_job(&format!("racer-{i}"), &any(), at(11)).await });
    }
    let mut won = BTreeSet::new();
    while let Some(result) = tasks.join_next().await {
        if let Some(job) = result.unwrap().unwrap() {
            assert!(won.insert(job.id), "{:?} taken twice", job.id);
        }
    }
    assert_eq!(won, BTreeSet::from([middle.id, newest.id]));
    assert_eq!(
        d.store.claim_job("late", &any(), at(12)).await.unwrap(),
        None
    );
}

async fn a_running_job_sees_its_cancel_request_through_heartbeats(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let job = queue(&d, 1).await;
    d.finish(job.id, JobStatus::Running).await;
    assert_eq!(
        d.store.heartbeat_job(job.id, at(2)).await.unwrap(),
        Some(JobStatus::Running)
    );
    assert_eq!(
        d.store.cancel_job(job.id, at(3)).await.unwrap(),
        Some(JobStatus::Canceling)
    );
    assert_eq!(
        d.store.heartbeat_job(job.id, at(4)).await.unwrap(),
        Some(JobStatus::Canceling)
    );
    assert!(
        d.store
            .complete_job(job.id, JobStatus::Canceled, "stopped by request", at(5))
            .await
            .unwrap()
    );
    let done = d.store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Canceled);
    assert_eq!(done.error, "stopped by request");
    assert_eq!(
        (done.canceled_at, done.completed_at, done.updated_at),
        (Some(at(3)), Some(at(5)), at(5)),
        "canceled when asked, completed when it stopped"
    );
    // Finished jobs stay finished; a cancel reports the status they ended in.
    assert!(
        !d.store
            .complete_job(job.id, JobStatus::Succeeded, "", at(6))
            .await
            .unwrap()
    );
    assert_eq!(
        d.store.cancel_job(job.id, at(6)).await.unwrap(),
        Some(JobStatus::Canceled)
    );
    assert_eq!(d.store.cancel_job(JobId::new(), at(6)).await.unwrap(), None);
    assert_eq!(
        d.store.heartbeat_job(JobId::new(), at(6)).await.unwrap(),
        None
    );
}

async fn a_pending_job_is_canceled_at_once(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let job = queue(&d, 1).await;
    assert_eq!(
        d.store.cancel_job(job.id, at(2)).await.unwrap(),
        Some(JobStatus::Canceled)
    );
    assert_eq!(
        d.store.get_job(job.id).await.unwrap(),
        Some(ProvisionerJob {
            status: JobStatus::Canceled,
            error: "Canceled before it started.".to_owned(),
            completed_at: Some(at(2)),
            canceled_at: Some(at(2)),
            updated_at: at(2),
            ..job
        })
    );
    assert_eq!(
        d.store.claim_job("worker", &any(), at(3)).await.unwrap(),
        None
    );
}

async fn only_a_taken_job_completes(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let job = queue(&d, 1).await;
    assert!(
        !d.store
            .complete_job(job.id, JobStatus::Succeeded, "", at(2))
            .await
            .unwrap(),
        "a pending job was never started"
    );
    d.finish(job.id, JobStatus::Running).await;
    assert!(
        d.store
            .complete_job(job.id, JobStatus::Failed, "terraform exploded", at(3))
            .await
            .unwrap()
    );
    let failed = d.store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.error.as_str()),
        (JobStatus::Failed, "terraform exploded")
    );
    assert_eq!(
        (failed.completed_at, failed.canceled_at),
        (Some(at(3)), None)
    );
}

async fn orphaned_jobs_fail_by_scope_and_fail_their_agents(backend: Backend) {
    let d = Deployment::new(&backend).await;
    // A stale worker's build, whose agent was still starting.
    let (workspace, build) = d.create_workspace(d.owner.id, "dev").await;
    let stale = d
        .store
        .claim_job("w1", &any(), at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.id, build.job_id);
    let agent = WorkspaceAgent {
        id: AgentId::new(),
        workspace_id: workspace.id,
        build_id: build.id,
        name: "main".to_owned(),
        lifecycle: AgentLifecycle::Created,
        directory: String::new(),
        logs_length: 0,
        logs_overflowed: false,
        started_at: None,
        ready_at: None,
        created_at: at(1),
        updated_at: at(1),
    };
    d.store
        .insert_agent(agent.clone(), Vec::new())
        .await
        .unwrap();
    // The same worker's job that was asked to cancel, another worker's live job, a pending one.
    let canceling = queue(&d, 2).await;
    d.store.claim_job("w1", &any(), at(2)).await.unwrap();
    d.store.cancel_job(canceling.id, at(2)).await.unwrap();
    let live = queue(&d, 3).await;
    d.store.claim_job("w2", &any(), at(3)).await.unwrap();
    d.store.heartbeat_job(live.id, at(5)).await.unwrap();
    let pending = queue(&d, 4).await;

    let finished = d
        .store
        .fail_orphaned_jobs(
            OrphanScope::StaleBefore(at(4)),
            at(6),
            "The worker was lost.",
        )
        .await
        .unwrap();
    assert_eq!(
        BTreeSet::from_iter(finished),
        BTreeSet::from([stale.id, canceling.id])
    );
    let job = d.store.get_job(stale.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.error.as_str(), job.completed_at),
        (JobStatus::Failed, "The worker was lost.", Some(at(6)))
    );
    assert_eq!(
        d.store.get_job(canceling.id).await.unwrap().unwrap().status,
        JobStatus::Canceled
    );
    let logs = d.store.list_job_logs(stale.id, 0, 10).await.unwrap();
    let [log] = logs.as_slice() else {
        panic!("one line, got {logs:?}")
    };
    assert_eq!(
        (
            log.source.as_str(),
            log.level,
            log.stage.as_str(),
            log.output.as_str()
        ),
        (
            "provisioner_daemon",
            LogLevel::Error,
            "Cleaning up",
            "The worker was lost."
        )
    );
    assert_eq!(
        d.store
            .get_agent(agent.id)
            .await
            .unwrap()
            .unwrap()
            .lifecycle,
        AgentLifecycle::StartError
    );

    assert_eq!(
        d.store
            .fail_orphaned_jobs(OrphanScope::Worker("w1".into()), at(7), "stopping")
            .await
            .unwrap(),
        Vec::<JobId>::new()
    );
    assert_eq!(
        d.store
            .fail_orphaned_jobs(OrphanScope::Worker("w2".into()), at(7), "stopping")
            .await
            .unwrap(),
        vec![live.id]
    );
    d.store.claim_job("w3", &any(), at(8)).await.unwrap();
    assert_eq!(
        d.store
            .fail_orphaned_jobs(OrphanScope::All, at(9), "restarted")
            .await
            .unwrap(),
        vec![pending.id]
    );
    assert_eq!(
        d.store
            .fail_orphaned_jobs(OrphanScope::All, at(9), "restarted")
            .await
            .unwrap(),
        Vec::<JobId>::new()
    );
}

async fn job_logs_are_appended_and_read_in_pages(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let job = queue(&d, 1).await;
    let other = queue(&d, 2).await;
    let line = |minute, level, output: &str| NewJobLog {
        created_at: at(minute),
        source: "provisioner",
        level,
        stage: "Planning".to_owned(),
        output: output.to_owned(),
    };
    d.store
        .insert_job_logs(job.id, &[line(1, LogLevel::Info, "one")])
        .await
        .unwrap();
    d.store
        .insert_job_logs(other.id, &[line(1, LogLevel::Info, "elsewhere")])
        .await
        .unwrap();
    d.store
        .insert_job_logs(
            job.id,
            &[
                line(2, LogLevel::Debug, "two"),
                line(2, LogLevel::Warn, "three ✓"),
                line(3, LogLevel::Error, ""),
            ],
        )
        .await
        .unwrap();
    d.store.insert_job_logs(job.id, &[]).await.unwrap();

    let all = d.store.list_job_logs(job.id, 0, 100).await.unwrap();
    let outputs: Vec<&str> = all.iter().map(|l| l.output.as_str()).collect();
    assert_eq!(outputs, ["one", "two", "three ✓", ""]);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        all.iter()
            .all(|l| l.job_id == job.id && l.source == "provisioner")
    );
    assert_eq!(
        (all[2].level, all[2].stage.as_str(), all[2].created_at),
        (LogLevel::Warn, "Planning", at(2))
    );
    // After a line's id, at most `limit` lines.
    assert_eq!(
        d.store.list_job_logs(job.id, all[0].id, 2).await.unwrap(),
        all[1..3]
    );
    assert!(
        d.store
            .list_job_logs(job.id, all[3].id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Lines for a job that does not exist are refused, not kept.
    let unknown = JobId::new();
    let err = d
        .store
        .insert_job_logs(
            unknown,
            &[line(4, LogLevel::Info, "a"), line(4, LogLevel::Info, "b")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(
        d.store
            .list_job_logs(unknown, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_job_goes_only_to_a_provisioner_whose_tags_cover_its_own(backend: Backend) {
    use coderd::domain::provisioner::ProvisionerTags;
    let d = Deployment::new(&backend).await;
    let tags = |pairs: &[(&str, &str)]| {
        ProvisionerTags(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    };
    let gpu = tags(&[("pool", "gpu")]);
    let (version, job) = d.version("tagged", at(1));
    let job = job.with_tags(gpu.placed_on("daemon-1"));
    d.store
        .insert_template_version(version, job.clone())
        .await
        .unwrap();
    assert_eq!(
        d.store.get_job(job.id).await.unwrap().map(|j| j.tags),
        Some(gpu.placed_on("daemon-1"))
    );
    // Not the untagged built-in provisioner, not another daemon of the same pool, not one of
    // another pool: only the daemon holding it.
    for other in [
        ProvisionerTags::default().placed_on("server"),
        gpu.placed_on("daemon-2"),
        tags(&[("pool", "cpu")]).placed_on("daemon-1"),
    ] {
        let claimed = d
            .store
            .claim_job("w", &other.subsets(), at(2))
            .await
            .unwrap();
        assert_eq!(claimed, None, "{other:?}");
    }
    assert_eq!(d.store.claim_job("w", &[], at(2)).await.unwrap(), None);
    let wider = tags(&[("pool", "gpu"), ("region", "eu")]).placed_on("daemon-1");
    let claimed = d
        .store
        .claim_job("w", &wider.subsets(), at(3))
        .await
        .unwrap();
    assert_eq!(claimed.map(|j| j.id), Some(job.id));
}
