//! The owners' template pages: the list, uploading a tar archive (a new template, or a new
//! active version of an existing one), a template's versions with their import logs and
//! parameters, setting the active version, and deleting the template.

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::folder_upload::{self, FolderFile};
use super::form::SignedInForm;
use super::signed_in;
use super::{csrf, error_page, error_status, form_expired, see_other};
use crate::domain::{
    DEFAULT_ORGANIZATION_NAME, DomainError, Principal, TemplateId, TemplateVersionId,
};
use crate::http::extract::MaybeBrowserUser;
use crate::service::templates::MAX_FILE_SIZE;
use crate::service::views::{ProvisionerJobLogView, TemplateVersionView};
use crate::service::{CreateTemplateRequest, CreateTemplateVersionRequest};
use crate::web::AppState;

const LIST: &str = "/templates";
/// How long an upload waits for its import before answering.
const IMPORT_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            LIST,
            get(list)
                .post(upload)
                // The archive, plus room for the form's other fields.
                .layer(DefaultBodyLimit::max(MAX_FILE_SIZE + 64 * 1024)),
        )
        .route("/templates/{id}", get(show))
        .route("/templates/{id}/active", post(set_active))
        .route("/templates/{id}/delete", post(delete))
}

fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Owners only; anyone else gets the 403 page.
fn owner(user: Option<Principal>, path: &str) -> Result<Principal, Box<Response>> {
    owner_only(signed_in(user, path)?)
}

/// `me` if an owner, else the 403 page.
fn owner_only(me: Principal) -> Result<Principal, Box<Response>> {
    if me.is_owner() {
        Ok(me)
    } else {
        Err(Box::new(error_page(
            &DomainError::Forbidden("Only owners manage templates.".into()),
            "/",
        )))
    }
}

fn log_lines(logs: &[ProvisionerJobLogView]) -> Vec<String> {
    logs.iter()
        .map(|l| {
            if l.stage.is_empty() {
                l.output.clone()
            } else {
                format!("{}: {}", l.stage, l.output)
            }
        })
        .collect()
}

struct Row {
    id: String,
    name: String,
    active: String,
    used_by: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "templates.html")]
struct ListPage {
    chrome: Chrome,
    title: &'static str,
    notice: Option<String>,
    error: Option<String>,
    logs: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Deserialize, Default)]
struct Done {
    #[serde(default)]
    done: String,
}

async fn list(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Response {
    let me = match owner(user, LIST) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let notice = (q.done == "deleted").then(|| "Template deleted.".to_owned());
    list_page(
        &state,
        &me,
        &headers,
        notice,
        None,
        Vec::new(),
        StatusCode::OK,
    )
    .await
}

async fn list_page(
    state: &AppState,
    me: &Principal,
    headers: &HeaderMap,
    notice: Option<String>,
    error: Option<String>,
    logs: Vec<String>,
    status: StatusCode,
) -> Response {
    let (chrome, cookie) = Chrome::signed_in(me, headers, &state.settings, "templates");
    let templates = match state.services.list_templates(me, None).await {
        Ok(t) => t,
        Err(e) => return error_page(&e, "/"),
    };
    let mut rows = Vec::new();
    for t in &templates {
        let active = state
            .services
            .get_template_version(me, TemplateVersionId(t.active_version_id))
            .await
            .map(|v| v.name)
            .unwrap_or_default();
        rows.push(Row {
            id: t.id.to_string(),
            name: t.name.clone(),
            active,
            used_by: t.active_user_count,
            updated: when(&t.updated_at),
        });
    }
    let page = ListPage {
        chrome,
        title: "Templates",
        notice,
        error,
        logs,
        rows,
    };
    render(&page, status, cookie.as_slice())
}

/// The upload form's fields: an archive, or a folder's files packed into one.
#[derive(Default)]
struct Upload {
    csrf: String,
    name: String,
    archive: Vec<u8>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, DomainError> {
    let mut upload = Upload::default();
    let mut folder = Vec::new();
    let unreadable = |_| DomainError::invalid("The form could not be read; upload it again.");
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some(csrf::FIELD) => upload.csrf = field.text().await.map_err(unreadable)?,
            Some("name") => upload.name = field.text().await.map_err(unreadable)?.trim().into(),
            Some("file") => upload.archive = field.bytes().await.map_err(unreadable)?.to_vec(),
            Some("folder") => {
                let path = field.file_name().unwrap_or_default().to_owned();
                let data = field.bytes().await.map_err(unreadable)?.to_vec();
                // A folder input left empty still sends one nameless, empty part.
                if !path.is_empty() {
                    folder.push(FolderFile { path, data });
                }
            }
            _ => {}
        }
    }
    if !folder.is_empty() {
        if !upload.archive.is_empty() {
            return Err(DomainError::invalid(
                "Choose either an archive or a folder, not both.",
            ));
        }
        let (folder_name, archive) = folder_upload::pack(folder)?;
        upload.archive = archive;
        if upload.name.is_empty() {
            upload.name = folder_name.to_lowercase();
        }
    }
    Ok(upload)
}

async fn upload(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let me = match owner(user, LIST) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let form = match multipart {
        Ok(m) => read_upload(m).await,
        Err(_) => Err(DomainError::invalid("Upload the archive with the form.")),
    };
    let form = match form {
        Ok(f) if csrf::verify(&state, &headers, &f.csrf) => f,
        Ok(_) => return form_expired(LIST),
        Err(e) => {
            let (status, message) = error_status(&e);
            return list_page(
                &state,
                &me,
                &headers,
                None,
                Some(message),
                Vec::new(),
                status,
            )
            .await;
        }
    };
    match import(&state, &me, &form).await {
        Ok(id) => see_other(&format!("/templates/{id}"), &[]),
        Err((e, logs)) => {
            let (status, message) = error_status(&e);
            list_page(&state, &me, &headers, None, Some(message), logs, status).await
        }
    }
}

/// Uploads, imports (waiting, bounded) and creates or activates; the template's id, or the
/// problem with the import's log.
async fn import(
    state: &AppState,
    me: &Principal,
    form: &Upload,
) -> Result<uuid::Uuid, (DomainError, Vec<String>)> {
    let plain = |e| (e, Vec::new());
    if form.name.is_empty() {
        return Err(plain(DomainError::invalid("Name the template.")));
    }
    if form.archive.is_empty() {
        return Err(plain(DomainError::invalid(
            "Choose a .tar archive or a folder to upload.",
        )));
    }
    let existing = match state
        .services
        .get_template_by_name(me, DEFAULT_ORGANIZATION_NAME, &form.name)
        .await
    {
        Ok(t) => Some(t),
        Err(DomainError::NotFound(_)) => None,
        Err(e) => return Err(plain(e)),
    };
    let (file, _) = state
        .services
        .upload_file(me, "application/x-tar", form.archive.clone())
        .await
        .map_err(plain)?;
    let version = state
        .services
        .create_template_version(
            me,
            DEFAULT_ORGANIZATION_NAME,
            CreateTemplateVersionRequest {
                file_id: Some(file.id),
                name: None,
                message: String::new(),
                template_id: existing.as_ref().map(|t| TemplateId(t.id)),
                provisioner_tags: Default::default(),
            },
        )
        .await
        .map_err(plain)?;
    let version = wait_for_import(state, me, version).await.map_err(plain)?;
    if version.job.status != "succeeded" {
        let logs = state
            .services
            .template_version_logs(me, TemplateVersionId(version.id), 0)
            .await
            .unwrap_or_default();
        let reason = if version.job.error.is_empty() {
            version.job.status.to_owned()
        } else {
            version.job.error.clone()
        };
        return Err((
            DomainError::invalid(format!("The import failed: {reason}")),
            log_lines(&logs),
        ));
    }
    match existing {
        Some(t) => {
            state
                .services
                .update_template_active_version(me, TemplateId(t.id), TemplateVersionId(version.id))
                .await
                .map_err(plain)?;
            Ok(t.id)
        }
        None => {
            let t = state
                .services
                .create_template(
                    me,
                    DEFAULT_ORGANIZATION_NAME,
                    CreateTemplateRequest {
                        name: form.name.clone(),
                        display_name: String::new(),
                        description: String::new(),
                        icon: String::new(),
                        template_version_id: Some(TemplateVersionId(version.id)),
                    },
                )
                .await
                .map_err(plain)?;
            Ok(t.id)
        }
    }
}

async fn wait_for_import(
    state: &AppState,
    me: &Principal,
    version: TemplateVersionView,
) -> Result<TemplateVersionView, DomainError> {
    let deadline = tokio::time::Instant::now() + IMPORT_WAIT;
    let mut version = version;
    while matches!(version.job.status, "pending" | "running" | "canceling") {
        if tokio::time::Instant::now() >= deadline {
            return Err(DomainError::invalid(
                "The import is taking long; its version will appear on the template once done.",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        version = state
            .services
            .get_template_version(me, TemplateVersionId(version.id))
            .await?;
    }
    Ok(version)
}

struct VersionRow {
    id: String,
    name: String,
    status: &'static str,
    created: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "template.html")]
struct TemplatePage {
    chrome: Chrome,
    title: String,
    error: Option<String>,
    id: String,
    name: String,
    params: Vec<(String, &'static str, String, bool, bool)>,
    versions: Vec<VersionRow>,
    shown: String,
    logs: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    #[serde(default)]
    version: String,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    let me = match owner(user, &format!("/templates/{id}")) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    match template_page(&state, &me, &headers, &id, &q.version).await {
        Ok((page, cookie)) => render(&page, StatusCode::OK, cookie.as_slice()),
        Err(e) => error_page(&e, LIST),
    }
}

fn template_id(raw: &str) -> Result<TemplateId, DomainError> {
    uuid::Uuid::parse_str(raw)
        .map(TemplateId)
        .map_err(|_| DomainError::NotFound("No template has this id.".into()))
}

async fn template_page(
    state: &AppState,
    me: &Principal,
    headers: &HeaderMap,
    id: &str,
    version: &str,
) -> Result<(TemplatePage, Option<String>), DomainError> {
    let tid = template_id(id)?;
    let t = state.services.get_template(me, tid).await?;
    let versions = state.services.list_template_versions(me, tid).await?;
    let params = state
        .services
        .template_version_parameters(me, TemplateVersionId(t.active_version_id))
        .await?;
    let shown = versions
        .iter()
        .find(|v| v.id.to_string() == version)
        .or_else(|| versions.iter().find(|v| v.id == t.active_version_id));
    let logs = match shown {
        Some(v) => {
            state
                .services
                .template_version_logs(me, TemplateVersionId(v.id), 0)
                .await?
        }
        None => Vec::new(),
    };
    let (chrome, cookie) = Chrome::signed_in(me, headers, &state.settings, "templates");
    Ok((
        TemplatePage {
            chrome,
            title: t.name.clone(),
            error: None,
            id: t.id.to_string(),
            name: t.name.clone(),
            params: params
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        p.kind,
                        p.default_value.clone(),
                        p.required,
                        p.mutable,
                    )
                })
                .collect(),
            versions: versions
                .iter()
                .map(|v| VersionRow {
                    id: v.id.to_string(),
                    name: v.name.clone(),
                    status: v.job.status,
                    created: when(&v.created_at),
                    active: v.id == t.active_version_id,
                })
                .collect(),
            shown: shown.map(|v| v.name.clone()).unwrap_or_default(),
            logs: log_lines(&logs),
        },
        cookie,
    ))
}

async fn set_active(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let back = format!("/templates/{id}");
    let me = match owner_only(me) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let result = match (
        template_id(&id),
        uuid::Uuid::parse_str(fields.get("version")),
    ) {
        (Ok(t), Ok(v)) => {
            state
                .services
                .update_template_active_version(&me, t, TemplateVersionId(v))
                .await
        }
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(DomainError::invalid("Choose a version.")),
    };
    match result {
        Ok(()) => see_other(&back, &[]),
        Err(e) => error_page(&e, &back),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedInForm { me, .. }: SignedInForm,
) -> Response {
    let back = format!("/templates/{id}");
    let me = match owner_only(me) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let result = match template_id(&id) {
        Ok(t) => state.services.delete_template(&me, t).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => see_other(&format!("{LIST}?done=deleted"), &[]),
        Err(e) => error_page(&e, &back),
    }
}
