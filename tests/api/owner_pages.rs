//! What owners manage: suspending, reactivating and re-roling users through Coder's API and the
//! `coder users suspend|activate` commands; the audit trail of users, templates, workspaces and
//! API keys; and the owners' pages `/deployment/users`, `/audit` and `/deployment/general`,
//! driven as a browser without JavaScript drives them.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::cli_support::{coder_command, describe_output, output_text, run};
use crate::helpers::{
    Backend, PASSWORD, TestApp, assert_html_page, json_body, location, validation_fields,
};
use crate::mcp_support::rpc;
use crate::page_client::{Browser, csrf};
use crate::workspace_support::{build, create_template, create_workspace, import_version};

both_backends!(
    owners_suspend_activate_and_change_roles,
    suspension_stops_every_credential,
    owners_cannot_suspend_or_demote_themselves,
    owner_and_workspace_actions_are_audited,
    actions_through_mcp_tools_name_the_client_and_its_ip,
    cli_suspends_and_activates_users,
    users_page_creates_suspends_re_roles_and_deletes,
    users_page_is_for_owners_and_refuses_forms_without_csrf,
    audit_page_lists_filters_and_pages,
    deployment_page_shows_the_settings,
);

const BASIC: &str = include_str!("../../examples/templates/basic/coder.yaml");

async fn put(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> Response {
    let mut req = app.request(Method::PUT, path, Some(token));
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn user_id(app: &TestApp, owner: &str, username: &str) -> String {
    let res = app
        .get(&format!("/api/v2/users/{username}"), Some(owner))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await["id"].as_str().unwrap().to_owned()
}

async fn me_status(app: &TestApp, token: &str) -> StatusCode {
    app.get("/api/v2/users/me", Some(token)).await.status()
}

async fn login_status(app: &TestApp, email: &str) -> StatusCode {
    app.post_json(
        "/api/v2/users/login",
        None,
        &json!({"email": email, "password": PASSWORD}),
    )
    .await
    .status()
}

async fn owners_suspend_activate_and_change_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;
    let alice_id = user_id(&app, &owner, "alice").await;

    // By username or id, answered with Coder's User.
    let res = put(&app, "/api/v2/users/alice/status/suspend", &owner, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let user = json_body(res).await;
    assert_eq!(user["status"], "suspended");
    assert_eq!(user["username"], "alice");
    let listed = json_body(app.get("/api/v2/users/alice", Some(&owner)).await).await;
    assert_eq!(listed["status"], "suspended");

    let res = put(
        &app,
        &format!("/api/v2/users/{alice_id}/status/activate"),
        &owner,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["status"], "active");
    assert_eq!(me_status(&app, &alice).await, StatusCode::OK);

    // Roles: Coder's site roles; "member" is implied, so [] demotes.
    let res = put(
        &app,
        "/api/v2/users/alice/roles",
        &owner,
        Some(json!({"roles": ["owner"]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["roles"][0]["name"], "owner");
    // Alice is an owner now: she may list users.
    assert_eq!(
        app.get("/api/v2/users", Some(&alice)).await.status(),
        StatusCode::OK
    );
    let res = put(
        &app,
        "/api/v2/users/alice/roles",
        &owner,
        Some(json!({"roles": []})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["roles"], json!([]));
    assert_eq!(
        app.get("/api/v2/users", Some(&alice)).await.status(),
        StatusCode::FORBIDDEN
    );

    // An unknown role is named.
    let res = put(
        &app,
        "/api/v2/users/alice/roles",
        &owner,
        Some(json!({"roles": ["auditor"]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = json_body(res).await;
    assert_eq!(validation_fields(&body), vec!["roles"], "{body}");
    assert!(
        body["validations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("auditor"),
        "{body}"
    );

    // Members may do none of it; unknown users are 404.
    for (path, body) in [
        ("/api/v2/users/owner/status/suspend", None),
        ("/api/v2/users/owner/status/activate", None),
        ("/api/v2/users/owner/roles", Some(json!({"roles": []}))),
    ] {
        let res = put(&app, path, &alice, body).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(json_body(res).await["message"].is_string());
    }
    let res = put(&app, "/api/v2/users/nobody/status/suspend", &owner, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn suspension_stops_every_credential(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let session = app.create_member(&owner, "alice").await;
    let res = app
        .post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&session),
            &json!({"token_name": "script"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let api_token = json_body(res).await["key"].as_str().unwrap().to_owned();
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&session, &client).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let whoami = json!({"name": "coder_get_authenticated_user", "arguments": {}});
    let (status, _) = rpc(&app, &access, "tools/call", whoami.clone()).await;
    assert_eq!(status, StatusCode::OK);

    let res = put(&app, "/api/v2/users/alice/status/suspend", &owner, None).await;
    assert_eq!(res.status(), StatusCode::OK);

    // The session, the API token and the OAuth access token all stop at once; so does sign-in.
    assert_eq!(me_status(&app, &session).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &api_token).await, StatusCode::UNAUTHORIZED);
    let (status, _) = rpc(&app, &access, "tools/call", whoami.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login_status(&app, "alice@example.com").await,
        StatusCode::UNAUTHORIZED
    );
    // The browser's session cookie too: the page sends them to sign in.
    let res = app
        .client
        .get(app.url("/settings/tokens"))
        .header("Cookie", format!("coder_session_token={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Reactivated, the keys work again and they can sign in; the OAuth grant stays revoked.
    let res = put(&app, "/api/v2/users/alice/status/activate", &owner, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(me_status(&app, &api_token).await, StatusCode::OK);
    assert_eq!(
        login_status(&app, "alice@example.com").await,
        StatusCode::CREATED
    );
    let (status, _) = rpc(&app, &access, "tools/call", whoami).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn owners_cannot_suspend_or_demote_themselves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    for (path, body, words) in [
        ("/api/v2/users/me/status/suspend", None, "suspend yourself"),
        (
            "/api/v2/users/owner/status/suspend",
            None,
            "suspend yourself",
        ),
        (
            "/api/v2/users/me/roles",
            Some(json!({"roles": []})),
            "your own owner role",
        ),
    ] {
        let res = put(&app, path, &owner, body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
        let message = json_body(res).await["message"].as_str().unwrap().to_owned();
        assert!(message.contains(words), "{message}");
    }
    assert_eq!(me_status(&app, &owner).await, StatusCode::OK);
    // Keeping one's own owner role is no change, and allowed.
    let res = put(
        &app,
        "/api/v2/users/me/roles",
        &owner,
        Some(json!({"roles": ["owner"]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn audit(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let res = app
        .request(Method::GET, "/api/v2/audit", Some(token))
        .query(&[("q", q), ("limit", "1000")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    json_body(res).await["audit_logs"]
        .as_array()
        .unwrap()
        .clone()
}

fn actions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn owner_and_workspace_actions_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;

    // Users: created, re-roled, suspended, activated, deleted. Asking for what already holds
    // records nothing.
    app.create_member(&owner, "alice").await;
    let alice_id = user_id(&app, &owner, "alice").await;
    let make_owner = Some(json!({"roles": ["owner"]}));
    for (path, body) in [
        ("/api/v2/users/alice/roles", make_owner.clone()),
        ("/api/v2/users/alice/roles", make_owner),
        ("/api/v2/users/alice/status/suspend", None),
        ("/api/v2/users/alice/status/suspend", None),
        ("/api/v2/users/alice/status/activate", None),
    ] {
        assert_eq!(put(&app, path, &owner, body).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.delete("/api/v2/users/alice", Some(&owner))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // API keys: created and deleted.
    let res = app
        .post_json(
            "/api/v2/users/me/keys/tokens",
            Some(&owner),
            &json!({"token_name": "ci"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let key = json_body(res).await["key"].as_str().unwrap().to_owned();
    let key_id = key.split('-').next().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/v2/users/me/keys/{key_id}"), Some(&owner))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // A template, a second version made active, a workspace stopped, started and deleted, then
    // the template deleted.
    let template = create_template(&app, &owner, "basic", BASIC, &[]).await;
    let template_id = template["id"].as_str().unwrap();
    let v2 = import_version(&app, &owner, &[("coder.yaml", BASIC)], Some(template_id)).await;
    let res = app
        .request(
            Method::PATCH,
            &format!("/api/v2/templates/{template_id}/versions"),
            Some(&owner),
        )
        .json(&json!({"id": v2["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let ws = create_workspace(&app, &owner, "dev", &template["id"], json!([])).await;
    for transition in ["stop", "start", "delete"] {
        build(&app, &owner, &ws, transition).await;
    }
    assert_eq!(
        app.delete(&format!("/api/v2/templates/{template_id}"), Some(&owner))
            .await
            .status(),
        StatusCode::OK
    );

    let all = audit(&app, &owner, "").await;
    let seen = actions(&all);
    for expected in [
        "user.create",
        "user.login",
        "user.role.update",
        "user.suspend",
        "user.activate",
        "user.delete",
        "api_key.create",
        "api_key.delete",
        "template.version.create",
        "template.create",
        "template.active_version.update",
        "template.delete",
        "workspace.create",
        "workspace.build",
    ] {
        assert!(seen.iter().any(|a| a == expected), "{expected} in {seen:?}");
    }
    // Every entry but alice's own sign-in names the owner who acted, and the address they came
    // from.
    for entry in &all {
        assert!(!entry["ip"].as_str().unwrap().is_empty(), "{entry}");
        if entry["action"] != "user.login" {
            assert_eq!(entry["user"]["username"], "owner", "{entry}");
        }
    }

    // Each build records its transition, newest first.
    let builds = audit(&app, &owner, "action:workspace.build").await;
    let transitions: Vec<&str> = builds
        .iter()
        .map(|b| b["additional_fields"]["transition"].as_str().unwrap())
        .collect();
    assert_eq!(transitions, ["delete", "start", "stop", "start"]);
    assert_eq!(builds[0]["resource_id"], ws["id"]);
    assert_eq!(builds[0]["additional_fields"]["name"], "dev");

    // The user entries are about alice, by id, with her name in the details.
    let about_alice = audit(&app, &owner, &format!("resource_id:{alice_id}")).await;
    assert_eq!(
        actions(&about_alice),
        [
            "user.delete",
            "user.activate",
            "user.suspend",
            "user.role.update",
            "user.create"
        ]
    );
    assert_eq!(about_alice[3]["additional_fields"]["from"], "member");
    assert_eq!(about_alice[3]["additional_fields"]["to"], "owner");
    assert_eq!(about_alice[4]["additional_fields"]["username"], "alice");

    let keys = audit(&app, &owner, "resource_type:api_key action:api_key.create").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["resource_id"], key_id.as_str());
    assert_eq!(keys[0]["additional_fields"]["token_name"], "ci");
}

async fn actions_through_mcp_tools_name_the_client_and_its_ip(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let template = create_template(&app, &owner, "basic", BASIC, &[]).await;
    let client = app.register_claude().await;
    let tokens = app.obtain_tokens(&owner, &client).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, body) = rpc(
        &app,
        access,
        "tools/call",
        json!({"name": "coder_create_workspace", "arguments": {
            "template_version_id": template["active_version_id"],
            "name": "agentic",
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"]["isError"], false, "{body}");

    let created = audit(&app, &owner, "action:workspace.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["client_id"], client.id.as_str());
    assert_eq!(created[0]["user"]["username"], "owner");
    assert_eq!(created[0]["additional_fields"]["name"], "agentic");
    assert_eq!(created[0]["ip"], "127.0.0.1");
}

/// Runs the real `coder` as the holder of `token`.
async fn coder(app: &TestApp, token: &str, args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = coder_command(args);
    cmd.env("HOME", home.path())
        .env("CODER_CONFIG_DIR", home.path().join("cfg"))
        .env("CODER_URL", &app.url)
        .env("CODER_SESSION_TOKEN", token);
    run(cmd).await
}

async fn cli_suspends_and_activates_users(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let alice = app.create_member(&owner, "alice").await;

    let out = coder(&app, &owner, &["users", "suspend", "alice"]).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert!(
        output_text(&out).contains("User alice has been suspended."),
        "{}",
        describe_output(&out)
    );
    assert_eq!(me_status(&app, &alice).await, StatusCode::UNAUTHORIZED);
    let listed = json_body(app.get("/api/v2/users/alice", Some(&owner)).await).await;
    assert_eq!(listed["status"], "suspended");

    let out = coder(&app, &owner, &["users", "activate", "alice"]).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert!(output_text(&out).contains("User alice has been activated."));
    assert_eq!(me_status(&app, &alice).await, StatusCode::OK);

    // A member is refused, in one line, and nothing changes.
    let out = coder(&app, &alice, &["users", "suspend", "owner"]).await;
    assert!(!out.status.success(), "{}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot suspend the user"), "{stderr}");
    assert_eq!(me_status(&app, &owner).await, StatusCode::OK);
}

/// The row of the users table that names `username`.
fn row<'a>(html: &'a str, username: &str) -> &'a str {
    let start = html
        .find(&format!("<td>{username}"))
        .unwrap_or_else(|| panic!("a row for {username}: {html}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

async fn users_page_creates_suspends_re_roles_and_deletes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let browser = Browser::new(&app, Some(&owner));

    let html = browser.page("/deployment/users").await;
    assert!(html.contains("aria-current=\"page\">Users"), "{html}");
    for label in [
        "<label for=\"new-username\">Username</label>",
        "<label for=\"new-email\">Email</label>",
        "<label for=\"new-password\">Password</label>",
        "<label for=\"new-role\">Role</label>",
    ] {
        assert!(html.contains(label), "{label}: {html}");
    }
    let mine = row(&html, "owner");
    assert!(mine.contains("Owner") && mine.contains("Active") && mine.contains("(you)"));
    assert!(
        !mine.contains("<form"),
        "no actions on one's own row: {mine}"
    );
    let token = csrf(&html);

    // Create: post, redirect, get.
    let res = browser
        .post(
            "/deployment/users",
            &[
                ("csrf_token", &token),
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", PASSWORD),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res).to_owned();
    assert_eq!(to, "/deployment/users?done=created&user=bob");
    let html = browser.page(&to).await;
    assert!(html.contains("Created bob."), "{html}");
    let bob = row(&html, "bob").to_owned();
    assert!(bob.contains("bob@example.com") && bob.contains("Member") && bob.contains("Active"));
    assert!(bob.contains("aria-label=\"Suspend bob\""), "{bob}");
    assert_eq!(
        login_status(&app, "bob@example.com").await,
        StatusCode::CREATED
    );
    let bob_id = user_id(&app, &owner, "bob").await;

    // A refused create shows the page again with the reason, the status and what was typed.
    let res = browser
        .post(
            "/deployment/users",
            &[
                ("csrf_token", &token),
                ("username", "bob"),
                ("email", "other@example.com"),
                ("password", PASSWORD),
                ("role", "owner"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("role=\"alert\">A user with this username already exists."),
        "{html}"
    );
    assert!(html.contains("value=\"other@example.com\""), "{html}");
    assert!(html.contains("<option value=\"owner\" selected>"), "{html}");
    let res = browser
        .post(
            "/deployment/users",
            &[
                ("csrf_token", &token),
                ("username", "carol"),
                ("email", "not-an-email"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("email:"));

    // Suspend, activate, make owner, make member.
    for (action, done, check) in [
        ("suspend", "suspended", "Suspended"),
        ("activate", "activated", "Active"),
        ("owner", "owner", "Owner"),
        ("member", "member", "Member"),
    ] {
        let res = browser
            .post(
                &format!("/deployment/users/{bob_id}/{action}"),
                &[("csrf_token", &token)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{action}");
        let to = location(&res).to_owned();
        assert_eq!(to, format!("/deployment/users?done={done}&user=bob"));
        let html = browser.page(&to).await;
        assert!(row(&html, "bob").contains(check), "{action}: {html}");
        if action == "suspend" {
            assert_eq!(
                login_status(&app, "bob@example.com").await,
                StatusCode::UNAUTHORIZED
            );
            assert!(row(&html, "bob").contains("aria-label=\"Activate bob\""));
        }
    }

    // The page refuses what the API refuses, with the same status.
    let owner_id = user_id(&app, &owner, "owner").await;
    let res = browser
        .post(
            &format!("/deployment/users/{owner_id}/suspend"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("You cannot suspend yourself.")
    );
    let res = browser
        .post(
            &format!("/deployment/users/{bob_id}/promote"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Delete.
    let res = browser
        .post(
            &format!("/deployment/users/{bob_id}/delete"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = browser.page(location(&res)).await;
    assert!(html.contains("Deleted bob."), "{html}");
    assert!(!html.contains("<td>bob"), "{html}");
    assert_eq!(
        login_status(&app, "bob@example.com").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn users_page_is_for_owners_and_refuses_forms_without_csrf(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "alice").await;
    let alice_id = user_id(&app, &owner, "alice").await;

    // Visitors are sent to sign in, and back; members get the 403 page, for reads and forms.
    let visitor = Browser::new(&app, None);
    for (path, back) in [
        ("/deployment/users", "%2Fdeployment%2Fusers"),
        ("/audit", "%2Faudit"),
        ("/deployment/general", "%2Fdeployment%2Fgeneral"),
    ] {
        let res = visitor.get(path).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&res), format!("/login?redirect={back}"));
    }
    let alice = Browser::new(&app, Some(&member));
    for path in ["/deployment/users", "/audit", "/deployment/general"] {
        let res = alice.get(path).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert_html_page(&res);
        assert!(res.text().await.unwrap().contains("<h1>Not allowed</h1>"));
    }
    let html = alice.page("/workspaces").await;
    assert!(
        !html.contains("href=\"/deployment/users\""),
        "no owner links for members: {html}"
    );
    let alice_csrf = csrf(&html);
    let res = alice
        .post(
            "/deployment/users",
            &[
                ("csrf_token", &alice_csrf),
                ("username", "mallory"),
                ("email", "mallory@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        login_status(&app, "mallory@example.com").await,
        StatusCode::UNAUTHORIZED
    );

    // Without the CSRF token (or with another session's), nothing changes.
    let browser = Browser::new(&app, Some(&owner));
    let html = browser.page("/deployment/users").await;
    for nav in [
        "<a href=\"/deployment/users\" aria-current=\"page\">Users</a>",
        "<a href=\"/audit\">Audit</a>",
        "<a href=\"/deployment/general\">Deployment</a>",
    ] {
        assert!(html.contains(nav), "{nav}: {html}");
    }
    for form in [vec![], vec![("csrf_token", alice_csrf.as_str())]] {
        let res = browser
            .post(&format!("/deployment/users/{alice_id}/suspend"), &form)
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let mut create = form.clone();
        create.extend([
            ("username", "eve"),
            ("email", "eve@example.com"),
            ("password", PASSWORD),
        ]);
        let res = browser.post("/deployment/users", &create).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(me_status(&app, &member).await, StatusCode::OK);
    assert_eq!(
        login_status(&app, "eve@example.com").await,
        StatusCode::UNAUTHORIZED
    );
}

async fn audit_page_lists_filters_and_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let member = app.create_member(&owner, "alice").await;
    for name in ["one", "two"] {
        let res = app
            .post_json(
                "/api/v2/users/me/keys/tokens",
                Some(&member),
                &json!({"token_name": name}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let browser = Browser::new(&app, Some(&owner));

    let html = browser.page("/audit").await;
    assert!(html.contains("aria-current=\"page\">Audit"), "{html}");
    for label in [
        "<label for=\"f-user\">User</label>",
        "<label for=\"f-action\">Action</label>",
        "<label for=\"f-resource\">Resource type</label>",
        "<label for=\"f-from\">From (UTC)</label>",
        "<label for=\"f-to\">To (UTC)</label>",
    ] {
        assert!(html.contains(label), "{label}: {html}");
    }
    // Newest first: alice's second token, her first, her sign-in, her account's creation...
    let order: Vec<usize> = [
        "token_name: two",
        "token_name: one",
        "<code class=\"id\">user.create</code>",
    ]
    .iter()
    .map(|needle| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {html}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // Filters: by user (name or email), action, resource type, time.
    let html = browser
        .page("/audit?user=alice&action=api_key.create")
        .await;
    assert_eq!(
        html.matches("<code class=\"id\">api_key.create</code>")
            .count(),
        2,
        "{html}"
    );
    assert!(html.contains("Showing 1–2 of 2."), "{html}");
    assert!(html.contains("value=\"alice\""), "the filter stays: {html}");
    let html = browser
        .page("/audit?user=alice%40example.com&action=user.login")
        .await;
    assert!(
        html.contains("<code class=\"id\">user.login</code>"),
        "{html}"
    );
    assert!(
        !html.contains("<code class=\"id\">api_key.create</code>"),
        "{html}"
    );
    let html = browser
        .page("/audit?from=2000-01-01T00:00&to=2000-01-02T00:00")
        .await;
    assert!(html.contains("No entries match."), "{html}");
    let html = browser.page("/audit?from=2000-01-01T00:00").await;
    assert!(
        html.contains("<code class=\"id\">api_key.create</code>"),
        "{html}"
    );

    // Paging: 50 entries a page, links that keep the filters.
    for i in 0..50 {
        let res = app
            .post_json(
                "/api/v2/users/me/keys/tokens",
                Some(&member),
                &json!({"token_name": format!("t{i}")}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let html = browser.page("/audit?action=api_key.create").await;
    assert!(html.contains("Showing 1–50 of 52."), "{html}");
    let next = "/audit?action=api_key.create&#38;offset=50";
    assert!(html.contains(next), "{html}");
    let html = browser.page(&next.replace("&#38;", "&")).await;
    assert!(html.contains("Showing 51–52 of 52."), "{html}");
    assert!(html.contains("token_name: one"), "{html}");
    assert!(html.contains("Newer entries"), "{html}");

    // A filter the search cannot take is a 400 page that says why.
    let res = browser.get("/audit?action=two%20words").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Must not contain spaces")
    );
    let res = browser.get("/audit?from=yesterday").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("date_from:yesterday"));
    let res = browser.get("/audit?offset=many").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn deployment_page_shows_the_settings(backend: Backend) {
    let postgres = matches!(backend, Backend::Postgres(_));
    let app = TestApp::spawn(backend).await;
    let owner = app.create_owner().await;
    let browser = Browser::new(&app, Some(&owner));
    let html = browser.page("/deployment/general").await;
    assert!(html.contains("aria-current=\"page\">Deployment"), "{html}");
    let access_url = app.url.trim_end_matches('/');
    assert!(html.contains(access_url), "{html}");
    let database = if postgres { "PostgreSQL" } else { "SQLite" };
    assert!(
        html.contains(&format!("<dt>Database</dt><dd>{database}")),
        "{html}"
    );
    assert!(html.contains("<code>oauth2</code>"), "{html}");
    assert!(
        html.contains("<dt>OAuth2 provider</dt><dd>Enabled"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<dt>Version</dt><dd>{}",
            env!("CARGO_PKG_VERSION")
        )),
        "{html}"
    );
    // Read-only: no form but sign-out.
    assert_eq!(html.matches("<form").count(), 1, "{html}");
}
