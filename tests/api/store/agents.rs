//! Workspace agents, their logs and their apps.

use chrono::{DateTime, Utc};
use coderd::domain::{
    AgentId, AgentLifecycle, AppId, BuildId, LogLevel, Replica, ReplicaId, WorkspaceAgent,
    WorkspaceApp, WorkspaceBuild,
};

use super::{Deployment, at};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(
    an_agent_is_stored_with_its_apps_in_order,
    an_agent_records_when_it_started_and_when_it_was_ready,
    agent_logs_stop_at_their_limit_with_one_notice,
    an_agent_is_found_by_its_token_until_the_workspace_revokes_it,
    a_connection_belongs_to_the_replica_that_holds_it_last,
    replicas_heartbeat_and_stopping_one_ends_its_connections,
);

fn agent(build: &WorkspaceBuild, name: &str, created_at: DateTime<Utc>) -> WorkspaceAgent {
    WorkspaceAgent {
        id: AgentId::new(),
        workspace_id: build.workspace_id,
        build_id: build.id,
        name: name.to_owned(),
        lifecycle: AgentLifecycle::Created,
        directory: "/home/coder/project".to_owned(),
        logs_length: 0,
        logs_overflowed: false,
        started_at: None,
        ready_at: None,
        created_at,
        updated_at: created_at,
    }
}

fn app(agent: AgentId, slug: &str) -> WorkspaceApp {
    WorkspaceApp {
        id: AppId::new(),
        agent_id: agent,
        slug: slug.to_owned(),
        display_name: format!("{slug} ✓"),
        url: format!("http://localhost:8080/{slug}"),
        icon: String::new(),
        created_at: at(1),
    }
}

async fn an_agent_is_stored_with_its_apps_in_order(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (_, build) = d.create_workspace(d.owner.id, "dev").await;
    let main = agent(&build, "main", at(1));
    let apps = vec![
        app(main.id, "zeta"),
        app(main.id, "alpha"),
        app(main.id, "mid"),
    ];
    // What an agent has done so far starts empty, whatever the caller passed.
    let claimed = WorkspaceAgent {
        logs_length: 99,
        logs_overflowed: true,
        started_at: Some(at(1)),
        ready_at: Some(at(1)),
        ..main.clone()
    };
    d.store.insert_agent(claimed, apps.clone()).await.unwrap();

    assert_eq!(
        d.store.get_agent(main.id).await.unwrap(),
        Some(main.clone())
    );
    assert_eq!(d.store.get_agent(AgentId::new()).await.unwrap(), None);
    assert_eq!(
        d.store.get_agent_by_build(build.id).await.unwrap(),
        Some(main.clone())
    );
    assert_eq!(
        d.store.get_agent_by_build(BuildId::new()).await.unwrap(),
        None
    );
    assert_eq!(d.store.list_agent_apps(main.id).await.unwrap(), apps);
    assert!(
        d.store
            .list_agent_apps(AgentId::new())
            .await
            .unwrap()
            .is_empty()
    );

    // A second agent of the build is not the one the build reports.
    let later = agent(&build, "later", at(2));
    d.store
        .insert_agent(later.clone(), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        d.store.get_agent_by_build(build.id).await.unwrap(),
        Some(main)
    );
    assert!(d.store.list_agent_apps(later.id).await.unwrap().is_empty());
}

async fn an_agent_records_when_it_started_and_when_it_was_ready(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, build) = d.create_workspace(d.owner.id, "dev").await;
    let main = agent(&build, "main", at(1));
    d.store
        .insert_agent(main.clone(), Vec::new())
        .await
        .unwrap();
    let (_, other_build) = d.create_workspace(d.owner.id, "other").await;
    let other = agent(&other_build, "main", at(1));
    d.store
        .insert_agent(other.clone(), Vec::new())
        .await
        .unwrap();

    d.store
        .update_agent_lifecycle(main.id, AgentLifecycle::Starting, at(2))
        .await
        .unwrap();
    d.store
        .update_agent_lifecycle(main.id, AgentLifecycle::Ready, at(3))
        .await
        .unwrap();
    let ready = WorkspaceAgent {
        lifecycle: AgentLifecycle::Ready,
        started_at: Some(at(2)),
        ready_at: Some(at(3)),
        updated_at: at(3),
        ..main.clone()
    };
    assert_eq!(
        d.store.get_agent(main.id).await.unwrap(),
        Some(ready.clone())
    );

    // Stopping the workspace turns its agents off and keeps when they ran.
    d.store
        .stop_workspace_agents(workspace.id, at(4))
        .await
        .unwrap();
    assert_eq!(
        d.store.get_agent(main.id).await.unwrap(),
        Some(WorkspaceAgent {
            lifecycle: AgentLifecycle::Off,
            updated_at: at(4),
            ..ready
        })
    );
    assert_eq!(
        d.store.get_agent(other.id).await.unwrap(),
        Some(other.clone())
    );

    // A start that failed stamps the end of the start.
    d.store
        .update_agent_lifecycle(other.id, AgentLifecycle::StartTimeout, at(5))
        .await
        .unwrap();
    assert_eq!(
        d.store.get_agent(other.id).await.unwrap(),
        Some(WorkspaceAgent {
            lifecycle: AgentLifecycle::StartTimeout,
            ready_at: Some(at(5)),
            updated_at: at(5),
            ..other
        })
    );
}

async fn agent_logs_stop_at_their_limit_with_one_notice(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (_, build) = d.create_workspace(d.owner.id, "dev").await;
    let main = agent(&build, "main", at(1));
    d.store
        .insert_agent(main.clone(), Vec::new())
        .await
        .unwrap();
    let line = |minute, level, output: &str| (at(minute), level, output.to_owned());
    let limit = 2048;

    assert!(
        d.store
            .insert_agent_logs(
                main.id,
                &[
                    line(1, LogLevel::Info, "hello ✓"),
                    line(2, LogLevel::Error, "")
                ],
                limit,
            )
            .await
            .unwrap()
    );
    let filler = "x".repeat(2040);
    // The second line would pass the limit: it is replaced by the notice, and the rest dropped.
    assert!(
        !d.store
            .insert_agent_logs(
                main.id,
                &[
                    line(3, LogLevel::Debug, "kept"),
                    line(4, LogLevel::Info, &filler),
                    line(5, LogLevel::Info, "dropped"),
                ],
                limit,
            )
            .await
            .unwrap()
    );
    // Once overflowed, nothing more is kept.
    assert!(
        !d.store
            .insert_agent_logs(main.id, &[line(6, LogLevel::Info, "late")], limit)
            .await
            .unwrap()
    );
    assert!(
        !d.store
            .insert_agent_logs(AgentId::new(), &[line(6, LogLevel::Info, "nobody")], limit)
            .await
            .unwrap()
    );

    let logs = d.store.list_agent_logs(main.id, 0, 100).await.unwrap();
    let lines: Vec<(LogLevel, &str)> = logs.iter().map(|l| (l.level, l.output.as_str())).collect();
    assert_eq!(
        lines,
        [
            (LogLevel::Info, "hello ✓"),
            (LogLevel::Error, ""),
            (LogLevel::Debug, "kept"),
            (
                LogLevel::Warn,
                "The agent log reached its limit of 2 KiB; later output is not kept."
            ),
        ]
    );
    assert!(logs.iter().all(|l| l.agent_id == main.id));
    assert_eq!(
        logs.iter().map(|l| l.created_at).collect::<Vec<_>>(),
        [at(1), at(2), at(3), at(4)]
    );
    assert_eq!(
        d.store
            .list_agent_logs(main.id, logs[0].id, 2)
            .await
            .unwrap(),
        logs[1..3]
    );
    let stored = d.store.get_agent(main.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.logs_length, stored.logs_overflowed),
        (("hello ✓".len() + "kept".len()) as i64, true)
    );
}

async fn an_agent_is_found_by_its_token_until_the_workspace_revokes_it(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (workspace, build) = d.create_workspace(d.owner.id, "dev").await;
    let (other_ws, other_build) = d.create_workspace(d.owner.id, "other").await;
    let main = agent(&build, "main", at(1));
    let other = agent(&other_build, "main", at(1));
    d.store.insert_agent(main.clone(), vec![]).await.unwrap();
    d.store.insert_agent(other.clone(), vec![]).await.unwrap();
    d.store
        .insert_agent_token(main.id, &[1; 32], at(1))
        .await
        .unwrap();
    d.store
        .insert_agent_token(other.id, &[2; 32], at(1))
        .await
        .unwrap();
    let found = d.store.get_agent_by_token(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.id, main.id);
    assert!(
        d.store
            .get_agent_by_token(&[3; 32])
            .await
            .unwrap()
            .is_none()
    );
    // One hash names one agent.
    assert!(
        d.store
            .insert_agent_token(other.id, &[1; 32], at(2))
            .await
            .is_err()
    );

    assert_eq!(
        d.store
            .delete_workspace_agent_tokens(workspace.id)
            .await
            .unwrap(),
        1
    );
    assert!(
        d.store
            .get_agent_by_token(&[1; 32])
            .await
            .unwrap()
            .is_none()
    );
    // Another workspace's agent keeps its token.
    assert_eq!(
        d.store
            .get_agent_by_token(&[2; 32])
            .await
            .unwrap()
            .map(|a| a.id),
        Some(other.id)
    );
    assert_eq!(
        d.store
            .delete_workspace_agent_tokens(workspace.id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        d.store
            .delete_workspace_agent_tokens(other_ws.id)
            .await
            .unwrap(),
        1
    );
}

async fn a_connection_belongs_to_the_replica_that_holds_it_last(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (_, build) = d.create_workspace(d.owner.id, "dev").await;
    let main = agent(&build, "main", at(1));
    d.store.insert_agent(main.clone(), vec![]).await.unwrap();
    assert!(
        d.store
            .get_agent_connection(main.id)
            .await
            .unwrap()
            .is_none()
    );
    let (first, second) = (ReplicaId::new(), ReplicaId::new());

    d.store
        .mark_agent_connected(main.id, first, at(2))
        .await
        .unwrap();
    let c = d
        .store
        .get_agent_connection(main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.replica_id, c.first_connected_at, c.last_connected_at),
        (Some(first), at(2), at(2))
    );
    assert_eq!(c.disconnected_at, None);
    assert_eq!(
        d.store.touch_agent_connections(first, at(3)).await.unwrap(),
        1
    );
    assert_eq!(
        d.store
            .touch_agent_connections(second, at(3))
            .await
            .unwrap(),
        0
    );
    let c = d
        .store
        .get_agent_connection(main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.last_connected_at, at(3));

    // The agent reconnects to the second replica; the first's late goodbye changes nothing.
    d.store
        .mark_agent_connected(main.id, second, at(4))
        .await
        .unwrap();
    d.store
        .mark_agent_disconnected(main.id, first, at(5))
        .await
        .unwrap();
    let c = d
        .store
        .get_agent_connection(main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.replica_id, c.first_connected_at), (Some(second), at(2)));
    assert_eq!(c.disconnected_at, None);

    d.store
        .mark_agent_disconnected(main.id, second, at(6))
        .await
        .unwrap();
    let c = d
        .store
        .get_agent_connection(main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.replica_id, c.disconnected_at), (None, Some(at(6))));
    assert_eq!(c.last_connected_at, at(6));
}

fn replica(started: DateTime<Utc>) -> Replica {
    Replica {
        id: ReplicaId::new(),
        hostname: "host-a".to_owned(),
        relay_address: "http://10.0.0.5:3000".to_owned(),
        version: "1.2.3".to_owned(),
        started_at: started,
        stopped_at: None,
        updated_at: started,
    }
}

async fn replicas_heartbeat_and_stopping_one_ends_its_connections(backend: Backend) {
    let d = Deployment::new(&backend).await;
    let (_, build) = d.create_workspace(d.owner.id, "dev").await;
    let main = agent(&build, "main", at(1));
    d.store.insert_agent(main.clone(), vec![]).await.unwrap();
    let (old, live) = (replica(at(0)), replica(at(1)));
    d.store.insert_replica(old.clone()).await.unwrap();
    d.store.insert_replica(live.clone()).await.unwrap();
    assert_eq!(
        d.store.get_replica(live.id).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(d.store.get_replica(ReplicaId::new()).await.unwrap(), None);

    d.store.touch_replica(live.id, at(3)).await.unwrap();
    let seen = d.store.get_replica(live.id).await.unwrap().unwrap();
    assert_eq!((seen.updated_at, seen.started_at), (at(3), at(1)));
    assert!(seen.is_alive(at(3)) && !seen.is_alive(at(4)));

    d.store
        .mark_agent_connected(main.id, live.id, at(3))
        .await
        .unwrap();
    d.store.stop_replica(live.id, at(5)).await.unwrap();
    let stopped = d.store.get_replica(live.id).await.unwrap().unwrap();
    assert_eq!(stopped.stopped_at, Some(at(5)));
    assert!(!stopped.is_alive(at(5)));
    let c = d
        .store
        .get_agent_connection(main.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.replica_id, c.disconnected_at), (None, Some(at(5))));

    // Only replicas silent since before the cutoff are forgotten.
    assert_eq!(d.store.delete_replicas_before(at(2)).await.unwrap(), 1);
    assert_eq!(d.store.get_replica(old.id).await.unwrap(), None);
    assert!(d.store.get_replica(live.id).await.unwrap().is_some());
}
