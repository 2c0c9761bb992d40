//! Lists of workspaces and of their summaries.

use coderd::domain::Page;
use coderd::domain::{
    JobStatus, Role, Transition, UserId, Workspace, WorkspaceStatus, WorkspaceSummary,
};
use coderd::store::WorkspaceFilter;

use super::{Deployment, at, new_user, template_of};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    workspace_lists_filter_by_every_field,
    workspace_lists_page_in_name_order_and_count_the_matches,
    list_generations_move_with_what_lists_show_and_only_then,
);

const ALL: Page = Page {
    limit: 100,
    offset: 0,
};

/// The names `filter` lists, checking that both list calls agree on them and on the count.
async fn listed(d: &Deployment, filter: &WorkspaceFilter, page: Page) -> (Vec<String>, i64) {
    let (workspaces, count) = d.store.list_workspaces(filter, page).await.unwrap();
    let (summaries, summary_count) = d
        .store
        .list_workspace_summaries(filter, page)
        .await
        .unwrap();
    assert_eq!(count, summary_count, "{filter:?}");
    assert_eq!(
        workspaces.iter().map(|w| w.id).collect::<Vec<_>>(),
        summaries.iter().map(|s| s.id).collect::<Vec<_>>(),
        "{filter:?}"
    );
    (workspaces.into_iter().map(|w| w.name).collect(), count)
}

/// Stores a workspace and moves its first build's job to `status`.
async fn workspace_in(d: &Deployment, owner: UserId, name: &str, status: JobStatus) -> Workspace {
    let (workspace, build) = d.create_workspace(owner, name).await;
    if status != JobStatus::Pending {
        d.finish(build.job_id, status).await;
    }
    workspace
}

async fn workspace_lists_filter_by_every_field(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let alice = d
        .store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap()
        .id;
    let (version, job) = d.version("py-1", at(1));
    d.store
        .insert_template_version(version.clone(), job.clone())
        .await
        .unwrap();
    d.finish(job.id, JobStatus::Succeeded).await;
    let python = template_of(&version, "Python");
    assert!(d.store.insert_template(python.clone()).await.unwrap());

    let running = workspace_in(&d, d.owner.id, "alpha", JobStatus::Succeeded).await;
    // A stopped workspace: its start, then a stop, both succeeded.
    let stopped = workspace_in(&d, alice, "gamma", JobStatus::Succeeded).await;
    let (stop, stop_job) = d.build(&stopped, Transition::Stop, 2, at(2));
    d.store
        .insert_workspace_build(stop, stop_job.clone())
        .await
        .unwrap();
    d.finish(stop_job.id, JobStatus::Succeeded).await;
    // Alice's workspace on the Python template failed.
    let (mut failed, build, job) = d.workspace(alice, "Alpha-py", at(3));
    failed.template_id = python.id;
    d.store
        .insert_workspace(failed, build, job.clone())
        .await
        .unwrap();
    d.finish(job.id, JobStatus::Failed).await;
    // Deleted workspaces are not listed.
    let gone = workspace_in(&d, alice, "gone", JobStatus::Succeeded).await;
    d.store
        .mark_workspace_deleted(gone.id, at(4))
        .await
        .unwrap();
    // Last, as `finish` takes the oldest pending job.
    workspace_in(&d, d.owner.id, "Beta-2", JobStatus::Pending).await;

    let cases: [(WorkspaceFilter, &[&str]); 11] = [
        (
            WorkspaceFilter::default(),
            &["alpha", "Alpha-py", "Beta-2", "gamma"],
        ),
        (
            WorkspaceFilter {
                owner_id: Some(alice),
                ..Default::default()
            },
            &["Alpha-py", "gamma"],
        ),
        (
            WorkspaceFilter {
                name: Some("LPH".into()),
                ..Default::default()
            },
            &["alpha", "Alpha-py"],
        ),
        (
            WorkspaceFilter {
                name: Some("a-2".into()),
                ..Default::default()
            },
            &["Beta-2"],
        ),
        (
            WorkspaceFilter {
                template_name: Some("PYTHON".into()),
                ..Default::default()
            },
            &["Alpha-py"],
        ),
        (
            WorkspaceFilter {
                template_name: Some("pyth".into()),
                ..Default::default()
            },
            &[],
        ),
        (
            WorkspaceFilter {
                template_id: Some(d.template.id),
                ..Default::default()
            },
            &["alpha", "Beta-2", "gamma"],
        ),
        (
            WorkspaceFilter {
                status: Some(WorkspaceStatus::Running),
                ..Default::default()
            },
            &["alpha"],
        ),
        (
            WorkspaceFilter {
                status: Some(WorkspaceStatus::Pending),
                ..Default::default()
            },
            &["Beta-2"],
        ),
        (
            WorkspaceFilter {
                status: Some(WorkspaceStatus::Stopped),
                ..Default::default()
            },
            &["gamma"],
        ),
        (
            WorkspaceFilter {
                owner_id: Some(alice),
                name: Some("a".into()),
                template_id: Some(python.id),
                status: Some(WorkspaceStatus::Failed),
                ..Default::default()
            },
            &["Alpha-py"],
        ),
    ];
    for (filter, expected) in cases {
        let (names, count) = listed(&d, &filter, ALL).await;
        assert_eq!(names, expected, "{filter:?}");
        assert_eq!(count, expected.len() as i64, "{filter:?}");
    }

    // A summary carries what a list view shows, read from the latest build.
    let filter = WorkspaceFilter {
        owner_id: Some(d.owner.id),
        status: Some(WorkspaceStatus::Running),
        ..Default::default()
    };
    let (summaries, _) = d
        .store
        .list_workspace_summaries(&filter, ALL)
        .await
        .unwrap();
    assert_eq!(
        summaries,
        vec![WorkspaceSummary {
            id: running.id,
            name: "alpha".into(),
            owner_name: "owner".into(),
            template_id: d.template.id,
            template_name: "docker".into(),
            template_display_name: "docker display".into(),
            template_icon: "/icon/docker.svg".into(),
            template_active_version_id: d.version.id,
            build_template_version_id: d.version.id,
            transition: Transition::Start,
            job_status: JobStatus::Succeeded,
        }]
    );
    // A new active version makes the workspace outdated.
    let (v2, job) = d.version("v2", at(5));
    d.store
        .insert_template_version(v2.clone(), job)
        .await
        .unwrap();
    assert!(
        d.store
            .set_template_active_version(d.template.id, v2.id, at(5))
            .await
            .unwrap()
    );
    let (summaries, _) = d
        .store
        .list_workspace_summaries(&filter, ALL)
        .await
        .unwrap();
    assert!(summaries[0].outdated());
    assert_eq!(summaries[0].status(), WorkspaceStatus::Running);
}

async fn workspace_lists_page_in_name_order_and_count_the_matches(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let empty = listed(&d, &WorkspaceFilter::default(), ALL).await;
    assert_eq!(empty, (vec![], 0));
    for name in ["b-two", "B", "a_c", "ab", "A-z"] {
        d.create_workspace(d.owner.id, name).await;
    }
    // Lower-cased, byte by byte on both backends: `-` sorts before `_` and letters.
    let order = ["A-z", "a_c", "ab", "B", "b-two"];
    let filter = WorkspaceFilter::default();
    let page = |limit, offset| Page { limit, offset };
    assert_eq!(
        listed(&d, &filter, ALL).await,
        (order.map(String::from).to_vec(), 5)
    );
    // A full page cannot tell the total, nor can an empty one past the end; a short page can.
    for (limit, offset, expected) in [
        (2, 0, &order[0..2]),
        (2, 2, &order[2..4]),
        (2, 4, &order[4..]),
        (5, 0, &order[..]),
        (2, 10, &[][..]),
    ] {
        let (names, count) = listed(&d, &filter, page(limit, offset)).await;
        assert_eq!(names, expected, "limit {limit} offset {offset}");
        assert_eq!(count, 5, "limit {limit} offset {offset}");
    }
}

/// Migration 0012's generations: every change a list of the owner's workspaces shows moves the
/// owner's (or, for templates, the templates') generation; writes of nothing listed move none.
async fn list_generations_move_with_what_lists_show_and_only_then(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let alice = d
        .store
        .create_user(new_user("alice", Role::Member))
        .await
        .unwrap()
        .id;
    let generations = |owner: UserId| {
        let store = d.store.clone();
        async move { store.workspace_list_generations(owner).await.unwrap() }
    };
    let start = generations(alice).await;
    assert_eq!(start.owner, 0, "a missing row reads as 0");
    assert!(
        start.templates > 0,
        "the deployment's template was inserted"
    );

    // Each step, and whether it must move alice's generation and the templates'.
    let mut last = start;
    let mut check = async |what: &str, owner_moves: bool, templates_move: bool| {
        let now = generations(alice).await;
        assert_eq!(
            now.owner > last.owner,
            owner_moves,
            "{what}: {last:?} -> {now:?}"
        );
        assert_eq!(
            now.templates > last.templates,
            templates_move,
            "{what}: {last:?} -> {now:?}"
        );
        assert!(
            now.owner >= last.owner && now.templates >= last.templates,
            "{what}"
        );
        last = now;
    };

    let (workspace, build) = d.create_workspace(alice, "dev").await;
    check("created", true, false).await;
    d.store
        .claim_job("worker-1", &super::any(), at(1))
        .await
        .unwrap();
    check("its job taken", true, false).await;
    d.store.heartbeat_job(build.job_id, at(2)).await.unwrap();
    d.store
        .set_workspace_provisioner(workspace.id, "worker-1", at(2))
        .await
        .unwrap();
    d.store.touch_user_last_seen(alice, at(2)).await.unwrap();
    check("heartbeat, provisioner, last seen", false, false).await;
    assert!(
        d.store
            .complete_job(build.job_id, JobStatus::Succeeded, "", at(3))
            .await
            .unwrap()
    );
    check("its job done", true, false).await;

    d.create_workspace(d.owner.id, "owners").await;
    check("another owner's workspace", false, false).await;

    let (version, job) = d.version("v2", at(4));
    d.store
        .insert_template_version(
            coderd::domain::TemplateVersion {
                template_id: Some(d.template.id),
                ..version.clone()
            },
            job,
        )
        .await
        .unwrap();
    check("a version imported", false, false).await;
    assert!(
        d.store
            .set_template_active_version(d.template.id, version.id, at(5))
            .await
            .unwrap()
    );
    check("the active version", false, true).await;

    d.store
        .mark_workspace_deleted(workspace.id, at(6))
        .await
        .unwrap();
    check("deleted", true, false).await;
}
