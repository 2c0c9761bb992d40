//! Workspace agents as their own processes: they outlive a server restart with their
//! processes and files, any replica reaches any agent (relaying to the one holding its
//! connection), an agent that is away gets a clear retryable error, background processes can
//! be followed and signalled, and agent tokens die with their workspace.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use coderd::domain::{Experiment, Experiments};

use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::{call, rpc};
use crate::workspace_support::{
    agent_id, agent_of, app_workspace, build, create_template, create_workspace, exec,
};

both_backends!(
    agents_survive_a_server_restart_with_their_processes_and_files,
    background_processes_are_listed_read_and_signalled,
    agent_tokens_die_with_their_workspace,
    commands_a_shell_cannot_take_are_refused_before_they_run,
    commands_by_workspace_name_reach_its_latest_running_agent,
    calls_that_wait_on_a_workspace_do_not_hold_up_other_calls,
);

/// A running workspace named `name` of a template whose startup script writes a marker.
async fn running_workspace(app: &TestApp, owner: &str, name: &str) -> Value {
    let template = create_template(
        app,
        owner,
        &format!("t-{name}"),
        "agent:\n  startup_script: echo started > ~/started\n",
        &[],
    )
    .await;
    let ws = create_workspace(app, owner, name, &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    assert_eq!(agent_of(&ws)["status"], "connected", "{ws}");
    ws
}

/// Runs `command` until it succeeds (the agent may still be reconnecting), for at most 30 s.
async fn exec_when_connected(app: &TestApp, token: &str, agent: &str, command: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = app
            .post_json(
                &format!("/api/v2/workspaceagents/{agent}/execute"),
                Some(token),
                &json!({"command": command}),
            )
            .await;
        let status = res.status();
        let body = json_body(res).await;
        if status == StatusCode::OK {
            return body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent did not reconnect within 30 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agents_survive_a_server_restart_with_their_processes_and_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let ws = running_workspace(&app, &owner, "keep").await;
    let agent = agent_id(&ws);
    exec(&app, &owner, &agent, "echo precious > ~/file.txt").await;
    let res = app
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/execute"),
            Some(&owner),
            &json!({"command": "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done", "background": true}),
        )
        .await;
    let started = json_body(res).await;
    let process = started["process_id"]
        .as_str()
        .expect("process id")
        .to_owned();

    let app = app.restart().await;
    let after = exec_when_connected(&app, &owner, &agent, "cat ~/file.txt ~/started").await;
    assert_eq!(after["output"], "precious\nstarted\n", "{after}");
    // The process started before the restart still runs, and its output is all there.
    let listed = json_body(
        app.get(
            &format!("/api/v2/workspaceagents/{agent}/processes"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(listed[0]["id"], process.as_str(), "{listed}");
    assert_eq!(listed[0]["running"], true, "{listed}");
    let out = json_body(
        app.get(
            &format!("/api/v2/workspaceagents/{agent}/processes/{process}/output"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert!(
        out["output"]
            .as_str()
            .unwrap()
            .starts_with("tick 1\ntick 2\n"),
        "{out}"
    );
    let ws = app_workspace(&app, &owner, &ws["id"]).await;
    assert_eq!(agent_of(&ws)["status"], "connected", "{ws}");
    // The startup script ran once, not again on reconnecting.
    let logs = json_body(
        app.get(
            &format!("/api/v2/workspaceagents/{agent}/logs"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(logs.as_array().unwrap().len(), 0, "{logs}");
    app.stop().await.unwrap();
}

async fn background_processes_are_listed_read_and_signalled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    running_workspace(&app, &owner, "bg").await;
    let started = call(
        &app,
        &owner,
        "coder_workspace_bash",
        json!({"workspace": "bg", "command": "trap 'echo bye; exit 3' TERM; echo hello; while true; do sleep 0.05; done", "background": true}),
    )
    .await;
    let id = started["process_id"]
        .as_str()
        .expect("process id")
        .to_owned();
    assert!(
        started["output"].as_str().unwrap().contains(&id),
        "{started}"
    );

    // The output arrives while it runs; reading from an offset pages through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = call(
            &app,
            &owner,
            "coder_workspace_process_output",
            json!({"workspace": "bg", "process_id": id}),
        )
        .await;
        if out["output"] == "hello\n" {
            break out;
        }
        assert!(tokio::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(out["process"]["running"], true);
    let tail = call(
        &app,
        &owner,
        "coder_workspace_process_output",
        json!({"workspace": "bg", "process_id": id, "offset": 3}),
    )
    .await;
    assert_eq!(tail["output"], "lo\n");
    assert_eq!(tail["offset"], 3);

    let signalled = call(
        &app,
        &owner,
        "coder_workspace_process_signal",
        json!({"workspace": "bg", "process_id": id, "signal": "SIGTERM"}),
    )
    .await;
    assert_eq!(signalled["process"]["id"], id.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = call(
            &app,
            &owner,
            "coder_workspace_process_list",
            json!({"workspace": "bg"}),
        )
        .await;
        if listed["processes"][0]["running"] == false {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["processes"][0]["exit_code"], 3, "{listed}");
    let out = call(
        &app,
        &owner,
        "coder_workspace_process_output",
        json!({"workspace": "bg", "process_id": id}),
    )
    .await;
    // (bash may also report the `sleep` the TERM interrupted.)
    let text = out["output"].as_str().unwrap();
    assert!(
        text.starts_with("hello\n") && text.ends_with("bye\n"),
        "{out}"
    );

    // Mistakes are tool errors that say what to do.
    for (args, says) in [
        (
            json!({"workspace": "bg", "process_id": "p99"}),
            "coder_workspace_process_list",
        ),
        (
            json!({"workspace": "bg", "process_id": id, "signal": "SIGKILL"}),
            "already ended",
        ),
    ] {
        let tool = if args.get("signal").is_some() {
            "coder_workspace_process_signal"
        } else {
            "coder_workspace_process_output"
        };
        let (_, body) = rpc(
            &app,
            &owner,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await;
        assert_eq!(body["result"]["isError"], true, "{body}");
        let text = body["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(says), "{text}");
    }
    app.stop().await.unwrap();
}

/// The token the provisioner handed to the workspace's agent.
fn agent_token(app: &TestApp, ws: &Value) -> String {
    let path = app
        .db
        .dir
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap())
        .join("agent-token");
    std::fs::read_to_string(path).expect("agent token file")
}

async fn agent_tokens_die_with_their_workspace(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let ws = running_workspace(&app, &owner, "tok").await;
    let token = agent_token(&app, &ws);
    let manifest = |token: String, version: &'static str| {
        app.client
            .get(app.url("/api/v2/workspaceagents/me/manifest"))
            .header("Coder-Session-Token", token)
            .header("Coder-Agent-Api-Version", version)
            .send()
    };
    let res = manifest(token.clone(), "1.0").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_body(res).await;
    assert_eq!(body["workspace_name"], "tok");
    assert_eq!(body["environment_variables"]["CODER_WORKSPACE_NAME"], "tok");
    assert_eq!(body["startup_script"], "echo started > ~/started");

    let res = manifest(token.clone(), "0.1").await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .unwrap()
            .contains("1.0")
    );
    // A user's session token is not an agent token.
    let res = manifest(owner.clone(), "1.0").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped");
    let res = manifest(token.clone(), "1.0").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A new start gives the new agent a new token; the old one stays dead.
    let started = build(&app, &owner, &ws, "start").await;
    assert_eq!(started["status"], "running");
    assert_ne!(agent_token(&app, &ws), token);
    let res = manifest(token, "1.0").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.stop().await.unwrap();
}

async fn commands_a_shell_cannot_take_are_refused_before_they_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let ws = running_workspace(&app, &owner, "sh").await;
    let agent = agent_id(&ws);
    let too_long = format!("echo {}", "x".repeat(200 * 1024));
    for (command, says) in [
        ("echo a\u{0}b".to_owned(), "NUL"),
        (too_long.clone(), "131071"),
    ] {
        let res = app
            .post_json(
                &format!("/api/v2/workspaceagents/{agent}/execute"),
                Some(&owner),
                &json!({"command": command}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let message = json_body(res).await["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{message}");
        let (_, body) = rpc(
            &app,
            &owner,
            "tools/call",
            json!({"name": "coder_workspace_bash", "arguments": {"workspace": "sh", "command": command}}),
        )
        .await;
        assert_eq!(body["result"]["isError"], true, "{body}");
        assert!(
            body["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains(says),
            "{body}"
        );
    }
    // The limit's own suggestion works: a long script written to a file runs.
    let res = app
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/write-file"),
            Some(&owner),
            &json!({"path": "long.sh", "content": format!("{too_long} | wc -c\n")}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let out = exec(&app, &owner, &agent, "bash long.sh").await;
    assert_eq!(out["output"], "204801\n");
    app.stop().await.unwrap();
}

/// A command names a workspace; it runs on the agent of the workspace's latest build while that
/// build is a succeeded start, and is refused with what to do otherwise. (The one-statement
/// lookup of that agent must not find the agent of an older build, nor one of a stopped or
/// still-building workspace.)
async fn commands_by_workspace_name_reach_its_latest_running_agent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let ws = running_workspace(&app, &owner, "dev").await;
    let first_agent = agent_id(&ws);
    let bash = async |command: &str| {
        let (_, body) = rpc(
            &app,
            &owner,
            "tools/call",
            json!({"name": "coder_workspace_bash", "arguments": {"workspace": "dev", "command": command}}),
        )
        .await;
        body["result"].clone()
    };
    let ran = bash("echo one").await;
    assert_eq!(ran["isError"], false, "{ran}");
    assert_eq!(ran["structuredContent"]["exit_code"], 0, "{ran}");

    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    let refused = bash("true").await;
    assert_eq!(refused["isError"], true, "{refused}");
    let text = refused["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("not running") && text.contains("Start it"),
        "{text}"
    );

    let started = build(&app, &owner, &ws, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    let ws = app_workspace(&app, &owner, &ws["id"]).await;
    assert_ne!(agent_id(&ws), first_agent);
    // The new agent may still be dialling in: that is the retryable "not connected".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ran = loop {
        let ran = bash("echo two").await;
        if ran["isError"] == false {
            break ran;
        }
        let text = ran["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("not connected"), "{ran}");
        assert!(tokio::time::Instant::now() < deadline, "{ran}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ran["structuredContent"]["output"], "two\n", "{ran}");
    app.stop().await.unwrap();
}

/// The MCP endpoint works on a bounded number of requests at once; commands (which wait on the
/// workspace) take none of those slots, so long commands never hold up other calls.
async fn calls_that_wait_on_a_workspace_do_not_hold_up_other_calls(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.experiments = Experiments::of(&Experiment::ALL);
        c.mcp_max_concurrent_requests = Some(2);
    })
    .await;
    let owner = app.create_owner().await;
    running_workspace(&app, &owner, "dev").await;
    let bash = |command: String| {
        call(
            &app,
            &owner,
            "coder_workspace_bash",
            json!({"workspace": "dev", "command": command, "timeout_ms": 120_000}),
        )
    };
    // Twice as many commands as slots, each still running when the other call is made.
    let sleepers = futures_util::future::join_all(
        (0..4).map(|i| bash(format!("touch ~/started-{i}; sleep 60"))),
    );
    let other_calls = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ran = bash("ls ~ | grep -c '^started-'".to_owned()).await;
            if ran["output"] == "4\n" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the four commands did not all start within 30 s: {ran}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A call that takes a slot: free, since the four commands hold none.
        call(&app, &owner, "coder_get_authenticated_user", json!({})).await
    };
    let user = tokio::select! {
        _ = sleepers => panic!("the commands ended before the other calls were answered"),
        user = other_calls => user,
    };
    assert_eq!(user["username"], "owner", "{user}");
    bash("pkill sleep || true".to_owned()).await;
    app.stop().await.unwrap();
}

/// With two replicas on one PostgreSQL, a workspace's agent holds one connection, to one of
/// them; the other serves its commands, files and processes by relaying. When the holder
/// stops, the other answers a clear retryable 503 until the agent is back.
#[test]
#[ignore = "needs CODER_TEST_POSTGRES_URL; run with `cargo test -- --include-ignored`"]
fn any_replica_serves_any_workspace() {
    crate::helpers::run_test(any_replica_serves_any_workspace_body());
}

async fn any_replica_serves_any_workspace_body() {
    let first = TestApp::spawn(Backend::postgres()).await;
    let second = first.spawn_replica().await;
    let owner = first.create_owner().await;
    let ws = running_workspace(&first, &owner, "shared").await;
    let agent = agent_id(&ws);
    let store = first.state.services.store().clone();
    let agent_uuid = coderd::domain::AgentId(agent.parse().unwrap());
    let holder = store
        .get_agent_connection(agent_uuid)
        .await
        .unwrap()
        .and_then(|c| c.replica_id)
        .expect("the agent is connected");
    let (mut holding, other) = if first.state.services.replica_id() == Some(holder) {
        (first, second)
    } else {
        (second, first)
    };
    assert_ne!(other.state.services.replica_id(), Some(holder));

    // Through the replica that does not hold the connection: REST and MCP alike.
    let out = exec(&other, &owner, &agent, "echo hi").await;
    assert_eq!(out["output"], "hi\n");
    let res = other
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/write-file"),
            Some(&owner),
            &json!({"path": "relayed.txt", "content": "through the other replica"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let read = call(
        &other,
        &owner,
        "coder_workspace_read_file",
        json!({"workspace": "shared", "path": "relayed.txt"}),
    )
    .await;
    assert_eq!(read["content"], "through the other replica");
    let listing = call(
        &other,
        &owner,
        "coder_workspace_ls",
        json!({"workspace": "shared", "path": "."}),
    )
    .await;
    assert!(listing.to_string().contains("relayed.txt"), "{listing}");
    let bash = call(
        &other,
        &owner,
        "coder_workspace_bash",
        json!({"workspace": "shared", "command": "sleep 60", "background": true}),
    )
    .await;
    let listed = call(
        &other,
        &owner,
        "coder_workspace_process_list",
        json!({"workspace": "shared"}),
    )
    .await;
    assert_eq!(listed["processes"][0]["id"], bash["process_id"], "{listed}");
    assert_eq!(listed["processes"][0]["running"], true);

    // A replica that stopped heartbeating is taken for dead: the agent shows disconnected
    // and requests get a retryable error naming the workspace.
    other.clock.advance(chrono::Duration::seconds(31));
    let ws_seen = app_workspace(&other, &owner, &ws["id"]).await;
    assert_eq!(
        agent_of(&ws_seen)["status"],
        "disconnected",
        "{}",
        agent_of(&ws_seen)
    );
    let res = other
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/execute"),
            Some(&owner),
            &json!({"command": "true"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    let message = json_body(res).await["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("shared") && message.contains("retry"),
        "{message}"
    );
    other.clock.advance(chrono::Duration::seconds(-31));
    assert_eq!(
        exec(&other, &owner, &agent, "echo back").await["output"],
        "back\n"
    );

    // The holder stops: its agents are disconnected at once, and come back when it runs again.
    holding.shut_down().await;
    let ws_seen = app_workspace(&other, &owner, &ws["id"]).await;
    assert_eq!(
        agent_of(&ws_seen)["status"],
        "disconnected",
        "{}",
        agent_of(&ws_seen)
    );
    let res = other
        .post_json(
            &format!("/api/v2/workspaceagents/{agent}/execute"),
            Some(&owner),
            &json!({"command": "true"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let holding = holding.start_again().await;
    let out = exec_when_connected(&other, &owner, &agent, "cat relayed.txt").await;
    assert_eq!(out["output"], "through the other replica");
    holding.stop().await.unwrap();
    other.stop().await.unwrap();
}
