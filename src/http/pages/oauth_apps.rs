//! `/deployment/oauth2-provider/apps`: the owner's OAuth2 applications, their secrets and the
//! dynamic registration switch, as plain POST forms. A new client secret is shown once: the
//! POST keeps it for a minute in a cookie scoped to the application's page, and the GET it
//! redirects to shows it and clears the cookie (post/redirect/get, as the API tokens page does).

mod view;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use self::view::{AppForm, Detail, render_detail, render_list};
use super::form::{FormPage, SignedInForm};
use super::parts::message_page;
use super::{OAuth2Pages, error_page, error_status, see_other, signed_in};
use crate::domain::oauth::CimdPolicy;
use crate::domain::{DomainError, Principal};
use crate::http::cookies::read_cookie;
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::web::AppState;

const APPS: &str = "/deployment/oauth2-provider/apps";
const SETTINGS: &str = "/deployment/oauth2-provider/settings";
const METADATA_DOCUMENTS: &str = "/deployment/oauth2-provider/settings/metadata-documents";
/// Holds a just-created client secret between the POST and the GET that shows it.
const NEW_SECRET_COOKIE: &str = "coder_new_client_secret";
const NEW_SECRET_SECS: i64 = 60;

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

/// The settings forms live on the applications page.
struct AppsPage;

impl FormPage for AppsPage {
    fn page(_: &str) -> String {
        APPS.to_owned()
    }
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

/// The flash cookie: the application's page only, HttpOnly, never sent cross-site.
fn new_secret_cookie(path: &str, value: &str, max_age: i64, secure: bool) -> String {
    let mut cookie = format!(
        "{NEW_SECRET_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The page for a signed-in member who is not an owner.
fn owners_only() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Owners only",
        "Only an owner can manage OAuth2 applications.",
        "",
        Some("/"),
    )
}

/// The owner behind a page request, or the response that stands in for the page.
fn owner(user: Option<Principal>, path: &str) -> Result<Principal, Box<Response>> {
    let me = signed_in(user, path)?;
    if me.is_owner() {
        Ok(me)
    } else {
        Err(Box::new(owners_only()))
    }
}

/// The owner behind a form post, or the page that stands in for the action.
fn owner_of(
    form: SignedInForm<impl FormPage>,
) -> Result<(Principal, super::FormFields), Box<Response>> {
    if form.me.is_owner() {
        Ok((form.me, form.fields))
    } else {
        Err(Box::new(owners_only()))
    }
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
        let name = super::notice_name(self.name.as_deref());
        Some(match self.done.as_deref()? {
            "created" => "Application created. Create a secret for it below, then give the \
                          application its client ID and secret."
                .to_owned(),
            "updated" => "Changes saved.".to_owned(),
            "secret-created" => "Secret created.".to_owned(),
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    done: Result<Query<Done>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let me = match owner(user, APPS) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let notice = done.map(|q| q.0.message()).unwrap_or_default();
    render_list(&state, &headers, &me, notice, &AppForm::default(), None).await
}

async fn create(
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: SignedInForm,
) -> Response {
    let (me, fields) = match owner_of(form) {
        Ok(posted) => posted,
        Err(page) => return *page,
    };
    let form = AppForm::from_fields(&fields);
    match state
        .services
        .create_oauth_app(&me, form.request(), &ip.to_string())
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: SignedInForm<AppsPage>,
) -> Response {
    let (me, fields) = match owner_of(form) {
        Ok(posted) => posted,
        Err(page) => return *page,
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: SignedInForm<AppsPage>,
) -> Response {
    let (me, fields) = match owner_of(form) {
        Ok(posted) => posted,
        Err(page) => return *page,
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    Path(app): Path<String>,
    done: Result<Query<Done>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let path = app_path(&app);
    let me = match owner(user, &path) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let new_secret = read_cookie(&headers, NEW_SECRET_COOKIE);
    let cookies = match new_secret {
        Some(_) => vec![new_secret_cookie(
            &path,
            "",
            0,
            state.settings.secure_cookies(),
        )],
        None => Vec::new(),
    };
    let detail = Detail {
        notice: done.map(|q| q.0.message()).unwrap_or_default(),
        new_secret,
        cookies,
        ..Detail::default()
    };
    render_detail(&state, &headers, &me, &app, detail).await
}

async fn update(
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> Response {
    let path = app_path(&app);
    let (me, fields) = match owner_of(form) {
        Ok(posted) => posted,
        Err(page) => return *page,
    };
    let form = AppForm::from_fields(&fields);
    match state
        .services
        .update_oauth_app(&me, &app, form.request(), &ip.to_string())
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    headers: HeaderMap,
    form: SignedInForm,
) -> Response {
    let (me, fields) = match owner_of(form) {
        Ok(posted) => posted,
        Err(page) => return *page,
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
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(app): Path<String>,
    form: SignedInForm,
) -> Response {
    let path = app_path(&app);
    let me = match owner_of(form) {
        Ok((me, _)) => me,
        Err(page) => return *page,
    };
    match state
        .services
        .create_oauth_app_secret(&me, &app, &ip.to_string())
        .await
    {
        Ok((_, secret)) => see_other(
            &format!("{path}?done=secret-created"),
            &[new_secret_cookie(
                &path,
                secret.expose(),
                NEW_SECRET_SECS,
                state.settings.secure_cookies(),
            )],
        ),
        Err(e) => error_page(&e, &path),
    }
}

async fn delete_secret(
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path((app, secret)): Path<(String, String)>,
    form: SignedInForm,
) -> Response {
    let path = app_path(&app);
    let me = match owner_of(form) {
        Ok((me, _)) => me,
        Err(page) => return *page,
    };
    match state
        .services
        .delete_oauth_app_secret(&me, &app, &secret, &ip.to_string())
        .await
    {
        Ok(()) => see_other(&format!("{path}?done=secret-deleted"), &[]),
        Err(e) => error_page(&e, &path),
    }
}
