//! Workspaces end to end: the lifecycle, parameters, isolation between users, concurrent builds,
//! cancel, search, and recovery after a crash.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::workspace_support::{
    agent_id, agent_of, app_workspace, build, create_template, create_workspace, exec,
    import_version, patch_json, poll, wait_for_build, wait_until_running,
};

both_backends!(
    workspace_lifecycle_from_template_to_deletion,
    invalid_parameter_values_are_rejected_with_clear_messages,
    members_only_see_their_own_workspaces,
    a_second_concurrent_build_is_a_conflict,
    canceling_a_running_build_stops_it,
    a_crash_mid_build_leaves_no_build_running,
    workspaces_are_searchable_with_coder_filters,
    lists_order_names_byte_by_byte_ignoring_case,
    concurrent_agent_log_appends_all_land,
);

const MANIFEST: &str = r#"
parameters:
  - name: region
    display_name: Region
    type: string
    default: eu
    options:
      - name: Europe
        value: eu
      - name: United States
        value: us
  - name: cpus
    type: number
    default: 2
    mutable: true
    validation:
      min: 1
      max: 8
  - name: project
    description: Lower-case project name.
    validation:
      regex: "^[a-z]+$"
      error: Use lower-case letters only.
agent:
  startup_script: |
    echo "starting $CODER_WORKSPACE_NAME for $CODER_WORKSPACE_OWNER_NAME"
    echo "project=$CODER_PARAM_PROJECT" > started.txt
  env:
    GREETING: hello
  dir: /home/coder/src
apps:
  - slug: web
    display_name: Web
    port: 8080
"#;

async fn workspace_lifecycle_from_template_to_deletion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(
        &app,
        &owner,
        "basic",
        MANIFEST,
        &[("src/hello.txt", "hello from the template\n")],
    )
    .await;
    let ws = create_workspace(
        &app,
        &owner,
        "dev",
        &template["id"],
        json!([{"name": "project", "value": "demo"}, {"name": "cpus", "value": "4"}]),
    )
    .await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    assert_eq!(ws["latest_build"]["job"]["status"], "succeeded");
    assert_eq!(ws["owner_name"], "owner");
    assert_eq!(ws["template_name"], "basic");
    assert_eq!(ws["outdated"], false);
    let agent = agent_of(&ws);
    assert_eq!(agent["lifecycle_state"], "ready", "{agent}");
    assert_eq!(agent["apps"][0]["url"], "http://localhost:8080");
    let agent = agent_id(&ws);

    // Commands run in the working directory with the workspace's environment.
    let out = exec(&app, &owner, &agent, "echo hi").await;
    assert_eq!(out["output"], "hi\n");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["timed_out"], false);
    let out = exec(&app, &owner, &agent, "pwd; echo $GREETING $CODER_PARAM_REGION $CODER_PARAM_CPUS $CODER $HOME; cat hello.txt started.txt; exit 3").await;
    assert_eq!(
        out["output"],
        "/home/coder/src\nhello eu 4 true /home/coder\nhello from the template\nproject=demo\n"
    );
    assert_eq!(out["exit_code"], 3);

    // The startup script's output is the agent log.
    let logs = json_body(
        app.get(
            &format!("/api/v2/workspaceagents/{agent}/logs"),
            Some(&owner),
        )
        .await,
    )
    .await;
    let text: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["output"].as_str().unwrap())
        .collect();
    assert!(text.contains(&"starting dev for owner"), "{logs}");

    // Files: write, read, edit, list.
    let base = format!("/api/v2/workspaceagents/{agent}");
    let res = app
        .post_json(
            &format!("{base}/write-file"),
            Some(&owner),
            &json!({"path": "notes/todo.md", "content": "one\ntwo\nthree\n"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(res).await["absolute_path_string"],
        "/home/coder/notes/todo.md"
    );
    let read = json_body(
        app.get(
            &format!("{base}/read-file?path=/home/coder/notes/todo.md&offset=4&limit=3"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(read["content"], "two");
    assert_eq!(read["size"], 14);
    assert_eq!(read["has_more"], true);
    let res = app
        .post_json(
            &format!("{base}/edit-files"),
            Some(&owner),
            &json!({"files": [{"path": "notes/todo.md", "edits": [{"search": "two", "replace": "2"}, {"search": "three", "replace": "3"}]}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["files"][0]["replacements"], 2);
    let out = exec(&app, &owner, &agent, "cat ~/notes/todo.md").await;
    assert_eq!(out["output"], "one\n2\n3\n");
    let ls = json_body(
        app.get(&format!("{base}/ls?path=/home/coder"), Some(&owner))
            .await,
    )
    .await;
    let names: Vec<&str> = ls["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes", "src"], "{ls}");
    assert_eq!(ls["contents"][0]["is_dir"], true);
    let apps = json_body(app.get(&format!("{base}/apps"), Some(&owner)).await).await;
    assert_eq!(apps[0]["slug"], "web");

    // Stop: commands are refused; start again: files persist, with a new agent.
    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(stopped["resources"], json!([]));
    let res = app
        .post_json(
            &format!("{base}/execute"),
            Some(&owner),
            &json!({"command": "true"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .unwrap()
            .contains("Start it")
    );
    let started = build(&app, &owner, &ws, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["build_number"], 3);
    let ws = app_workspace(&app, &owner, &ws["id"]).await;
    let agent2 = agent_id(&ws);
    assert_ne!(agent2, agent);
    let out = exec(
        &app,
        &owner,
        &agent2,
        "cat ~/notes/todo.md; echo $CODER_PARAM_CPUS",
    )
    .await;
    assert_eq!(out["output"], "one\n2\n3\n4\n");

    // The build log tells what happened, and following it ends with the build.
    let logs = json_body(
        app.get(
            &format!(
                "/api/v2/workspacebuilds/{}/logs",
                started["id"].as_str().unwrap()
            ),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["stage"] == "Running startup script"),
        "{logs}"
    );
    let followed = app
        .get(
            &format!(
                "/api/v2/workspacebuilds/{}/logs?follow=true",
                started["id"].as_str().unwrap()
            ),
            Some(&owner),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(followed.lines().count(), logs.as_array().unwrap().len());

    // Delete: the directory goes, and so does the workspace.
    let home = app
        .db
        .dir
        .path()
        .join("workspaces")
        .join(ws["id"].as_str().unwrap());
    assert!(home.join("home/notes/todo.md").exists());
    let deleted = build(&app, &owner, &ws, "delete").await;
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    assert!(!home.exists(), "the workspace directory remains");
    let res = app
        .get(
            &format!("/api/v2/workspaces/{}", ws["id"].as_str().unwrap()),
            Some(&owner),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The name is free again.
    create_workspace(
        &app,
        &owner,
        "dev",
        &template["id"],
        json!([{"name": "project", "value": "again"}]),
    )
    .await;
    app.stop().await.unwrap();
}

async fn invalid_parameter_values_are_rejected_with_clear_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "params", MANIFEST, &[]).await;
    let attempt = |params: Value| {
        let app = &app;
        let owner = &owner;
        let template = &template;
        async move {
            let res = app
                .post_json(
                    "/api/v2/users/me/workspaces",
                    Some(owner),
                    &json!({"name": "w", "template_id": template["id"], "rich_parameter_values": params}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
            json_body(res).await
        }
    };
    let missing = attempt(json!([])).await;
    assert_eq!(missing["validations"][0]["field"], "project", "{missing}");
    assert!(
        missing["validations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("required")
    );
    let bad = attempt(json!([
        {"name": "project", "value": "Demo"},
        {"name": "region", "value": "mars"},
        {"name": "cpus", "value": "99"},
        {"name": "color", "value": "red"}
    ]))
    .await;
    let details: Vec<String> = bad["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{}: {}", v["field"], v["detail"]))
        .collect();
    let joined = details.join("\n");
    assert!(joined.contains("Use lower-case letters only."), "{joined}");
    assert!(
        joined.contains("not one of the options: eu, us"),
        "{joined}"
    );
    assert!(joined.contains("maximum 8"), "{joined}");
    assert!(joined.contains("no such parameter"), "{joined}");

    // Immutable parameters cannot change after creation; mutable ones can.
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "bad name", "template_id": template["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let ws = create_workspace(
        &app,
        &owner,
        "w",
        &template["id"],
        json!([{"name": "project", "value": "demo"}]),
    )
    .await;
    let path = format!("/api/v2/workspaces/{}/builds", ws["id"].as_str().unwrap());
    let res = app
        .post_json(&path, Some(&owner), &json!({"transition": "start", "rich_parameter_values": [{"name": "region", "value": "us"}]}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(res).await["validations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("immutable")
    );
    let res = app
        .post_json(&path, Some(&owner), &json!({"transition": "start", "rich_parameter_values": [{"name": "cpus", "value": "6"}]}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let b = wait_for_build(&app, &owner, &json_body(res).await["id"]).await;
    assert_eq!(b["status"], "running");
    let ws = app_workspace(&app, &owner, &ws["id"]).await;
    let out = exec(
        &app,
        &owner,
        &agent_id(&ws),
        "echo $CODER_PARAM_CPUS $CODER_PARAM_REGION",
    )
    .await;
    assert_eq!(out["output"], "6 eu\n");
    // An unknown transition is a 400 naming the valid ones.
    let res = app
        .post_json(&path, Some(&owner), &json!({"transition": "restart"}))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.stop().await.unwrap();
}

async fn members_only_see_their_own_workspaces(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    let bob = app.create_member(&owner, "bob").await;
    let template = create_template(
        &app,
        &owner,
        "basic",
        "agent:\n  startup_script: echo ready\n",
        &[],
    )
    .await;
    // Members can read templates but not manage them.
    let list = json_body(app.get("/api/v2/templates", Some(&alice)).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(&alice),
            &json!({"name": "x", "template_version_id": template["active_version_id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let ws = create_workspace(&app, &alice, "mine", &template["id"], json!([])).await;
    let id = ws["id"].as_str().unwrap();
    let agent = agent_id(&ws);
    let build_id = ws["latest_build"]["id"].as_str().unwrap();
    for path in [
        format!("/api/v2/workspaces/{id}"),
        "/api/v2/users/alice/workspace/mine".to_owned(),
        format!("/api/v2/workspacebuilds/{build_id}"),
        format!("/api/v2/workspacebuilds/{build_id}/logs"),
        format!("/api/v2/workspaceagents/{agent}"),
        format!("/api/v2/workspaceagents/{agent}/logs"),
        format!("/api/v2/workspaceagents/{agent}/apps"),
        format!("/api/v2/workspaceagents/{agent}/ls?path=/home/coder"),
        format!("/api/v2/workspaceagents/{agent}/read-file?path=x"),
    ] {
        let res = app.get(&path, Some(&bob)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            app.get(&path, Some(&alice))
                .await
                .status()
                .is_client_error(),
            path.contains("read-file"),
            "{path}"
        );
    }
    for (path, body) in [
        (
            format!("/api/v2/workspaces/{id}/builds"),
            json!({"transition": "stop"}),
        ),
        (
            format!("/api/v2/workspaceagents/{agent}/execute"),
            json!({"command": "id"}),
        ),
        (
            format!("/api/v2/workspaceagents/{agent}/write-file"),
            json!({"path": "x", "content": "y"}),
        ),
        (
            format!("/api/v2/workspaceagents/{agent}/edit-files"),
            json!({"files": []}),
        ),
        (
            "/api/v2/users/alice/workspaces".to_owned(),
            json!({"name": "theirs", "template_id": template["id"]}),
        ),
    ] {
        let res = app.post_json(&path, Some(&bob), &body).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = patch_json(
        &app,
        &format!("/api/v2/workspacebuilds/{build_id}/cancel"),
        &bob,
        &json!({}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Listing shows each member only their own; the owner sees all.
    let listed = json_body(app.get("/api/v2/workspaces", Some(&bob)).await).await;
    assert_eq!(listed["count"], 0);
    let listed = json_body(
        app.get("/api/v2/workspaces?q=owner:alice", Some(&bob))
            .await,
    )
    .await;
    assert_eq!(listed["count"], 0);
    let listed = json_body(app.get("/api/v2/workspaces", Some(&alice)).await).await;
    assert_eq!(listed["count"], 1);
    let listed = json_body(app.get("/api/v2/workspaces", Some(&owner)).await).await;
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["workspaces"][0]["owner_name"], "alice");
    // An owner may act on a member's workspace.
    let out = exec(&app, &owner, &agent, "echo $CODER_WORKSPACE_OWNER_NAME").await;
    assert_eq!(out["output"], "alice\n");
    app.stop().await.unwrap();
}

async fn a_second_concurrent_build_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(
        &app,
        &owner,
        "slow",
        "agent:\n  startup_script: sleep 2\n",
        &[],
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "w", "template_id": template["id"]}),
        )
        .await;
    let ws = json_body(res).await;
    let path = format!("/api/v2/workspaces/{}/builds", ws["id"].as_str().unwrap());
    // The first build is pending or running: another one is refused.
    let res = app
        .post_json(&path, Some(&owner), &json!({"transition": "stop"}))
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = json_body(res).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already has a build in progress"),
        "{body}"
    );
    wait_for_build(&app, &owner, &ws["latest_build"]["id"]).await;
    // Two requests at once: exactly one wins.
    let body = json!({"transition": "stop"});
    let (a, b) = tokio::join!(
        app.post_json(&path, Some(&owner), &body),
        app.post_json(&path, Some(&owner), &body)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    app.stop().await.unwrap();
}

async fn canceling_a_running_build_stops_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(
        &app,
        &owner,
        "slow",
        "agent:\n  startup_script: echo begin; sleep 60\n",
        &[],
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "w", "template_id": template["id"]}),
        )
        .await;
    let ws = json_body(res).await;
    let build_id = &ws["latest_build"]["id"];
    wait_until_running(&app, &owner, build_id).await;
    assert_eq!(listed(&app, &owner, "status:starting").await, ["w"]);
    let path = format!(
        "/api/v2/workspacebuilds/{}/cancel",
        build_id.as_str().unwrap()
    );
    let res = patch_json(&app, &path, &owner, &json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let canceled = wait_for_build(&app, &owner, build_id).await;
    assert_eq!(canceled["job"]["status"], "canceled", "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(listed(&app, &owner, "status:canceled").await, ["w"]);
    // Canceling again says there is nothing to cancel; a new build can start.
    let res = patch_json(&app, &path, &owner, &json!({})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .post_json(
            &format!("/api/v2/workspaces/{}/builds", ws["id"].as_str().unwrap()),
            Some(&owner),
            &json!({"transition": "stop"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let stopped = wait_for_build(&app, &owner, &json_body(res).await["id"]).await;
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(listed(&app, &owner, "status:stopped").await, ["w"]);
    app.stop().await.unwrap();
}

/// The names of a workspace list response, in its order.
fn names(list: &Value) -> Vec<String> {
    list["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The names `/api/v2/workspaces?q=query` lists. A status search filters on the latest build's
/// copy on the workspace row (migration 0005), so searching by status checks that the copy
/// follows each job's life.
async fn listed(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let path = format!("/api/v2/workspaces?q={}", url_encode(query));
    names(&json_body(app.get(&path, Some(token)).await).await)
}

async fn a_crash_mid_build_leaves_no_build_running(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(
        &app,
        &owner,
        "slow",
        "agent:\n  startup_script: sleep 60\n",
        &[],
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/users/me/workspaces",
            Some(&owner),
            &json!({"name": "w", "template_id": template["id"]}),
        )
        .await;
    let ws = json_body(res).await;
    let build_id = ws["latest_build"]["id"].clone();
    // Mid-build: the startup script is running.
    let path = format!("/api/v2/workspaces/{}", ws["id"].as_str().unwrap());
    poll(&app, &owner, &path, |w| {
        agent_of(w)["lifecycle_state"] == "starting"
    })
    .await;

    let app = app.crash_and_restart().await;
    // Past the heartbeat deadline, so another replica would also treat the job as abandoned.
    app.clock.advance(chrono::Duration::minutes(2));
    let failed = wait_for_build(&app, &owner, &build_id).await;
    assert_eq!(failed["job"]["status"], "failed", "{failed}");
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["job"]["error"]
            .as_str()
            .unwrap()
            .contains("restarted"),
        "{failed}"
    );
    let logs = json_body(
        app.get(
            &format!(
                "/api/v2/workspacebuilds/{}/logs",
                build_id.as_str().unwrap()
            ),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert!(
        logs.as_array().unwrap().iter().any(|l| l["output"]
            .as_str()
            .unwrap()
            .contains("restarted")
            && l["log_level"] == "error"),
        "{logs}"
    );
    let ws = app_workspace(&app, &owner, &ws["id"]).await;
    assert_eq!(ws["latest_build"]["status"], "failed");
    assert_eq!(listed(&app, &owner, "status:failed").await, ["w"]);
    assert_eq!(agent_of(&ws)["lifecycle_state"], "start_error");
    // The workspace can be built again.
    let stopped = build(&app, &owner, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(listed(&app, &owner, "status:stopped").await, ["w"]);
    app.stop().await.unwrap();
}

async fn workspaces_are_searchable_with_coder_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    let basic = create_template(&app, &owner, "basic", "", &[]).await;
    let other = create_template(&app, &owner, "other", "", &[]).await;
    let a = create_workspace(&app, &owner, "alpha", &basic["id"], json!([])).await;
    create_workspace(&app, &owner, "beta", &other["id"], json!([])).await;
    create_workspace(&app, &alice, "gamma", &basic["id"], json!([])).await;
    build(&app, &owner, &a, "stop").await;
    assert_eq!(listed(&app, &owner, "").await, ["alpha", "beta", "gamma"]);
    assert_eq!(listed(&app, &owner, "owner:me").await, ["alpha", "beta"]);
    assert_eq!(listed(&app, &owner, "owner:alice").await, ["gamma"]);
    assert_eq!(
        listed(&app, &owner, "template:basic").await,
        ["alpha", "gamma"]
    );
    assert_eq!(listed(&app, &owner, "status:stopped").await, ["alpha"]);
    assert_eq!(
        listed(&app, &owner, "status:running owner:me").await,
        ["beta"]
    );
    assert_eq!(listed(&app, &owner, "name:amm").await, ["gamma"]);
    assert_eq!(listed(&app, &owner, "et").await, ["beta"]);
    let page = json_body(
        app.get("/api/v2/workspaces?limit=1&offset=1", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(names(&page), ["beta"]);
    assert_eq!(page["count"], 3);
    same_summaries_as_the_rest_list(&app, &owner, &basic["id"]).await;
    let res = app
        .get("/api/v2/workspaces?q=color:red", Some(&owner))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(res).await["validations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("owner:")
    );
    // Workspaces are also found by owner and name.
    let found = json_body(
        app.get("/api/v2/users/alice/workspace/gamma", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(found["name"], "gamma");
    let _ = poll(&app, &alice, "/api/v2/users/me/workspace/gamma", |w| {
        w["name"] == "gamma"
    })
    .await;
    app.stop().await.unwrap();
}

/// The one-query summaries the MCP tools list (each backend aggregates them into JSON) agree
/// with the full REST views for every filter, page and count.
async fn same_summaries_as_the_rest_list(app: &TestApp, owner: &str, basic: &Value) {
    use coderd::domain::Page;
    // Fields a swapped column would otherwise hide: a template whose display name and icon
    // differ from its name, and builds of a version that is no longer active.
    let version = import_version(app, owner, &[("coder.yaml", "")], None).await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(owner),
            &json!({"name": "fancy", "display_name": "Fancy Template", "icon": "/icon/fancy.svg",
                    "template_version_id": version["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let fancy = json_body(res).await;
    create_workspace(app, owner, "delta", &fancy["id"], json!([])).await;
    let basic_id = basic.as_str().unwrap();
    let newer = import_version(app, owner, &[("coder.yaml", "")], Some(basic_id)).await;
    let res = patch_json(
        app,
        &format!("/api/v2/templates/{basic_id}/versions"),
        owner,
        &json!({"id": newer["id"]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let actor = app
        .state
        .services
        .authenticate_api_key(owner)
        .await
        .expect("principal");
    let queries = [
        "",
        "owner:me",
        "owner:alice",
        "template:basic",
        "status:stopped",
        "status:running owner:me",
        "name:amm",
        "et",
        "owner:nobody",
    ];
    let pages = [(100, 0), (1, 0), (1, 1), (2, 2), (1, 5), (2, 0)];
    let mut seen_outdated = false;
    for q in queries {
        // The count, told apart from the page logic that produces it on both sides.
        let (everything, _) = app
            .state
            .services
            .list_workspace_summaries(
                &actor,
                q,
                Page {
                    limit: 1000,
                    offset: 0,
                },
            )
            .await
            .expect("summaries");
        for (limit, offset) in pages {
            let path = format!(
                "/api/v2/workspaces?q={}&limit={limit}&offset={offset}",
                url_encode(q)
            );
            let rest = json_body(app.get(&path, Some(owner)).await).await;
            let (summaries, count) = app
                .state
                .services
                .list_workspace_summaries(&actor, q, Page { limit, offset })
                .await
                .expect("summaries");
            let context = format!("q={q:?} limit={limit} offset={offset}");
            assert_eq!(count, rest["count"].as_i64().unwrap(), "{context}");
            assert_eq!(count, everything.len() as i64, "{context}");
            let views = rest["workspaces"].as_array().unwrap();
            assert_eq!(summaries.len(), views.len(), "{context}");
            for (summary, view) in summaries.iter().zip(views) {
                let seen = json!({
                    "id": summary.id.to_string(),
                    "name": summary.name,
                    "owner_name": summary.owner_name,
                    "template_id": summary.template_id.to_string(),
                    "template_name": summary.template_name,
                    "template_display_name": summary.template_display_name,
                    "template_icon": summary.template_icon,
                    "template_active_version_id": summary.template_active_version_id.to_string(),
                    "outdated": summary.outdated(),
                    "status": summary.status().as_str(),
                    "transition": summary.transition.as_str(),
                });
                let expected = json!({
                    "id": view["id"],
                    "name": view["name"],
                    "owner_name": view["owner_name"],
                    "template_id": view["template_id"],
                    "template_name": view["template_name"],
                    "template_display_name": view["template_display_name"],
                    "template_icon": view["template_icon"],
                    "template_active_version_id": view["template_active_version_id"],
                    "outdated": view["outdated"],
                    "status": view["latest_build"]["status"],
                    "transition": view["latest_build"]["transition"],
                });
                assert_eq!(seen, expected, "{context}");
                seen_outdated |= summary.outdated();
            }
        }
    }
    assert!(seen_outdated, "the setup has outdated workspaces");
    let fancy_summary = app
        .state
        .services
        .list_workspace_summaries(
            &actor,
            "name:delta",
            Page {
                limit: 10,
                offset: 0,
            },
        )
        .await
        .expect("summaries")
        .0;
    assert_eq!(fancy_summary[0].template_display_name, "Fancy Template");
    assert_eq!(fancy_summary[0].template_icon, "/icon/fancy.svg");
}

/// Every list (REST, and the summaries the MCP tools list) orders by the name lower-cased byte by
/// byte, then the id, on both backends and across pages: a locale collation would put
/// "alpha0" before "Alpha-1" (it ignores the hyphen).
async fn lists_order_names_byte_by_byte_ignoring_case(backend: Backend) {
    use coderd::domain::Page;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    for name in ["b", "alpha0", "Alpha-1"] {
        create_workspace(&app, &owner, name, &template["id"], json!([])).await;
    }
    let expected = ["Alpha-1", "alpha0", "b"];
    assert_eq!(listed(&app, &owner, "").await, expected);
    let actor = app
        .state
        .services
        .authenticate_api_key(&owner)
        .await
        .expect("principal");
    for (filter, page) in [("", 1000), ("owner:me", 1000), ("owner:me", 1), ("", 2)] {
        let mut names = Vec::new();
        for offset in (0..expected.len() as i64).step_by(page as usize) {
            let (summaries, count) = app
                .state
                .services
                .list_workspace_summaries(
                    &actor,
                    filter,
                    Page {
                        limit: page,
                        offset,
                    },
                )
                .await
                .expect("summaries");
            assert_eq!(count, 3, "q={filter:?} limit={page} offset={offset}");
            names.extend(summaries.into_iter().map(|s| s.name));
        }
        assert_eq!(names, expected, "q={filter:?} limit={page}");
    }
    app.stop().await.unwrap();
}

/// Agents append their logs from many tasks at once; every append must land and the agent's
/// `logs_length` must stay the total of what is stored.
async fn concurrent_agent_log_appends_all_land(backend: Backend) {
    use coderd::domain::{AgentId, LogLevel};
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    let ws = create_workspace(&app, &owner, "logs", &template["id"], json!([])).await;
    let agent = AgentId(agent_id(&ws).parse().expect("agent uuid"));
    let store = app.state.services.store();
    let appends = (0..40).map(|i| {
        let store = store.clone();
        async move {
            let now = chrono::Utc::now();
            let lines = [
                (now, LogLevel::Info, format!("concurrent-{i}-a")),
                (now, LogLevel::Info, format!("concurrent-{i}-b")),
            ];
            store.insert_agent_logs(agent, &lines, 1 << 20).await
        }
    });
    for appended in futures_util::future::join_all(appends).await {
        assert!(appended.expect("the append is stored"), "under the limit");
    }
    let logs = store
        .list_agent_logs(agent, 0, 100_000)
        .await
        .expect("logs");
    let ours = logs
        .iter()
        .filter(|l| l.output.starts_with("concurrent-"))
        .count();
    assert_eq!(ours, 80);
    let stored: i64 = logs.iter().map(|l| l.output.len() as i64).sum();
    let agent = store.get_agent(agent).await.expect("agent").expect("found");
    assert_eq!(
        agent.logs_length, stored,
        "logs_length counts every stored byte"
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
