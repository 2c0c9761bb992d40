//! Template archives, version imports (valid and invalid manifests), templates and their
//! management rules.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, json_body};
use crate::workspace_support::{
    build, create_template, create_workspace, import_version, patch_json, tar_of, upload,
};

both_backends!(
    template_versions_import_and_templates_are_managed,
    invalid_manifests_fail_the_import_naming_the_line,
    uploads_are_checked,
    deleting_a_template_with_workspaces_is_refused,
);

const MANIFEST: &str = "parameters:\n  - name: size\n    type: number\n    default: 1\n    mutable: true\n    validation:\n      min: 1\n      max: 4\n  - name: tools\n    type: list(string)\n    default: [git]\n    options:\n      - name: Git\n        value: git\n      - name: Make\n        value: make\napps:\n  - slug: docs\n    url: https://example.com\n";

async fn template_versions_import_and_templates_are_managed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let org = json_body(app.get("/api/v2/organizations/coder", Some(&owner)).await).await;
    assert_eq!(org["name"], "coder");
    assert_eq!(org["is_default"], true);
    let by_id = app
        .get(
            &format!("/api/v2/organizations/{}", org["id"].as_str().unwrap()),
            Some(&owner),
        )
        .await;
    assert_eq!(by_id.status(), StatusCode::OK);

    let version = import_version(
        &app,
        &owner,
        &[("coder.yaml", MANIFEST), ("README.md", "# Readme")],
        None,
    )
    .await;
    assert_eq!(version["job"]["status"], "succeeded", "{version}");
    assert_eq!(version["job"]["type"], "template_version_import");
    assert_eq!(version["readme"], "# Readme");
    assert_eq!(version["template_id"], serde_json::Value::Null);
    let id = version["id"].as_str().unwrap();
    let params = json_body(
        app.get(
            &format!("/api/v2/templateversions/{id}/rich-parameters"),
            Some(&owner),
        )
        .await,
    )
    .await;
    assert_eq!(params[0]["name"], "size");
    assert_eq!(params[0]["type"], "number");
    assert_eq!(params[0]["validation_min"], 1);
    assert_eq!(params[0]["validation_max"], 4);
    assert_eq!(params[0]["default_value"], "1");
    assert_eq!(params[0]["mutable"], true);
    assert_eq!(params[0]["required"], false);
    assert_eq!(params[1]["default_value"], "[\"git\"]");
    assert_eq!(params[1]["options"][1]["value"], "make");
    let logs = json_body(
        app.get(&format!("/api/v2/templateversions/{id}/logs"), Some(&owner))
            .await,
    )
    .await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["output"].as_str().unwrap().contains("2 parameter(s)")),
        "{logs}"
    );

    let res = app
        .post_json("/api/v2/organizations/coder/templates", Some(&owner), &json!({"name": "docs", "display_name": "Docs", "description": "d", "template_version_id": id}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let template = json_body(res).await;
    assert_eq!(template["active_version_id"], id);
    assert_eq!(template["organization_name"], "coder");
    assert_eq!(template["created_by_name"], "owner");
    let tid = template["id"].as_str().unwrap();
    // The same name again, or the same version again, is a conflict.
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templates",
            Some(&owner),
            &json!({"name": "docs", "template_version_id": id}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        json_body(
            app.get(&format!("/api/v2/templates/{tid}"), Some(&owner))
                .await
        )
        .await["name"],
        "docs"
    );
    assert_eq!(
        json_body(
            app.get("/api/v2/organizations/coder/templates/docs", Some(&owner))
                .await
        )
        .await["id"],
        tid
    );
    let list = json_body(
        app.get("/api/v2/organizations/coder/templates", Some(&owner))
            .await,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A second version of the template becomes active.
    let v2 = import_version(&app, &owner, &[("coder.yaml", "")], Some(tid)).await;
    assert_eq!(v2["template_id"], tid);
    let versions = json_body(
        app.get(&format!("/api/v2/templates/{tid}/versions"), Some(&owner))
            .await,
    )
    .await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let res = patch_json(
        &app,
        &format!("/api/v2/templates/{tid}/versions"),
        &owner,
        &json!({"id": v2["id"]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        json_body(
            app.get(&format!("/api/v2/templates/{tid}"), Some(&owner))
                .await
        )
        .await["active_version_id"],
        v2["id"]
    );
    // A version of another template cannot become active.
    let foreign = import_version(&app, &owner, &[("coder.yaml", "")], None).await;
    let res = patch_json(
        &app,
        &format!("/api/v2/templates/{tid}/versions"),
        &owner,
        &json!({"id": foreign["id"]}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Malformed ids are 400, unknown ones 404.
    assert_eq!(
        app.get("/api/v2/templates/nope", Some(&owner))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(
            &format!("/api/v2/templates/{}", uuid::Uuid::new_v4()),
            Some(&owner)
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/v2/organizations/acme", Some(&owner))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await.unwrap();
}

async fn invalid_manifests_fail_the_import_naming_the_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for (manifest, expected) in [
        ("parameters:\n  - name: a\n    colour: red\n", "line 3"),
        ("agent:\n  startup_timeout: soon\n", "line 2"),
        (
            "parameters:\n  - name: ok\n    default: x\n  - name: size\n    type: number\n    default: 9\n    validation:\n      max: 4\n",
            "\"size\" (line 4)",
        ),
        ("parameters: [\n", "coder.yaml"),
    ] {
        let version = import_version(&app, &owner, &[("coder.yaml", manifest)], None).await;
        assert_eq!(version["job"]["status"], "failed", "{version}");
        let error = version["job"]["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{error} should mention {expected}"
        );
        let logs = json_body(
            app.get(
                &format!(
                    "/api/v2/templateversions/{}/logs",
                    version["id"].as_str().unwrap()
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
                .any(|l| l["log_level"] == "error" && l["output"] == error),
            "{logs}"
        );
        // A failed version has no parameters and cannot back a template.
        let res = app
            .get(
                &format!(
                    "/api/v2/templateversions/{}/rich-parameters",
                    version["id"].as_str().unwrap()
                ),
                Some(&owner),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let res = app
            .post_json(
                "/api/v2/organizations/coder/templates",
                Some(&owner),
                &json!({"name": "t", "template_version_id": version["id"]}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    let version = import_version(&app, &owner, &[("main.tf", "")], None).await;
    assert_eq!(version["job"]["status"], "failed");
    assert!(
        version["job"]["error"]
            .as_str()
            .unwrap()
            .contains("no coder.yaml")
    );
    app.stop().await.unwrap();
}

async fn uploads_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "bob").await;
    let tar = tar_of(&[("coder.yaml", "")]);
    let post = |token: &str, content_type: &str, body: Vec<u8>| {
        app.request(Method::POST, "/api/v2/files", Some(token))
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    let res = post(&owner, "application/x-tar", tar.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json_body(res).await["hash"].as_str().unwrap().to_owned();
    // The same bytes again give the same file.
    let res = post(&owner, "application/x-tar", tar.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["hash"], id);
    let res = app.get(&format!("/api/v2/files/{id}"), Some(&owner)).await;
    assert_eq!(res.headers()["content-type"], "application/x-tar");
    assert_eq!(res.bytes().await.unwrap().to_vec(), tar);
    assert_eq!(
        app.get(&format!("/api/v2/files/{id}"), Some(&member))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        post(&owner, "application/zip", tar.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let res = post(
        &owner,
        "application/x-tar",
        b"this is not a tar archive at all, only text".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .unwrap()
            .contains("tar")
    );
    let res = post(&owner, "application/x-tar", vec![1u8; 11 * 1024 * 1024])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        post(&member, "application/x-tar", tar.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&app, &owner, tar_of(&[("a.txt", "x")])).await.len(),
        36
    );
    // Members cannot create versions either.
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&member),
            &json!({"file_id": id}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .post_json(
            "/api/v2/organizations/coder/templateversions",
            Some(&owner),
            &json!({"file_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(res).await["validations"][0]["field"], "file_id");
    app.stop().await.unwrap();
}

async fn deleting_a_template_with_workspaces_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", "", &[]).await;
    let ws = create_workspace(&app, &owner, "w", &template["id"], json!([])).await;
    let path = format!("/api/v2/templates/{}", template["id"].as_str().unwrap());
    let res = app.delete(&path, Some(&owner)).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(
        json_body(res).await["message"]
            .as_str()
            .unwrap()
            .contains("1 workspace")
    );
    let member = app.create_member(&owner, "bob").await;
    assert_eq!(
        app.delete(&path, Some(&member)).await.status(),
        StatusCode::FORBIDDEN
    );
    build(&app, &owner, &ws, "delete").await;
    assert_eq!(
        app.delete(&path, Some(&owner)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(&path, Some(&owner)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, Some(&owner)).await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await.unwrap();
}

/// A tar of a directory, as `tar -cf x.tar -C dir .` makes it.
pub fn tar_dir(dir: &std::path::Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap()
}

#[test]
fn the_example_templates_import_and_start() {
    crate::helpers::run_test(the_example_templates_import_and_start_body());
}

async fn the_example_templates_import_and_start_body() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.create_owner().await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/templates");
    for (name, check, expected) in [
        (
            "basic",
            "cat ~/README.md | head -1; ls -d ~/projects",
            "# Basic workspace\n/home/coder/projects\n",
        ),
        (
            "python",
            "pwd; test -f app.py && echo has-app",
            "/home/coder/app\nhas-app\n",
        ),
    ] {
        let file_id = upload(&app, &owner, tar_dir(&examples.join(name))).await;
        let res = app
            .post_json(
                "/api/v2/organizations/coder/templateversions",
                Some(&owner),
                &json!({"file_id": file_id}),
            )
            .await;
        let version = json_body(res).await;
        let version = crate::workspace_support::poll(
            &app,
            &owner,
            &format!(
                "/api/v2/templateversions/{}",
                version["id"].as_str().unwrap()
            ),
            |v| v["job"]["status"] != "pending" && v["job"]["status"] != "running",
        )
        .await;
        assert_eq!(version["job"]["status"], "succeeded", "{name}: {version}");
        let res = app
            .post_json(
                "/api/v2/organizations/coder/templates",
                Some(&owner),
                &json!({"name": name, "template_version_id": version["id"]}),
            )
            .await;
        let template = json_body(res).await;
        let ws = create_workspace(&app, &owner, name, &template["id"], json!([])).await;
        assert_eq!(ws["latest_build"]["status"], "running", "{name}: {ws}");
        let agent = crate::workspace_support::agent_of(&ws);
        assert_eq!(agent["lifecycle_state"], "ready", "{name}: {agent}");
        let out =
            crate::workspace_support::exec(&app, &owner, agent["id"].as_str().unwrap(), check)
                .await;
        assert_eq!(out["output"], expected, "{name}");
        build(&app, &owner, &ws, "delete").await;
    }
    app.stop().await.unwrap();
}
