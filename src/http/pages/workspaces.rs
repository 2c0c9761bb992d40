//! The workspace pages: the list with filters, the create form generated from a template's
//! parameters, and a workspace's page (start, stop, restart, delete; build history; build logs,
//! reloaded while a build runs). Every form posts with the CSRF token and redirects (303).

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::form::SignedInForm;
use super::{error_page, error_status, see_other, signed_in};
use crate::domain::{
    BuildId, DomainError, FieldError, Page, ParameterValue, Principal, TemplateId, Transition,
    ZeroLimit,
};
use crate::http::extract::MaybeBrowserUser;
use crate::service::views::{TemplateVersionParameterView, WorkspaceBuildView, WorkspaceView};
use crate::service::{AgentTarget, CreateBuildRequest, CreateWorkspaceRequest, UserSelector};
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces", get(list))
        .route("/workspaces/new", get(new_form).post(create))
        .route("/workspaces/{id}", get(show))
        .route("/workspaces/{id}/builds", post(build))
}

/// How long a restart waits for its stop before starting.
const RESTART_WAIT: Duration = Duration::from_secs(60);

fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

struct Row {
    id: String,
    name: String,
    owner: String,
    template: String,
    status: String,
    last_build: String,
}

impl From<&WorkspaceView> for Row {
    fn from(w: &WorkspaceView) -> Self {
        Row {
            id: w.id.to_string(),
            name: w.name.clone(),
            owner: w.owner_name.clone(),
            template: if w.template_display_name.is_empty() {
                w.template_name.clone()
            } else {
                w.template_display_name.clone()
            },
            status: w.latest_build.status.to_owned(),
            last_build: format!(
                "{} {}",
                w.latest_build.transition,
                when(&w.latest_build.created_at)
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct ListPage {
    chrome: Chrome,
    title: &'static str,
    notice: Option<String>,
    error: Option<String>,
    q: String,
    status: String,
    statuses: Vec<(&'static str, &'static str)>,
    rows: Vec<Row>,
    count: i64,
    show_owner: bool,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    /// What the last action did, as a fixed word (never text from the URL).
    #[serde(default)]
    done: String,
}

const STATUSES: [(&str, &str); 7] = [
    ("", "Any"),
    ("running", "Running"),
    ("stopped", "Stopped"),
    ("starting", "Starting"),
    ("stopping", "Stopping"),
    ("failed", "Failed"),
    ("pending", "Pending"),
];

async fn list(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let me = match signed_in(user, "/workspaces") {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "workspaces");
    let status = STATUSES
        .iter()
        .find(|(v, _)| *v == q.status)
        .map_or("", |(v, _)| v);
    // Members see their own; owners see everyone's unless they filter.
    let mut query = q.q.trim().to_owned();
    if !status.is_empty() {
        query = format!("{query} status:{status}").trim().to_owned();
    }
    let page = Page::requested(100, 0, ZeroLimit::MeansMax);
    let found = match page {
        Ok(page) => state.services.list_workspaces(&me, &query, page).await,
        Err(e) => Err(e),
    };
    let (rows, count, error) = match found {
        Ok(v) => (v.workspaces.iter().map(Row::from).collect(), v.count, None),
        Err(e) => (Vec::new(), 0, Some(error_status(&e).1)),
    };
    let notice = (q.done == "deleting").then(|| "The workspace is being deleted.".to_owned());
    let page = ListPage {
        chrome,
        title: "Workspaces",
        notice,
        error,
        q: q.q,
        status: status.to_owned(),
        statuses: STATUSES.to_vec(),
        rows,
        count,
        show_owner: me.is_owner(),
    };
    render(&page, StatusCode::OK, cookie.as_slice())
}

/// One parameter as a form field.
struct Field {
    name: String,
    label: String,
    description: String,
    /// `select` (options or a bool), `number` or `text`.
    kind: &'static str,
    value: String,
    options: Vec<(String, String)>,
    min: Option<i64>,
    max: Option<i64>,
    required: bool,
    error: Option<String>,
}

impl Field {
    fn of(p: &TemplateVersionParameterView) -> Field {
        let (kind, options) = if !p.options.is_empty() {
            let options = p
                .options
                .iter()
                .map(|o| {
                    let label = if o.name.is_empty() || o.name == o.value {
                        o.value.clone()
                    } else {
                        format!("{} ({})", o.name, o.value)
                    };
                    (o.value.clone(), label)
                })
                .collect();
            ("select", options)
        } else if p.kind == "bool" {
            let options = vec![
                ("true".to_owned(), "true".to_owned()),
                ("false".to_owned(), "false".to_owned()),
            ];
            ("select", options)
        } else if p.kind == "number" {
            ("number", Vec::new())
        } else {
            ("text", Vec::new())
        };
        Field {
            name: p.name.clone(),
            label: if p.display_name.is_empty() {
                p.name.clone()
            } else {
                p.display_name.clone()
            },
            description: p.description_plaintext.clone(),
            kind,
            value: p.default_value.clone(),
            options,
            min: p.validation_min,
            max: p.validation_max,
            required: p.required,
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "workspace_new.html")]
struct NewPage {
    chrome: Chrome,
    title: &'static str,
    owner: bool,
    error: Option<String>,
    templates: Vec<(String, String)>,
    template_id: String,
    template_name: String,
    name: String,
    name_error: Option<String>,
    params: Vec<Field>,
}

#[derive(Deserialize, Default)]
struct NewQuery {
    #[serde(default)]
    template: String,
}

async fn new_form(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Response {
    let me = match signed_in(user, "/workspaces/new") {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "workspaces");
    match new_page(&state, &me, chrome, &q.template, "", &[], None).await {
        Ok(page) => render(&page, StatusCode::OK, cookie.as_slice()),
        Err(e) => error_page(&e, "/workspaces/new"),
    }
}

/// The create form: the template list, or the chosen template's parameters with `values`
/// and the problems of a refused submission.
async fn new_page(
    state: &AppState,
    me: &Principal,
    chrome: Chrome,
    template: &str,
    name: &str,
    values: &[ParameterValue],
    refused: Option<&DomainError>,
) -> Result<NewPage, DomainError> {
    let templates = state.services.list_templates(me, None).await?;
    let chosen = templates.iter().find(|t| t.id.to_string() == template);
    let mut params = Vec::new();
    if let Some(t) = chosen {
        let found = state
            .services
            .template_version_parameters(me, crate::domain::TemplateVersionId(t.active_version_id))
            .await?;
        params = found.iter().map(Field::of).collect();
    }
    let fields: Vec<FieldError> = match refused {
        Some(DomainError::Invalid { fields, .. } | DomainError::Conflict { fields, .. }) => {
            fields.clone()
        }
        _ => Vec::new(),
    };
    for field in &mut params {
        if let Some(v) = values.iter().find(|v| v.name == field.name) {
            field.value = v.value.clone();
        }
        field.error = fields
            .iter()
            .find(|f| f.field == field.name)
            .map(|f| f.detail.clone());
    }
    let name_error = fields
        .iter()
        .find(|f| f.field == "name")
        .map(|f| f.detail.clone());
    Ok(NewPage {
        chrome,
        title: "Create a workspace",
        owner: me.is_owner(),
        error: refused.map(|e| error_status(e).1),
        templates: templates
            .iter()
            .map(|t| {
                let label = if t.display_name.is_empty() {
                    t.name.clone()
                } else {
                    t.display_name.clone()
                };
                (t.id.to_string(), label)
            })
            .collect(),
        template_id: chosen.map(|t| t.id.to_string()).unwrap_or_default(),
        template_name: chosen.map(|t| t.name.clone()).unwrap_or_default(),
        name: name.to_owned(),
        name_error,
        params,
    })
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let template = fields.get("template").to_owned();
    let name = fields.get("name").trim().to_owned();
    let values: Vec<ParameterValue> = fields
        .0
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("param.").map(|n| ParameterValue {
                name: n.to_owned(),
                value: v.clone(),
            })
        })
        .collect();
    let template_id = uuid::Uuid::parse_str(&template).ok().map(TemplateId);
    let created = state
        .services
        .create_workspace(
            &me,
            &UserSelector::Me,
            CreateWorkspaceRequest {
                name: name.clone(),
                template_id,
                template_version_id: None,
                rich_parameter_values: values.clone(),
            },
        )
        .await;
    match created {
        Ok(w) => see_other(&format!("/workspaces/{}", w.id), &[]),
        Err(err @ (DomainError::Invalid { .. } | DomainError::Conflict { .. })) => {
            let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "workspaces");
            let status = error_status(&err).0;
            match new_page(&state, &me, chrome, &template, &name, &values, Some(&err)).await {
                Ok(page) => render(&page, status, cookie.as_slice()),
                Err(e) => error_page(&e, "/workspaces/new"),
            }
        }
        Err(e) => error_page(&e, "/workspaces/new"),
    }
}

struct BuildRow {
    number: i64,
    transition: &'static str,
    status: &'static str,
    initiator: String,
    created: String,
}

impl From<&WorkspaceBuildView> for BuildRow {
    fn from(b: &WorkspaceBuildView) -> Self {
        BuildRow {
            number: b.build_number,
            transition: b.transition,
            status: b.status,
            initiator: b.initiator_name.clone(),
            created: when(&b.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    chrome: Chrome,
    title: String,
    error: Option<String>,
    w: Row,
    outdated: bool,
    latest_number: i64,
    building: bool,
    actions: Vec<(&'static str, &'static str, &'static str)>,
    apps: Vec<(String, String)>,
    builds: Vec<BuildRow>,
    shown_number: i64,
    logs: Vec<String>,
    /// The values the latest build runs with, in the template's order.
    parameters: Vec<ParameterValue>,
    /// What the agent's startup script printed (its first page), when the workspace has one.
    agent_logs: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    #[serde(default)]
    build: Option<i64>,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let path = format!("/workspaces/{id}");
    let me = match signed_in(user, &path) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "workspaces");
    match workspace_page(&state, &me, chrome, &id, q).await {
        Ok(page) => render(&page, StatusCode::OK, cookie.as_slice()),
        Err(e) => error_page(&e, "/workspaces"),
    }
}

async fn workspace_page(
    state: &AppState,
    me: &Principal,
    chrome: Chrome,
    id: &str,
    q: ShowQuery,
) -> Result<WorkspacePage, DomainError> {
    let id = uuid::Uuid::parse_str(id)
        .map_err(|_| DomainError::NotFound("No workspace has this id.".into()))?
        .to_string();
    let w = state.services.get_workspace(me, &id).await?;
    let page = Page::requested(50, 0, ZeroLimit::MeansMax)?;
    let builds = state.services.list_workspace_builds(me, &id, page).await?;
    let latest = &w.latest_build;
    let shown = q
        .build
        .and_then(|n| builds.iter().find(|b| b.build_number == n))
        .unwrap_or(latest);
    let (logs, _) = state
        .services
        .workspace_build_logs(me, BuildId(shown.id), 0)
        .await?;
    let parameters = state
        .services
        .workspace_build_parameters(me, BuildId(latest.id))
        .await?;
    let agent_logs = agent_log_lines(state, me, &id).await?;
    let agent_starting = latest
        .resources
        .iter()
        .flat_map(|r| &r.agents)
        .any(|a| matches!(a.lifecycle_state, "created" | "starting"));
    // The page follows a build, and then the agent's startup, by reloading itself.
    let building = !latest.finished() || (latest.status == "running" && agent_starting);
    let actions = match latest.status {
        _ if building => Vec::new(),
        "running" => vec![
            ("stop", "Stop", "secondary"),
            ("restart", "Restart", "secondary"),
            ("delete", "Delete", "danger"),
        ],
        "deleted" => Vec::new(),
        _ => vec![("start", "Start", ""), ("delete", "Delete", "danger")],
    };
    let apps = latest
        .resources
        .iter()
        .flat_map(|r| &r.agents)
        .flat_map(|a| &a.apps)
        .filter(|a| !a.hidden && !a.url.is_empty())
        .map(|a| (a.display_name.clone(), a.url.clone()))
        .collect();
    Ok(WorkspacePage {
        chrome,
        title: w.name.clone(),
        error: None,
        outdated: w.outdated,
        latest_number: latest.build_number,
        building,
        actions,
        apps,
        builds: builds.iter().map(BuildRow::from).collect(),
        shown_number: shown.build_number,
        logs: logs
            .iter()
            .map(|l| {
                if l.stage.is_empty() {
                    l.output.clone()
                } else {
                    format!("{}: {}", l.stage, l.output)
                }
            })
            .collect(),
        parameters,
        agent_logs,
        w: Row::from(&w),
    })
}

/// The agent's startup log, or `None` when the workspace has no agent to ask (stopped, or a
/// template without one); other failures are the page's.
async fn agent_log_lines(
    state: &AppState,
    me: &Principal,
    workspace: &str,
) -> Result<Option<Vec<String>>, DomainError> {
    let target = AgentTarget::Workspace(workspace.to_owned());
    match state.services.agent_logs(me, &target, 0).await {
        Ok(logs) => Ok(Some(logs.into_iter().map(|l| l.output).collect())),
        Err(DomainError::NotFound(_) | DomainError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn build(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let back = format!("/workspaces/{id}");
    let Ok(id) = uuid::Uuid::parse_str(&id).map(|u| u.to_string()) else {
        return error_page(
            &DomainError::NotFound("No workspace has this id.".into()),
            "/workspaces",
        );
    };
    let action = fields.get("transition");
    let result = match action {
        "restart" => restart(&state, &me, &id).await,
        other => match Transition::parse(other) {
            Some(t) => start_build(&state, &me, &id, t).await.map(|_| ()),
            None => Err(DomainError::invalid(
                "Choose start, stop, restart or delete.",
            )),
        },
    };
    match result {
        Ok(()) if action == "delete" => see_other("/workspaces?done=deleting", &[]),
        Ok(()) => see_other(&back, &[]),
        // A refused action re-renders the page with the reason; nothing changed, so a reload
        // re-submitting it is harmless.
        Err(err) => {
            let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "workspaces");
            let (status, message) = error_status(&err);
            match workspace_page(&state, &me, chrome, &id, ShowQuery::default()).await {
                Ok(mut page) => {
                    page.error = Some(message);
                    render(&page, status, cookie.as_slice())
                }
                Err(e) => error_page(&e, "/workspaces"),
            }
        }
    }
}

async fn start_build(
    state: &AppState,
    me: &Principal,
    id: &str,
    transition: Transition,
) -> Result<WorkspaceBuildView, DomainError> {
    state
        .services
        .create_workspace_build(
            me,
            id,
            CreateBuildRequest {
                transition,
                template_version_id: None,
                rich_parameter_values: None,
            },
        )
        .await
}

/// Stop, wait (bounded) for the stop to end, then start: what Coder's restart does.
async fn restart(state: &AppState, me: &Principal, id: &str) -> Result<(), DomainError> {
    let stop = start_build(state, me, id, Transition::Stop).await?;
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    loop {
        let b = state
            .services
            .get_workspace_build(me, BuildId(stop.id))
            .await?;
        if b.finished() {
            if b.status != "stopped" {
                return Err(DomainError::invalid(format!(
                    "The stop ended as {}; the workspace was not started again.",
                    b.status
                )));
            }
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DomainError::invalid(
                "The stop is taking long; start the workspace once it has stopped.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start_build(state, me, id, Transition::Start)
        .await
        .map(|_| ())
}
