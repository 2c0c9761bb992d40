//! `/deployment/oauth2-provider/apps`: the owner's OAuth2 applications, their secrets and the
//! dynamic registration switch, as plain POST forms.

mod view;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use self::view::{AppForm, Detail, render_detail, render_list};
use super::{
    csrf_checked, error_page, error_status, form_expired, oauth2_page_user, respond, see_other,
};
use crate::domain::oauth::CimdPolicy;
use crate::domain::{DomainError, Principal};
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::web::AppState;

const APPS: &str = "/deployment/oauth2-provider/apps";
const SETTINGS: &str = "/deployment/oauth2-provider/settings";
const METADATA_DOCUMENTS: &str = "/deployment/oauth2-provider/settings/metadata-documents";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(APPS, get(list).post(create))
        .route(SETTINGS, post(set_registration))
        .route(METADATA_DOCUMENTS, post(set_metadata_documents))
        .route(&format!("{APPS}/{{app}}"), get(show).post(update))
        .route(&format!("{APPS}/{{app}}/delete"), post(delete))
        .route(&format!("{APPS}/{{app}}/secrets"), post(create_secret))
        .route(
            &format!("{APPS}/{{app}}/secrets/{{secret}}/delete"),
            post(delete_secret),
        )
}

fn app_path(id: &str) -> String {
    format!("{APPS}/{}", escape_path(id))
}

/// Path segments come from the URL; keep them to what an id can hold.
fn escape_path(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// The owner behind a page request, or the response that stands in for the page.
fn owner(
    state: &AppState,
    user: Option<Principal>,
    path: &str,
) -> Result<Principal, Box<Response>> {
    let me = oauth2_page_user(state, user, path)?;
    if me.is_owner() {
        return Ok(me);
    }
    let body = "<h1>Owners only</h1><p class=\"lead\">Only an owner can manage OAuth2 \
                applications.</p><p><a href=\"/\">Home</a></p>";
    Err(Box::new(respond(
        StatusCode::FORBIDDEN,
        "Forbidden",
        body,
        &[],
    )))
}

/// What the last action did, from the redirect that followed it. Only fixed words are shown,
/// apart from a deleted application's name, which is escaped.
#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
    name: Option<String>,
}

impl Done {
    fn message(&self) -> Option<String> {
        let name: String = self
            .name
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        Some(match self.done.as_deref()? {
            "created" => "Application created. Create a secret for it below, then give the \
                          application its client ID and secret."
                .to_owned(),
            "updated" => "Changes saved.".to_owned(),
            "secret-deleted" => {
                "Secret deleted. Tokens obtained with it no longer work.".to_owned()
            }
            "deleted" => format!("Deleted {name}. Every token issued to it stopped working."),
            "registration-on" => "Dynamic client registration is on.".to_owned(),
            "registration-off" => "Dynamic client registration is off.".to_owned(),
            "metadata-documents" => "Client metadata document policy saved.".to_owned(),
            _ => return None,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    done: Result<Query<Done>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let me = match owner(&state, user, APPS) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let notice = done.map(|q| q.0.message()).unwrap_or_default();
    render_list(
        &state,
        &headers,
        &me,
        notice.as_deref(),
        &AppForm::default(),
        None,
    )
    .await
}

async fn create(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let me = match owner(&state, user, APPS) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(APPS);
    };
    let form = AppForm::from_fields(&fields);
    match state
        .services
        .create_oauth_app(&me, form.input(), &ip.to_string())
        .await
    {
        Ok(app) => see_other(
            &format!("{}?done=created", app_path(&app.id.to_string())),
            &[],
        ),
        Err(e) => render_list(&state, &headers, &me, None, &form, Some(&e)).await,
    }
}

async fn set_registration(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let me = match owner(&state, user, APPS) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(APPS);
    };
    let enabled = match fields.get("dynamic_registration") {
        "on" => true,
        "off" => false,
        _ => return error_page(&DomainError::invalid("Choose on or off."), APPS),
    };
    match state
        .services
        .set_dynamic_registration(&me, enabled, &ip.to_string())
        .await
    {
        Ok(()) => {
            let done = if enabled {
                "registration-on"
            } else {
                "registration-off"
            };
            see_other(&format!("{APPS}?done={done}"), &[])
        }
        Err(e) => error_page(&e, APPS),
    }
}

/// The owners' policy for clients identified by a metadata document: any, listed hosts, none.
async fn set_metadata_documents(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let me = match owner(&state, user, APPS) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(APPS);
    };
    let Some(policy) = CimdPolicy::parse(fields.get("cimd_policy")) else {
        return error_page(
            &DomainError::invalid("Choose any, listed hosts or none."),
            APPS,
        );
    };
    let hosts = fields
        .get("cimd_hosts")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    match state
        .services
        .set_metadata_document_policy(&me, policy, Some(hosts), &ip.to_string())
        .await
    {
        Ok(_) => see_other(&format!("{APPS}?done=metadata-documents"), &[]),
        Err(e) => error_page(&e, APPS),
    }
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    Path(app): Path<String>,
    done: Result<Query<Done>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let me = match owner(&state, user, &app_path(&app)) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let detail = Detail {
        notice: done.map(|q| q.0.message()).unwrap_or_default(),
        ..Detail::default()
    };
    render_detail(&state, &headers, &me, &app, detail).await
}

async fn update(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let path = app_path(&app);
    let me = match owner(&state, user, &path) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(&path);
    };
    let form = AppForm::from_fields(&fields);
    match state
        .services
        .update_oauth_app(&me, &app, form.input(), &ip.to_string())
        .await
    {
        Ok(_) => see_other(&format!("{path}?done=updated"), &[]),
        Err(e) => {
            let detail = Detail {
                form: Some(form),
                error: Some(&e),
                status: Some(error_status(&e).0),
                ..Detail::default()
            };
            render_detail(&state, &headers, &me, &app, detail).await
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let path = app_path(&app);
    let me = match owner(&state, user, &path) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(&path);
    };
    if fields.get("confirm") != "yes" {
        let detail = Detail {
            delete_error: Some("Tick the box to confirm the deletion."),
            status: Some(StatusCode::BAD_REQUEST),
            ..Detail::default()
        };
        return render_detail(&state, &headers, &me, &app, detail).await;
    }
    let name = match state.services.get_oauth_app(&me, &app).await {
        Ok(found) => found.name,
        Err(e) => return error_page(&e, APPS),
    };
    match state
        .services
        .delete_oauth_app(&me, &app, &ip.to_string())
        .await
    {
        Ok(()) => {
            let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            see_other(&format!("{APPS}?done=deleted&name={name}"), &[])
        }
        Err(e) => error_page(&e, APPS),
    }
}

async fn create_secret(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let path = app_path(&app);
    let me = match owner(&state, user, &path) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    if csrf_checked(&state, &headers, form).is_none() {
        return form_expired(&path);
    }
    match state
        .services
        .create_oauth_app_secret(&me, &app, &ip.to_string())
        .await
    {
        // Rendered, not redirected: the full secret exists only in this response.
        Ok((_, secret)) => {
            let detail = Detail {
                notice: Some("Secret created.".to_owned()),
                new_secret: Some(secret.expose()),
                ..Detail::default()
            };
            render_detail(&state, &headers, &me, &app, detail).await
        }
        Err(e) => error_page(&e, &path),
    }
}

async fn delete_secret(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    Path((app, secret)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let path = app_path(&app);
    let me = match owner(&state, user, &path) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    if csrf_checked(&state, &headers, form).is_none() {
        return form_expired(&path);
    }
    match state
        .services
        .delete_oauth_app_secret(&me, &app, &secret, &ip.to_string())
        .await
    {
        Ok(()) => see_other(&format!("{path}?done=secret-deleted"), &[]),
        Err(e) => error_page(&e, &path),
    }
}
