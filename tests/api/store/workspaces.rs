//! Workspaces and their builds.

use coderd::domain::Page;
use coderd::domain::{
    BuildId, JobStatus, Role, Transition, Workspace, WorkspaceBuild, WorkspaceId,
};
use coderd::store::{Constraint, DeleteTemplateOutcome, InsertBuildOutcome};

use super::{Deployment, assert_conflict_on, at, new_user, t0};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    a_workspace_is_stored_with_its_first_build,
    a_workspace_on_a_deleted_template_is_refused,
    builds_are_numbered_and_one_runs_at_a_time,
    a_deleted_workspace_is_hidden_but_keeps_its_builds,
    a_workspace_remembers_the_provisioner_holding_its_files,
);

async fn a_workspace_is_stored_with_its_first_build(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, build, job) = d.workspace(d.owner.id, "Dev", at(1));
    assert!(
        d.store
            .insert_workspace(workspace.clone(), build.clone(), job.clone())
            .await
            .unwrap()
    );

    assert_eq!(
        d.store.get_workspace(workspace.id).await.unwrap(),
        Some(workspace.clone())
    );
    assert_eq!(
        d.store
            .get_workspace_including_deleted(workspace.id)
            .await
            .unwrap(),
        Some(workspace.clone())
    );
    assert_eq!(
        d.store.get_workspace(WorkspaceId::new()).await.unwrap(),
        None
    );
    assert_eq!(
        d.store
            .get_workspace_by_owner_and_name(d.owner.id, "dEV")
            .await
            .unwrap(),
        Some(workspace.clone())
    );
    let alice = d
        .store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap();
    for (owner, name) in [
        (alice.id, "Dev"),
        (d.owner.id, "De"),
        (d.owner.id, "Dev\u{0}"),
    ] {
        assert_eq!(
            d.store
                .get_workspace_by_owner_and_name(owner, name)
                .await
                .unwrap(),
            None,
            "{name}"
        );
    }

    assert_eq!(
        d.store.get_workspace_build(build.id).await.unwrap(),
        Some(build.clone())
    );
    assert_eq!(
        d.store.get_workspace_build(BuildId::new()).await.unwrap(),
        None
    );
    assert_eq!(
        d.store.get_workspace_build_by_job(job.id).await.unwrap(),
        Some(build.clone())
    );
    assert_eq!(
        d.store
            .get_latest_workspace_build(workspace.id)
            .await
            .unwrap(),
        Some(build)
    );
    assert_eq!(d.store.get_job(job.id).await.unwrap(), Some(job));

    // An owner's workspace names are unique in any case; another owner may reuse one.
    let (same, build, job) = d.workspace(d.owner.id, "DEV", at(2));
    let err = d
        .store
        .insert_workspace(same.clone(), build, job.clone())
        .await
        .unwrap_err();
    assert_conflict_on(err, Constraint::WorkspaceName);
    assert_eq!(d.store.get_job(job.id).await.unwrap(), None, "nothing kept");
    let (theirs, build, job) = d.workspace(alice.id, "dev", at(2));
    assert!(
        d.store
            .insert_workspace(theirs.clone(), build, job)
            .await
            .unwrap()
    );
}

async fn a_workspace_on_a_deleted_template_is_refused(backend: Backend) {
    let d = Deployment::new(&backend).await;
    assert_eq!(
        d.store.delete_template(d.template.id, at(1)).await.unwrap(),
        DeleteTemplateOutcome::Deleted
    );
    let (workspace, build, job) = d.workspace(d.owner.id, "dev", at(2));
    assert!(
        !d.store
            .insert_workspace(workspace.clone(), build, job.clone())
            .await
            .unwrap()
    );
    assert_eq!(d.store.get_workspace(workspace.id).await.unwrap(), None);
    assert_eq!(d.store.get_job(job.id).await.unwrap(), None);
}

async fn builds_are_numbered_and_one_runs_at_a_time(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, first) = d.create_workspace(d.owner.id, "dev").await;

    // The first build is still pending.
    let (stop, stop_job) = d.build(&workspace, Transition::Stop, 99, at(1));
    assert_eq!(
        d.store
            .insert_workspace_build(stop.clone(), stop_job.clone())
            .await
            .unwrap(),
        InsertBuildOutcome::Busy(first.id)
    );
    assert_eq!(d.store.get_job(stop_job.id).await.unwrap(), None);

    // Once it finished, the next build gets the next number, whatever it asked for.
    d.finish(first.job_id, JobStatus::Succeeded).await;
    assert_eq!(
        d.store
            .insert_workspace_build(stop.clone(), stop_job)
            .await
            .unwrap(),
        InsertBuildOutcome::Created(2)
    );
    let second = WorkspaceBuild {
        build_number: 2,
        ..stop
    };
    assert_eq!(
        d.store.get_workspace_build(second.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        d.store
            .get_latest_workspace_build(workspace.id)
            .await
            .unwrap(),
        Some(second.clone())
    );
    let page = |limit, offset| Page { limit, offset };
    assert_eq!(
        d.store
            .list_workspace_builds(workspace.id, page(10, 0))
            .await
            .unwrap(),
        vec![second.clone(), first.clone()],
        "newest first"
    );
    assert_eq!(
        d.store
            .list_workspace_builds(workspace.id, page(1, 1))
            .await
            .unwrap(),
        vec![first]
    );
    assert!(
        d.store
            .list_workspace_builds(WorkspaceId::new(), page(10, 0))
            .await
            .unwrap()
            .is_empty()
    );

    // Of concurrent requests for the next build, one is stored and the others see it.
    d.finish(second.job_id, JobStatus::Failed).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let store = d.store.clone();
        let (build, job) = d.build(&workspace, Transition::Start, 0, at(2));
        tasks.spawn(async move {
            let outcome = store.insert_workspace_build(build.clone(), job).await;
            (outcome.unwrap(), build.id)
        });
    }
    let mut created = Vec::new();
    let mut busy = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            (InsertBuildOutcome::Created(number), id) => created.push((number, id)),
            (InsertBuildOutcome::Busy(active), _) => busy.push(active),
            (other, _) => panic!("{other:?}"),
        }
    }
    let [(3, winner)] = created.as_slice() else {
        panic!("one build 3, got {created:?}")
    };
    assert_eq!(busy, vec![*winner; 5]);

    let (orphan, job) = d.build(&workspace, Transition::Start, 1, at(3));
    let orphan = WorkspaceBuild {
        workspace_id: WorkspaceId::new(),
        ..orphan
    };
    assert_eq!(
        d.store.insert_workspace_build(orphan, job).await.unwrap(),
        InsertBuildOutcome::WorkspaceMissing
    );
}

async fn a_deleted_workspace_is_hidden_but_keeps_its_builds(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, first) = d.create_workspace(d.owner.id, "dev").await;
    d.finish(first.job_id, JobStatus::Succeeded).await;
    d.store
        .mark_workspace_deleted(workspace.id, at(5))
        .await
        .unwrap();

    assert_eq!(d.store.get_workspace(workspace.id).await.unwrap(), None);
    assert_eq!(
        d.store
            .get_workspace_by_owner_and_name(d.owner.id, "dev")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.store
            .get_workspace_including_deleted(workspace.id)
            .await
            .unwrap(),
        Some(Workspace {
            deleted: true,
            updated_at: at(5),
            ..workspace.clone()
        })
    );
    assert_eq!(
        d.store
            .get_latest_workspace_build(workspace.id)
            .await
            .unwrap(),
        Some(first)
    );
    let (build, job) = d.build(&workspace, Transition::Start, 2, at(6));
    assert_eq!(
        d.store.insert_workspace_build(build, job).await.unwrap(),
        InsertBuildOutcome::WorkspaceMissing
    );
    // The name can be used again.
    let (again, build, job) = d.workspace(d.owner.id, "dev", t0());
    assert!(d.store.insert_workspace(again, build, job).await.unwrap());
}

async fn a_workspace_remembers_the_provisioner_holding_its_files(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, _) = d.create_workspace(d.owner.id, "placed").await;
    let (other, _) = d.create_workspace(d.owner.id, "elsewhere").await;
    assert_eq!(
        d.store
            .get_workspace_provisioner(workspace.id)
            .await
            .unwrap(),
        None
    );
    d.store
        .set_workspace_provisioner(workspace.id, "daemon-1", at(5))
        .await
        .unwrap();
    assert_eq!(
        d.store
            .get_workspace_provisioner(workspace.id)
            .await
            .unwrap()
            .as_deref(),
        Some("daemon-1")
    );
    assert_eq!(
        d.store.get_workspace_provisioner(other.id).await.unwrap(),
        None
    );
    assert_eq!(
        d.store
            .get_workspace(workspace.id)
            .await
            .unwrap()
            .unwrap()
            .updated_at,
        at(5)
    );
    assert_eq!(
        d.store
            .get_workspace_provisioner(coderd::domain::WorkspaceId::new())
            .await
            .unwrap(),
        None
    );
}
