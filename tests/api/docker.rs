//! The docker provisioner against a real Docker engine: a member's workspace from
//! `examples/templates/docker` is a container whose commands and files work through REST and
//! MCP, whose home survives stop and start, which cannot reach the database or the Docker
//! socket, which outlives a killed server, and which delete removes with its volume.
//!
//! These need `dockerd` and the local base image `coderd-base:bookworm` (built from Debian's
//! packages, no registry: see examples/templates/docker/README.md); `.ci/test-setup` makes
//! both, and `.ci/run` runs them. Without them they fail, saying what is missing.

use bollard::Docker;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::mcp_support::call;
use crate::templates::tar_dir;
use crate::workspace_support::{
    agent_id, app_workspace, build, create_workspace, exec, poll, upload,
};

both_backends!(
    a_container_workspace_works_keeps_its_home_and_is_removed_on_delete,
    a_container_reaches_neither_the_database_nor_the_docker_socket,
    what_happens_to_containers_behind_coders_back_is_reconciled,
    a_daemon_runs_the_container_workspaces_tagged_for_it,
);

const BASE_IMAGE: &str = "coderd-base:bookworm";

/// The engine, failing loudly (with the fix) when there is none or it lacks the base image.
async fn engine() -> Docker {
    let docker = Docker::connect_with_local_defaults()
        .unwrap_or_else(|e| panic!("no Docker engine ({e}): run .ci/test-setup (as root)"));
    if let Err(e) = docker.ping().await {
        panic!("the Docker engine does not answer ({e}): run .ci/test-setup (as root)");
    }
    if docker.inspect_image(BASE_IMAGE).await.is_err() {
        panic!("the Docker engine has no {BASE_IMAGE}: run .ci/test-setup (as root)");
    }
    docker
}

/// The docker example as a template named `docker`.
async fn docker_template(app: &TestApp, owner: &str) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates/docker");
    let file_id = upload(app, owner, tar_dir(&dir)).await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(owner),
            &json!({"file_id": file_id}),
        )
        .await;
    let version = json_body(res).await;
    let version = poll(
        app,
        owner,
        &format!(
            "/api/v2/templateversions/{}",
            version["id"].as_str().unwrap()
        ),
        |v| v["job"]["status"] != "pending" && v["job"]["status"] != "running",
    )
    .await;
    assert_eq!(version["job"]["status"], "succeeded", "{version}");
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(owner),
            &json!({"name": "docker", "template_version_id": version["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(res).await
}

fn container(ws: &Value) -> String {
    format!("coder-{}", ws["id"].as_str().unwrap())
}

fn volume(ws: &Value) -> String {
    format!("coder-{}-home", ws["id"].as_str().unwrap())
}

async fn a_container_workspace_works_keeps_its_home_and_is_removed_on_delete(backend: Backend) {
    let docker = engine().await;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = docker_template(&app, &owner).await;
    let member = app.create_member(&owner, "alice").await;
    let ws = create_workspace(&app, &member, "box", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    let agent = agent_id(&ws);

    // What runs is the container: its image, its hostname, its user, its limits.
    let inspected = docker
        .inspect_container(&container(&ws), None)
        .await
        .unwrap();
    let host = inspected.host_config.clone().unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.privileged, Some(false));
    assert!(
        host.security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o == "no-new-privileges")
    );
    assert_eq!(host.pids_limit, Some(4096));
    assert_eq!(
        host.memory,
        Some(1 << 30),
        "the template's 1GiB, under the server's 4GiB"
    );
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert!(
        !host
            .binds
            .unwrap_or_default()
            .iter()
            .any(|b| b.contains("docker.sock")),
        "the Docker socket is never mounted into a workspace"
    );
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels["coder.workspace_id"], ws["id"].as_str().unwrap());

    let out = exec(
        &app,
        &member,
        &agent,
        "id -u; hostname; cat /etc/coder-image; pwd; ls -d ~/work",
    )
    .await;
    assert_eq!(
        out["output"],
        "1000\nbox\nbuilt from examples/templates/docker\n/home/coder\n/home/coder/work\n",
        "{out}"
    );
    // Through MCP as well: a command, a file written and read back.
    let bash = call(
        &app,
        &member,
        "coder_workspace_bash",
        json!({"workspace": "box", "command": "echo hi"}),
    )
    .await;
    assert_eq!(bash["output"], "hi\n");
    call(
        &app,
        &member,
        "coder_workspace_write_file",
        json!({"workspace": "box", "path": "notes.txt", "content": "kept across restarts"}),
    )
    .await;
    let read = call(
        &app,
        &member,
        "coder_workspace_read_file",
        json!({"workspace": "box", "path": "notes.txt"}),
    )
    .await;
    assert_eq!(read["content"], "kept across restarts");

    // Stop removes the container and keeps the volume; start brings the files back.
    let stopped = build(&app, &member, &ws, "stop").await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert!(
        docker
            .inspect_container(&container(&ws), None)
            .await
            .is_err()
    );
    assert!(docker.inspect_volume(&volume(&ws)).await.is_ok());
    let started = build(&app, &member, &ws, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    let ws = app_workspace(&app, &member, &ws["id"]).await;
    let out = exec(&app, &member, &agent_id(&ws), "cat notes.txt").await;
    assert_eq!(out["output"], "kept across restarts");

    // Delete removes both.
    let deleted = build(&app, &member, &ws, "delete").await;
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    assert!(
        docker
            .inspect_container(&container(&ws), None)
            .await
            .is_err()
    );
    assert!(docker.inspect_volume(&volume(&ws)).await.is_err());
    app.stop().await.unwrap();
}

async fn a_container_reaches_neither_the_database_nor_the_docker_socket(backend: Backend) {
    let docker = engine().await;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = docker_template(&app, &owner).await;
    let ws = create_workspace(&app, &owner, "walled", &template["id"], json!([])).await;
    let data = app.db.dir.path().display().to_string();
    let probe = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && echo reached-postgres; \
         for s in /var/run/docker.sock /run/docker.sock; do test -e $s && echo saw-$s; done; \
         ls /var/run/postgresql /run/postgresql 2>/dev/null | grep -q PGSQL && echo saw-pg-socket; \
         test -e {data} && echo saw-data-dir; \
         ls /sys/class/net | grep -v '^lo$' | head -1; \
         echo probed"
    );
    let out = exec(&app, &owner, &agent_id(&ws), &probe).await;
    assert_eq!(
        out["output"], "probed\n",
        "a container reached the host: {out}"
    );
    build(&app, &owner, &ws, "delete").await;
    assert!(docker.inspect_volume(&volume(&ws)).await.is_err());
    app.stop().await.unwrap();
}

/// At start (and every minute) the server reconciles its engine with the database: a
/// container removed by hand makes its running workspace failed, saying why, and a start
/// brings it back with its files; what is left of a deleted workspace is removed.
async fn what_happens_to_containers_behind_coders_back_is_reconciled(backend: Backend) {
    let docker = engine().await;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = docker_template(&app, &owner).await;
    let gone = create_workspace(&app, &owner, "gone", &template["id"], json!([])).await;
    let orphan = create_workspace(&app, &owner, "orphan", &template["id"], json!([])).await;
    exec(&app, &owner, &agent_id(&gone), "echo mine > keep.txt").await;

    // Behind Coder's back: one container removed, one workspace deleted without its build
    // (as when a server dies in the middle of one).
    docker
        .remove_container(
            &container(&gone),
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let orphan_id = coderd::domain::WorkspaceId(orphan["id"].as_str().unwrap().parse().unwrap());
    app.state
        .services
        .store()
        .mark_workspace_deleted(orphan_id, app.state.services.clock().now())
        .await
        .unwrap();
    let app = app.restart().await;

    let failed = poll(
        &app,
        &owner,
        &format!("/api/v2/workspaces/{}", gone["id"].as_str().unwrap()),
        |w| w["latest_build"]["status"] == "failed",
    )
    .await;
    let error = failed["latest_build"]["job"]["error"].as_str().unwrap();
    assert!(error.contains("ended outside Coder"), "{error}");
    assert_eq!(failed["latest_build"]["reason"], "reconcile");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while docker.inspect_volume(&volume(&orphan)).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the orphan's volume was not removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        docker
            .inspect_container(&container(&orphan), None)
            .await
            .is_err()
    );

    let started = build(&app, &owner, &gone, "start").await;
    assert_eq!(started["status"], "running", "{started}");
    let ws = app_workspace(&app, &owner, &gone["id"]).await;
    assert_eq!(
        exec(&app, &owner, &agent_id(&ws), "cat keep.txt").await["output"],
        "mine\n"
    );
    build(&app, &owner, &ws, "delete").await;
    app.stop().await.unwrap();
}

/// A provisioner daemon runs container workspaces too, on its host's engine, for templates
/// tagged for it; a template may give the container named capabilities back.
async fn a_daemon_runs_the_container_workspaces_tagged_for_it(backend: Backend) {
    let docker = engine().await;
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/provisionerkeys",
            Some(&owner),
            &json!({"name": "containers", "tags": {"pool": "containers"}}),
        )
        .await;
    let key = json_body(res).await["key"].as_str().unwrap().to_owned();
    let daemon_data = tempfile::tempdir().unwrap();
    let _daemon = crate::provisioner_daemons::start_daemon(&app, &key, daemon_data.path());
    let manifest = format!(
        "provisioner: docker\ndocker:\n  image: {BASE_IMAGE}\n  capabilities: [NET_BIND_SERVICE]\n"
    );
    let file_id = upload(
        &app,
        &owner,
        crate::workspace_support::tar_of(&[("coder.yaml", &manifest)]),
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&owner),
            &json!({"file_id": file_id, "tags": {"pool": "containers"}}),
        )
        .await;
    let version = json_body(res).await;
    let version = poll(
        &app,
        &owner,
        &format!(
            "/api/v2/templateversions/{}",
            version["id"].as_str().unwrap()
        ),
        |v| v["job"]["status"] == "succeeded",
    )
    .await;
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(&owner),
            &json!({"name": "remote-containers", "template_version_id": version["id"]}),
        )
        .await;
    let template = json_body(res).await;
    let ws = create_workspace(&app, &owner, "far-box", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "running", "{ws}");
    let out = exec(&app, &owner, &agent_id(&ws), "echo from the daemon engine").await;
    assert_eq!(out["output"], "from the daemon engine\n");

    let daemon_id = std::fs::read_to_string(daemon_data.path().join("provisioner-id")).unwrap();
    let inspected = docker
        .inspect_container(&container(&ws), None)
        .await
        .unwrap();
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(
        labels["coder.provisioner_id"],
        daemon_id.trim(),
        "the daemon made it"
    );
    let host = inspected.host_config.unwrap();
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(host.cap_add, Some(vec!["NET_BIND_SERVICE".to_owned()]));

    let deleted = build(&app, &owner, &ws, "delete").await;
    assert_eq!(deleted["status"], "deleted", "{deleted}");
    assert!(docker.inspect_volume(&volume(&ws)).await.is_err());
    app.stop().await.unwrap();
}

/// A server whose Docker engine cannot be reached says so, naming the address, when a
/// container workspace starts; its local workspaces are not affected.
#[test]
fn an_unreachable_engine_is_named_in_the_failed_build() {
    crate::helpers::run_test(an_unreachable_engine_is_named_in_the_failed_build_body());
}

async fn an_unreachable_engine_is_named_in_the_failed_build_body() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.experiments = coderd::domain::Experiments::of(&coderd::domain::Experiment::ALL);
        c.workspaces.docker_host = "unix:///nonexistent/docker.sock".into();
    })
    .await;
    let owner = app.create_owner().await;
    let manifest = format!("provisioner: docker\ndocker:\n  image: {BASE_IMAGE}\n");
    let template =
        crate::workspace_support::create_template(&app, &owner, "containers", &manifest, &[]).await;
    let ws = create_workspace(&app, &owner, "nowhere", &template["id"], json!([])).await;
    assert_eq!(ws["latest_build"]["status"], "failed", "{ws}");
    let error = ws["latest_build"]["job"]["error"].as_str().unwrap();
    assert!(
        error.contains("unix:///nonexistent/docker.sock") && error.contains("--docker-host"),
        "{error}"
    );
    let local = crate::workspace_support::create_template(&app, &owner, "local", "", &[]).await;
    let near = create_workspace(&app, &owner, "near", &local["id"], json!([])).await;
    assert_eq!(near["latest_build"]["status"], "running");
    app.stop().await.unwrap();
}
