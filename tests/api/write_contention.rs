//! SQLite under many concurrent writers: every write waits its turn for the database's single
//! write lock (within the busy timeout) instead of failing with "database is locked".
//!
//! A hundred real workspace builds would start a hundred `coder agent` processes in bubblewrap
//! sandboxes, more than two shared cores run in a test's time. The write paths those builds
//! take are exercised instead, all at once: a hundred agents (with their workspaces, builds and
//! tokens stored as a build leaves them) report their lifecycle and stream their startup logs
//! through the real agent API, while the build jobs' logs are written through the store.

use std::sync::Arc;

use chrono::{Duration, Utc};
use coderd::domain::{
    AgentId, AgentLifecycle, JobStatus, LogLevel, NewJobLog, WorkspaceAgent, WorkspaceBuild,
};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Barrier;

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::store::{Deployment, t0};

const AGENTS: usize = 100;
const BATCHES: usize = 10;
const LINES_PER_BATCH: usize = 10;
const JOB_LOG_BATCHES: usize = 5;

struct Agent {
    id: AgentId,
    token: String,
    build: WorkspaceBuild,
}

#[test]
fn a_hundred_agents_write_logs_at_once_on_sqlite_and_nothing_is_lost() {
    crate::helpers::run_multi_thread_test(
        4,
        a_hundred_agents_write_logs_at_once_on_sqlite_and_nothing_is_lost_body(),
    );
}

async fn a_hundred_agents_write_logs_at_once_on_sqlite_and_nothing_is_lost_body() {
    let d = Deployment::new(&Backend::Sqlite).await;
    let agents = hundred_started_workspaces(&d).await;
    let app = TestApp::spawn_on(
        Backend::Sqlite,
        TestDatabase::shared(d.db.target.clone()),
        |_| {},
    )
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(AGENTS)
        .build()
        .unwrap();

    let start = Arc::new(Barrier::new(AGENTS * 2));
    let agent_writers = agents.iter().map(|agent| {
        let (app, client, start) = (&app, client.clone(), start.clone());
        async move {
            start.wait().await;
            let mut failures = Vec::new();
            let lifecycle = |state: &str| {
                client
                    .post(app.url("/api/v2/workspaceagents/me/report-lifecycle"))
                    .header("Coder-Session-Token", &agent.token)
                    .header("Coder-Agent-Api-Version", "1.0")
                    .json(&json!({"state": state, "changed_at": Utc::now()}))
                    .send()
            };
            check(lifecycle("starting").await, &mut failures).await;
            for batch in 0..BATCHES {
                let logs: Vec<_> = (0..LINES_PER_BATCH)
                    .map(|line| {
                        json!({
                            "created_at": Utc::now(),
                            "level": "info",
                            "output": format!("agent {} batch {batch} line {line}", agent.id),
                        })
                    })
                    .collect();
                let res = client
                    .patch(app.url("/api/v2/workspaceagents/me/logs"))
                    .header("Coder-Session-Token", &agent.token)
                    .header("Coder-Agent-Api-Version", "1.0")
                    .json(&json!({ "logs": logs }))
                    .send()
                    .await;
                check(res, &mut failures).await;
            }
            check(lifecycle("ready").await, &mut failures).await;
            failures
        }
    });
    let store = d.store.clone();
    let job_writers = agents.iter().map(|agent| {
        let (store, start) = (store.clone(), start.clone());
        async move {
            start.wait().await;
            let mut failures = Vec::new();
            for batch in 0..JOB_LOG_BATCHES {
                let lines: Vec<NewJobLog> = (0..LINES_PER_BATCH)
                    .map(|line| NewJobLog {
                        created_at: t0() + Duration::seconds(line as i64),
                        source: "provisioner",
                        level: LogLevel::Info,
                        stage: "Starting workspace".to_owned(),
                        output: format!("job batch {batch} line {line}"),
                    })
                    .collect();
                if let Err(err) = store.insert_job_logs(agent.build.job_id, &lines).await {
                    failures.push(err.to_string());
                }
            }
            failures
        }
    });
    let (agent_failures, job_failures) =
        tokio::join!(join_all(agent_writers), join_all(job_writers));
    let failures: Vec<String> = agent_failures
        .into_iter()
        .chain(job_failures)
        .flatten()
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} writes failed, e.g. {:?}",
        failures.len(),
        AGENTS * (BATCHES + 2 + JOB_LOG_BATCHES),
        failures.first()
    );

    for agent in &agents {
        let logs = store.list_agent_logs(agent.id, 0, 10_000).await.unwrap();
        assert_eq!(
            logs.len(),
            BATCHES * LINES_PER_BATCH,
            "agent {} kept every line",
            agent.id
        );
        let stored = store.get_agent(agent.id).await.unwrap().unwrap();
        assert_eq!(stored.lifecycle, AgentLifecycle::Ready);
        let expected_length: usize = logs.iter().map(|l| l.output.len()).sum();
        assert_eq!(stored.logs_length, expected_length as i64);
        let job_logs = store
            .list_job_logs(agent.build.job_id, 0, 10_000)
            .await
            .unwrap();
        assert_eq!(job_logs.len(), JOB_LOG_BATCHES * LINES_PER_BATCH);
    }
    app.stop().await.unwrap();
}

/// Notes a request that did not succeed.
async fn check(res: reqwest::Result<reqwest::Response>, failures: &mut Vec<String>) {
    let res = res.expect("the server answers");
    let status = res.status();
    if status != StatusCode::OK && status != StatusCode::NO_CONTENT {
        failures.push(format!(
            "{status}: {}",
            res.text().await.unwrap_or_default()
        ));
    }
}

/// A hundred workspaces whose start builds succeeded, each with a created agent and its token.
async fn hundred_started_workspaces(d: &Deployment) -> Vec<Agent> {
    let mut agents = Vec::with_capacity(AGENTS);
    for i in 0..AGENTS {
        let (workspace, build) = d.create_workspace(d.owner.id, &format!("ws-{i}")).await;
        let agent = WorkspaceAgent {
            id: AgentId::new(),
            workspace_id: workspace.id,
            build_id: build.id,
            name: "main".to_owned(),
            lifecycle: AgentLifecycle::Created,
            directory: "/home/coder".to_owned(),
            logs_length: 0,
            logs_overflowed: false,
            started_at: None,
            ready_at: None,
            created_at: t0(),
            updated_at: t0(),
        };
        d.store
            .insert_agent(agent.clone(), Vec::new())
            .await
            .unwrap();
        let token = format!("agent-token-{}", uuid::Uuid::new_v4());
        d.store
            .insert_agent_token(agent.id, &coderd::secret::sha256(token.as_bytes()), t0())
            .await
            .unwrap();
        agents.push(Agent {
            id: agent.id,
            token,
            build,
        });
    }
    // The builds ran: no job is left for the server's worker to take.
    while let Some(job) = d
        .store
        .claim_job("setup", &crate::store::any(), t0())
        .await
        .unwrap()
    {
        assert!(
            d.store
                .complete_job(job.id, JobStatus::Succeeded, "", t0())
                .await
                .unwrap()
        );
    }
    agents
}
