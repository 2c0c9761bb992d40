//! The owner's OAuth2 application pages as templates: the list with the settings and the create
//! form, and one application's details, secrets, edit form and delete button.

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::super::chrome::{Chrome, render};
use super::super::parts::When;
use super::super::{FormFields, error_page, error_status};
use super::{APPS, METADATA_DOCUMENTS, SETTINGS, app_path};
use crate::domain::oauth::{CLI_CLIENT_ID, CimdPolicy};
use crate::domain::{
    AppSecret, ClientType, DEVICE_CODE_GRANT, DomainError, OAuthApp, Principal, Scope, ScopeSet,
};
use crate::service::{AppInput, AppRequest};
use crate::web::AppState;

/// The grant types the form offers, with what each lets the application do.
const GRANTS: [(&str, &str); 3] = [
    (
        "authorization_code",
        "Users sign in and approve in the browser, then return to a redirect URI.",
    ),
    (
        "refresh_token",
        "Renews access without asking the user again.",
    ),
    (
        DEVICE_CODE_GRANT,
        "Devices without a browser show a code the user approves here (RFC 8628).",
    ),
];

/// The application form's values, kept when a submission is rejected.
pub(super) struct AppForm {
    name: String,
    redirect_uris: String,
    icon: String,
    scopes: Vec<String>,
    /// `None`: the form did not carry the grant boxes, so the grants stay as they are.
    grant_types: Option<Vec<String>>,
}

impl Default for AppForm {
    /// A new application's form: the grants it gets unless the owner changes them.
    fn default() -> Self {
        AppForm {
            name: String::new(),
            redirect_uris: String::new(),
            icon: String::new(),
            scopes: Vec::new(),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        }
    }
}

impl AppForm {
    pub(super) fn from_app(app: &OAuthApp) -> AppForm {
        AppForm {
            name: app.name.clone(),
            redirect_uris: app.redirect_uris.join("\n"),
            icon: app.icon.clone(),
            scopes: app
                .scope
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect(),
            grant_types: Some(app.grant_types.clone()),
        }
    }

    pub(super) fn from_fields(fields: &FormFields) -> AppForm {
        // An unticked checkbox sends nothing, so the form says it showed the grant boxes: then
        // no box ticked is a choice (refused by the service), not "keep the grants".
        let grant_types = (!fields.get("grant_types_shown").is_empty())
            .then(|| fields.all("grant_type").map(str::to_owned).collect());
        AppForm {
            name: fields.get("name").to_owned(),
            redirect_uris: fields.get("redirect_uris").to_owned(),
            icon: fields.get("icon").to_owned(),
            scopes: fields.all("scope").map(str::to_owned).collect(),
            grant_types,
        }
    }

    /// The request the API sends too: the fields and the grant types.
    pub(super) fn request(&self) -> AppRequest {
        AppRequest {
            input: AppInput {
                name: self.name.clone(),
                callback_url: None,
                redirect_uris: Some(
                    self.redirect_uris
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                icon: self.icon.clone(),
                // No box ticked clears the allowlist: the application may ask for any scope.
                scope: Some(self.scopes.join(" ")),
            },
            grant_types: self.grant_types.clone(),
        }
    }

    fn view(&self, err: Option<&DomainError>) -> FormView {
        let errors = |field: &str| -> Vec<String> {
            match err {
                Some(
                    DomainError::Invalid { fields, .. } | DomainError::Conflict { fields, .. },
                ) => fields
                    .iter()
                    .filter(|f| f.field == field)
                    .map(|f| f.detail.clone())
                    .collect(),
                _ => Vec::new(),
            }
        };
        let granted = |g: &str| {
            self.grant_types
                .as_ref()
                .is_some_and(|grants| grants.iter().any(|c| c == g))
        };
        FormView {
            name: self.name.clone(),
            redirect_uris: self.redirect_uris.clone(),
            icon: self.icon.clone(),
            grants: GRANTS
                .iter()
                .map(|(value, hint)| Check {
                    value,
                    hint,
                    checked: granted(value),
                })
                .collect(),
            scopes: Scope::ALL
                .iter()
                .map(|s| Check {
                    value: s.name(),
                    hint: s.description(),
                    checked: self.scopes.iter().any(|c| c == s.name()),
                })
                .collect(),
            errors: FieldErrors {
                name: errors("name"),
                grant_types: errors("grant_types"),
                redirect_uris: errors("redirect_uris"),
                icon: errors("icon"),
                scope: errors("scope"),
            },
        }
    }
}

/// What `oauth_app_form.html` shows.
struct FormView {
    name: String,
    redirect_uris: String,
    icon: String,
    grants: Vec<Check>,
    scopes: Vec<Check>,
    errors: FieldErrors,
}

struct Check {
    value: &'static str,
    hint: &'static str,
    checked: bool,
}

/// What the service said about each field, shown under it.
struct FieldErrors {
    name: Vec<String>,
    grant_types: Vec<String>,
    redirect_uris: Vec<String>,
    icon: Vec<String>,
    scope: Vec<String>,
}

fn error_message(err: Option<&DomainError>) -> Option<String> {
    err.map(|e| error_status(e).1)
}

struct AppRow {
    path: String,
    id: String,
    name: String,
    redirect_uris: Vec<String>,
    registered: &'static str,
    last_used: Option<When>,
}

impl From<&OAuthApp> for AppRow {
    fn from(app: &OAuthApp) -> Self {
        AppRow {
            path: app_path(&app.id.to_string()),
            id: app.id.to_string(),
            name: app.name.clone(),
            redirect_uris: app.redirect_uris.clone(),
            registered: if app.metadata_document_url.is_some() {
                "By its metadata document"
            } else if app.dynamically_registered {
                "Dynamically"
            } else {
                "By an owner"
            },
            last_used: app.last_used_at.as_ref().map(When::of),
        }
    }
}

/// A built-in client, shown and never edited.
struct BuiltinRow {
    id: String,
    name: String,
    grants: Vec<String>,
    last_used: Option<When>,
}

struct PolicyChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "oauth_apps.html")]
struct ListPage {
    chrome: Chrome,
    title: &'static str,
    notice: Option<String>,
    apps: Vec<AppRow>,
    builtin: Option<BuiltinRow>,
    registration: bool,
    register_url: String,
    settings_action: &'static str,
    documents_action: &'static str,
    documents_available: bool,
    policies: Vec<PolicyChoice>,
    hosts: String,
    create_action: &'static str,
    error: Option<String>,
    form: FormView,
}

pub(super) async fn render_list(
    state: &AppState,
    headers: &HeaderMap,
    me: &Principal,
    notice: Option<String>,
    form: &AppForm,
    err: Option<&DomainError>,
) -> Response {
    let page = match list_page(state, headers, me, notice, form, err).await {
        Ok(page) => page,
        Err(e) => return error_page(&e, "/"),
    };
    let (page, cookie) = page;
    let status = err.map_or(StatusCode::OK, |e| error_status(e).0);
    render(&page, status, cookie.as_slice())
}

async fn list_page(
    state: &AppState,
    headers: &HeaderMap,
    me: &Principal,
    notice: Option<String>,
    form: &AppForm,
    err: Option<&DomainError>,
) -> Result<(ListPage, Option<String>), DomainError> {
    let apps = state.services.list_oauth_apps(me).await?;
    // The service keeps the built-in clients out of the list; they stay readable by id.
    let builtin = state
        .services
        .get_oauth_app(me, &CLI_CLIENT_ID.to_string())
        .await
        .ok()
        .map(|cli| BuiltinRow {
            id: cli.id.to_string(),
            name: cli.name.clone(),
            grants: cli.grant_types.clone(),
            last_used: cli.last_used_at.as_ref().map(When::of),
        });
    let registration = state.services.get_dynamic_registration(me).await?;
    let (policy, hosts) = state.services.get_metadata_document_policy(me).await?;
    let (chrome, cookie) = Chrome::signed_in(me, headers, &state.settings, "oauth2");
    let choice = |value: CimdPolicy, label: &'static str| PolicyChoice {
        value: value.as_str(),
        label,
        checked: policy == value,
    };
    let page = ListPage {
        chrome,
        title: "OAuth2 applications",
        notice,
        apps: apps.iter().map(AppRow::from).collect(),
        builtin,
        registration,
        register_url: format!("{}/oauth2/register", state.oauth.issuer()),
        settings_action: SETTINGS,
        documents_action: METADATA_DOCUMENTS,
        documents_available: state.oauth.metadata_documents_available(),
        policies: vec![
            choice(
                CimdPolicy::Any,
                "Any client that serves a valid metadata document",
            ),
            choice(
                CimdPolicy::ListedHosts,
                "Only clients whose document is on a listed host",
            ),
            choice(CimdPolicy::None, "None: turn client metadata documents off"),
        ],
        hosts: hosts.join("\n"),
        create_action: APPS,
        error: error_message(err),
        form: form.view(err),
    };
    Ok((page, cookie))
}

/// What the detail page shows besides the application itself.
#[derive(Default)]
pub(super) struct Detail<'a> {
    pub(super) notice: Option<String>,
    pub(super) new_secret: Option<String>,
    pub(super) form: Option<AppForm>,
    pub(super) error: Option<&'a DomainError>,
    pub(super) delete_error: Option<&'a str>,
    pub(super) status: Option<StatusCode>,
    /// Cookies to set (clearing the new-secret cookie once shown).
    pub(super) cookies: Vec<String>,
}

struct AppFacts {
    id: String,
    name: String,
    kind: &'static str,
    how: &'static str,
    created: When,
    last_used: Option<When>,
    grants: Vec<String>,
    scopes: Vec<&'static str>,
    redirect_uris: Vec<String>,
    icon: String,
    builtin: bool,
    public: bool,
}

impl From<&OAuthApp> for AppFacts {
    fn from(app: &OAuthApp) -> Self {
        AppFacts {
            id: app.id.to_string(),
            name: app.name.clone(),
            kind: match app.client_type {
                ClientType::Confidential => "Confidential: authenticates with a client secret",
                ClientType::Public => "Public: proves itself with PKCE, has no secret",
            },
            how: if app.is_builtin() {
                "Built into the server"
            } else if app.dynamically_registered {
                "Dynamically, by the client itself,"
            } else {
                "By an owner"
            },
            created: When::of(&app.created_at),
            last_used: app.last_used_at.as_ref().map(When::of),
            grants: app.grant_types.clone(),
            scopes: ScopeSet::parse_known(&app.scope)
                .iter()
                .map(Scope::name)
                .collect(),
            redirect_uris: app.redirect_uris.clone(),
            icon: app.icon.clone(),
            builtin: app.is_builtin(),
            public: app.client_type == ClientType::Public,
        }
    }
}

struct SecretRow {
    id: String,
    display: String,
    created: When,
    last_used: Option<When>,
}

impl From<&AppSecret> for SecretRow {
    fn from(s: &AppSecret) -> Self {
        SecretRow {
            id: s.id.to_string(),
            display: s.display_secret.clone(),
            created: When::of(&s.created_at),
            last_used: s.last_used_at.as_ref().map(When::of),
        }
    }
}

#[derive(Template)]
#[template(path = "oauth_app.html")]
struct DetailPage {
    chrome: Chrome,
    title: String,
    apps_path: &'static str,
    path: String,
    issuer: String,
    app: AppFacts,
    notice: Option<String>,
    new_secret: Option<String>,
    secrets: Vec<SecretRow>,
    error: Option<String>,
    form: FormView,
    delete_error: Option<String>,
}

pub(super) async fn render_detail(
    state: &AppState,
    headers: &HeaderMap,
    me: &Principal,
    id: &str,
    detail: Detail<'_>,
) -> Response {
    let app = match state.services.get_oauth_app(me, id).await {
        Ok(app) => app,
        Err(e) => return error_page(&e, APPS),
    };
    let secrets = if app.is_builtin() {
        Vec::new()
    } else {
        match state.services.list_oauth_app_secrets(me, id).await {
            Ok(secrets) => secrets,
            Err(e) => return error_page(&e, APPS),
        }
    };
    let (chrome, cookie) = Chrome::signed_in(me, headers, &state.settings, "oauth2");
    let form = detail.form.unwrap_or_else(|| AppForm::from_app(&app));
    let page = DetailPage {
        chrome,
        title: app.name.clone(),
        apps_path: APPS,
        path: app_path(&app.id.to_string()),
        issuer: state.oauth.issuer().to_owned(),
        app: AppFacts::from(&app),
        notice: detail.notice,
        new_secret: detail.new_secret,
        secrets: secrets.iter().map(SecretRow::from).collect(),
        error: error_message(detail.error),
        form: form.view(detail.error),
        delete_error: detail.delete_error.map(str::to_owned),
    };
    let mut cookies = detail.cookies;
    cookies.extend(cookie);
    render(
        &page,
        detail.status.unwrap_or(StatusCode::OK),
        cookies.as_slice(),
    )
}
