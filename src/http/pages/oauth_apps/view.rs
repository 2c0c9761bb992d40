//! The owner's OAuth2 application pages as HTML: the list with the create form, and one
//! application's details, secrets, edit form and delete button.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::super::layout::{error_box, escape, hidden, notice_box, post_form, time};
use super::super::{FormFields, csrf, error_page, error_status, respond_wide};
use super::{APPS, METADATA_DOCUMENTS, SETTINGS, app_path};
use crate::domain::oauth::CimdPolicy;
use crate::domain::{AppSecret, ClientType, DomainError, OAuthApp, Principal, Scope, ScopeSet};
use crate::service::AppInput;
use crate::web::AppState;

/// The application form's values, kept when a submission is rejected.
#[derive(Default)]
pub(super) struct AppForm {
    name: String,
    redirect_uris: String,
    icon: String,
    scopes: Vec<String>,
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
        }
    }

    pub(super) fn from_fields(fields: &FormFields) -> AppForm {
        AppForm {
            name: fields.get("name").to_owned(),
            redirect_uris: fields.get("redirect_uris").to_owned(),
            icon: fields.get("icon").to_owned(),
            scopes: fields.all("scope").map(str::to_owned).collect(),
        }
    }

    pub(super) fn input(&self) -> AppInput {
        AppInput {
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
        }
    }

    /// The form's inputs, each followed by what was wrong with it.
    fn fields(&self, err: Option<&DomainError>) -> String {
        let scopes: String = Scope::ALL
            .iter()
            .map(|s| {
                format!(
                    "<label class=\"check\"><input type=\"checkbox\" name=\"scope\" value=\"{name}\"{checked}>\
                     <span><code>{name}</code> <span class=\"hint\">{description}</span></span></label>",
                    name = escape(s.name()),
                    checked = if self.scopes.iter().any(|c| c == s.name()) { " checked" } else { "" },
                    description = escape(s.description()),
                )
            })
            .collect();
        format!(
            "<label for=\"name\">Name</label>\
             <input id=\"name\" type=\"text\" name=\"name\" value=\"{name}\" maxlength=\"64\" required>{name_err}\
             <label for=\"redirect_uris\">Redirect URIs <span class=\"hint\">one per line</span></label>\
             <textarea id=\"redirect_uris\" name=\"redirect_uris\" required>{uris}</textarea>{uris_err}\
             <label for=\"icon\">Icon URL <span class=\"hint\">optional</span></label>\
             <input id=\"icon\" type=\"text\" name=\"icon\" value=\"{icon}\">{icon_err}\
             <label>Allowed scopes <span class=\"hint\">none ticked: any scope</span></label>{scopes}{scope_err}",
            name = escape(&self.name),
            uris = escape(&self.redirect_uris),
            icon = escape(&self.icon),
            name_err = field_error(err, "name"),
            uris_err = field_error(err, "redirect_uris"),
            icon_err = field_error(err, "icon"),
            scope_err = field_error(err, "scope"),
        )
    }
}

/// What the service said about one field, under that field.
fn field_error(err: Option<&DomainError>, field: &str) -> String {
    let fields = match err {
        Some(DomainError::Invalid { fields, .. } | DomainError::Conflict { fields, .. }) => fields,
        _ => return String::new(),
    };
    fields
        .iter()
        .filter(|f| f.field == field)
        .map(|f| format!("<p class=\"field-error\">{}</p>", escape(&f.detail)))
        .collect()
}

fn error_message(err: Option<&DomainError>) -> Option<String> {
    err.map(|e| error_status(e).1)
}

pub(super) async fn render_list(
    state: &AppState,
    headers: &HeaderMap,
    me: &Principal,
    notice: Option<&str>,
    form: &AppForm,
    err: Option<&DomainError>,
) -> Response {
    let apps = match state.services.list_oauth_apps(me).await {
        Ok(apps) => apps,
        Err(e) => return error_page(&e, "/"),
    };
    let registration = match state.services.get_dynamic_registration(me).await {
        Ok(on) => on,
        Err(e) => return error_page(&e, "/"),
    };
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let rows: String = apps.iter().map(app_row).collect();
    let table = if apps.is_empty() {
        "<p class=\"muted\">No applications yet.</p>".to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Name</th><th>Client ID</th><th>Redirect URIs</th>\
             <th>Registered</th><th>Last used</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let (state_words, switch) = if registration {
        (
            "on: MCP clients such as Claude and Cursor can register themselves at",
            "off",
        )
    } else {
        (
            "off: only applications created here can ask users for access. Clients would register at",
            "on",
        )
    };
    let body = format!(
        "<nav class=\"crumbs\"><a href=\"/\">Home</a></nav>\
         <h1>OAuth2 applications</h1><p class=\"lead\">Applications that can ask users of this \
         deployment for access to their account.</p>{notice}{table}\
         <h2>Dynamic client registration</h2><p>Dynamic registration (RFC 7591) is {state_words} \
         <code>{register}</code>.</p>{switch_form}{documents}\
         <h2>Create an application</h2>{error}\
         <form method=\"post\" action=\"{APPS}\">{csrf}{fields}<button type=\"submit\">Create application</button></form>",
        notice = notice_box(notice),
        register = escape(&format!("{}/oauth2/register", state.oauth.issuer())),
        switch_form = post_form(
            SETTINGS,
            &token,
            &hidden("dynamic_registration", switch),
            &format!("Turn dynamic registration {switch}"),
            "secondary",
        ),
        documents = match metadata_documents_section(state, me, &token).await {
            Ok(section) => section,
            Err(e) => return error_page(&e, "/"),
        },
        error = error_box(error_message(err).as_deref()),
        csrf = hidden(csrf::FIELD, &token),
        fields = form.fields(err),
    );
    let status = err.map_or(StatusCode::OK, |e| error_status(e).0);
    respond_wide(status, "OAuth2 applications", &body, cookie.as_slice())
}

fn app_row(app: &OAuthApp) -> String {
    let uris: Vec<String> = app
        .redirect_uris
        .iter()
        .map(|u| format!("<code>{}</code>", escape(u)))
        .collect();
    format!(
        "<tr><td><a href=\"{path}\">{name}</a></td><td><code class=\"id\">{id}</code></td><td>{uris}</td>\
         <td>{registered}</td><td>{last_used}</td></tr>",
        path = app_path(&app.id.to_string()),
        name = escape(&app.name),
        id = app.id,
        uris = uris.join("<br>"),
        registered = if app.metadata_document_url.is_some() {
            "By its metadata document"
        } else if app.dynamically_registered {
            "Dynamically"
        } else {
            "By an owner"
        },
        last_used = last_used(app),
    )
}

fn last_used(app: &OAuthApp) -> String {
    app.last_used_at
        .as_ref()
        .map_or_else(|| "Never".to_owned(), time)
}

/// What the detail page shows besides the application itself.
#[derive(Default)]
pub(super) struct Detail<'a> {
    pub(super) notice: Option<String>,
    pub(super) new_secret: Option<&'a str>,
    pub(super) form: Option<AppForm>,
    pub(super) error: Option<&'a DomainError>,
    pub(super) delete_error: Option<&'a str>,
    pub(super) status: Option<StatusCode>,
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
    let secrets = match state.services.list_oauth_app_secrets(me, id).await {
        Ok(secrets) => secrets,
        Err(e) => return error_page(&e, APPS),
    };
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let path = app_path(&app.id.to_string());
    let form = detail.form.unwrap_or_else(|| AppForm::from_app(&app));
    let body = format!(
        "<nav class=\"crumbs\"><a href=\"{APPS}\">← OAuth2 applications</a></nav>\
         <h1>{name}</h1>{notice}{facts}\
         <h2>Client secrets</h2>{secrets}\
         <h2>Edit</h2>{error}\
         <form method=\"post\" action=\"{path}\">{csrf}{fields}<button type=\"submit\">Save changes</button></form>\
         <h2>Delete application</h2><p>Every token issued to this application stops working at \
         once; users have to authorize it again.</p>{delete_error}{delete}",
        name = escape(&app.name),
        notice = notice_box(detail.notice.as_deref()),
        facts = facts(state, &app),
        secrets = secrets_section(&app, &secrets, detail.new_secret, &token),
        error = error_box(error_message(detail.error).as_deref()),
        csrf = hidden(csrf::FIELD, &token),
        fields = form.fields(detail.error),
        delete_error = error_box(detail.delete_error),
        delete = post_form(
            &format!("{path}/delete"),
            &token,
            &format!(
                "<label class=\"check\"><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required>\
                 I understand that {} stops working at once.</label>",
                escape(&app.name)
            ),
            "Delete application",
            "danger",
        ),
    );
    let status = detail.status.unwrap_or(StatusCode::OK);
    respond_wide(status, &app.name, &body, cookie.as_slice())
}

fn facts(state: &AppState, app: &OAuthApp) -> String {
    let scopes = ScopeSet::parse_known(&app.scope);
    let scopes = if scopes.is_empty() {
        "Any scope".to_owned()
    } else {
        scopes
            .iter()
            .map(|s| format!("<code>{}</code>", s.name()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let uris: Vec<String> = app
        .redirect_uris
        .iter()
        .map(|u| format!("<code>{}</code>", escape(u)))
        .collect();
    let issuer = escape(state.oauth.issuer());
    format!(
        "<dl class=\"facts\"><dt>Client ID</dt><dd><code>{id}</code></dd>\
         <dt>Client type</dt><dd>{kind}</dd>\
         <dt>Registered</dt><dd>{how} on {created}</dd>\
         <dt>Last used</dt><dd>{last_used}</dd>\
         <dt>Allowed scopes</dt><dd>{scopes}</dd>\
         <dt>Redirect URIs</dt><dd>{uris}</dd>\
         <dt>Icon</dt><dd>{icon}</dd>\
         <dt>Authorization URL</dt><dd><code>{issuer}/oauth2/authorize</code></dd>\
         <dt>Token URL</dt><dd><code>{issuer}/oauth2/tokens</code></dd></dl>",
        id = app.id,
        kind = match app.client_type {
            ClientType::Confidential => "Confidential: authenticates with a client secret",
            ClientType::Public => "Public: proves itself with PKCE, has no secret",
        },
        how = if app.dynamically_registered {
            "Dynamically, by the client itself,"
        } else {
            "By an owner"
        },
        created = time(&app.created_at),
        last_used = last_used(app),
        uris = uris.join("<br>"),
        icon = if app.icon.is_empty() {
            "None".to_owned()
        } else {
            format!("<code>{}</code>", escape(&app.icon))
        },
    )
}

fn secrets_section(
    app: &OAuthApp,
    secrets: &[AppSecret],
    new_secret: Option<&str>,
    token: &str,
) -> String {
    if app.client_type == ClientType::Public {
        return "<p class=\"muted\">Public clients prove themselves with PKCE and have no \
                secrets.</p>"
            .to_owned();
    }
    let path = app_path(&app.id.to_string());
    let shown = new_secret
        .map(|s| {
            format!(
                "<div class=\"secret\" role=\"alert\"><strong>Copy this secret now. It will not \
                 be shown again.</strong><code>{}</code></div>",
                escape(s)
            )
        })
        .unwrap_or_default();
    let rows: String = secrets
        .iter()
        .map(|s| {
            format!(
                "<tr><td><code>{display}</code></td><td>{created}</td><td>{used}</td><td>{delete}</td></tr>",
                display = escape(&s.display_secret),
                created = time(&s.created_at),
                used = s.last_used_at.as_ref().map_or_else(|| "Never".to_owned(), time),
                delete = post_form(
                    &format!("{path}/secrets/{}/delete", s.id),
                    token,
                    "",
                    "Delete secret",
                    "secondary",
                ),
            )
        })
        .collect();
    let table = if secrets.is_empty() {
        "<p class=\"muted\">No secrets yet: the application cannot get tokens until it has one.</p>"
            .to_owned()
    } else {
        format!(
            "<table><thead><tr><th>Secret</th><th>Created</th><th>Last used</th><th></th></tr>\
             </thead><tbody>{rows}</tbody></table>"
        )
    };
    format!(
        "{shown}{table}{create}",
        create = post_form(&format!("{path}/secrets"), token, "", "Create secret", "")
    )
}

/// The settings block for Client ID Metadata Documents: whether the server accepts them, and
/// the owners' policy (any host, listed hosts, none) as one form.
async fn metadata_documents_section(
    state: &AppState,
    me: &Principal,
    token: &str,
) -> Result<String, DomainError> {
    let (policy, hosts) = state.services.get_metadata_document_policy(me).await?;
    let flag_note = if state.oauth.metadata_documents_available() {
        ""
    } else {
        "<p class=\"warning\">This server was started with \
         <code>--oauth2-client-id-metadata-document-enable=false</code>: no policy below takes \
         effect until it is turned on.</p>"
    };
    let radio = |value: CimdPolicy, label: &str| {
        format!(
            "<label><input type=\"radio\" name=\"cimd_policy\" value=\"{v}\"{checked}> {label}</label><br>",
            v = value.as_str(),
            checked = if policy == value { " checked" } else { "" },
            label = escape(label),
        )
    };
    let fields = format!(
        "{any}{listed}{none}<label>Listed hosts (one per line, e.g. claude.ai)<br>\
         <textarea name=\"cimd_hosts\" rows=\"3\">{hosts}</textarea></label><br>",
        any = radio(
            CimdPolicy::Any,
            "Any client that serves a valid metadata document"
        ),
        listed = radio(
            CimdPolicy::ListedHosts,
            "Only clients whose document is on a listed host"
        ),
        none = radio(CimdPolicy::None, "None: turn client metadata documents off"),
        hosts = escape(&hosts.join("\n")),
    );
    Ok(format!(
        "<h2>Client ID metadata documents</h2><p>MCP clients such as Claude and VS Code can \
         identify themselves with an https URL as their client ID; Coder fetches the client's \
         details from that URL.</p>{flag_note}{form}",
        form = post_form(
            METADATA_DOCUMENTS,
            token,
            &fields,
            "Save policy",
            "secondary"
        ),
    ))
}
