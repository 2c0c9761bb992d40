//! Owner-managed OAuth applications and their secrets, the DCR switch, and a user's view of
//! the applications they authorized: the authorization server's admin use cases. The protocol
//! itself (registration, authorization, tokens) is `oauth`'s.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Services, UserSelector, require_owner_to};
use crate::audit::{AuditEvent, Auditor};
use crate::domain::oauth::{
    CIMD_HOSTS_SETTING, CIMD_POLICY_SETTING, CimdPolicy, DCR_SETTING, cimd_hosts_from_stored,
    dcr_enabled,
};
use crate::domain::redirect_uri;
use crate::domain::text::{StoredText, limits};
use crate::domain::{
    AppSecret, ClientId, ClientType, DEVICE_CODE_GRANT, DomainError, FieldError, GrantId, OAuthApp,
    Principal, Scope, ScopeSet, TokenAuthMethod,
};
use crate::metrics::Metrics;
use crate::revocation::RevocationList;
use crate::secret::Secret;

const MAX_APP_NAME: usize = 64;
const MANAGE_APPS: &str = "Only an owner can manage OAuth2 applications.";
const SEE_SETTINGS: &str = "Only an owner can see OAuth2 settings.";

/// What these use cases need besides the store: the audit log, and this replica's list of
/// revoked grants (deleting an application or a secret denies its tokens here at once).
#[derive(Debug, Clone)]
pub(super) struct OAuthAppsDeps {
    pub(super) audit: Auditor,
    pub(super) revocations: Arc<RevocationList>,
    pub(super) metrics: Arc<Metrics>,
}

/// What an owner sends to create or change an application.
#[derive(Debug, Clone, Default)]
pub struct AppInput {
    pub name: String,
    /// Coder's single `callback_url`; used when `redirect_uris` is absent.
    pub callback_url: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub icon: String,
    /// `None` keeps the current allowlist, `Some("")` clears it.
    pub scope: Option<String>,
}

/// An owner's request to create or change an application: the fields of `AppInput` and the
/// grant types it may use. The pages send an `AppInput` alone (grant types kept).
#[derive(Debug, Clone, Default)]
pub struct AppRequest {
    pub input: AppInput,
    /// `None` keeps the current grant types; a new application gets `authorization_code` and
    /// `refresh_token`.
    pub grant_types: Option<Vec<String>>,
}

impl From<AppInput> for AppRequest {
    fn from(input: AppInput) -> Self {
        AppRequest {
            input,
            grant_types: None,
        }
    }
}

/// The grant types an application may have (RFC 7591 §2 names; RFC 8628 §3.4).
const SUPPORTED_GRANTS: [&str; 3] = ["authorization_code", "refresh_token", DEVICE_CODE_GRANT];

fn default_grants() -> Vec<String> {
    vec!["authorization_code".into(), "refresh_token".into()]
}

/// An application a user has authorized, with what it holds.
#[derive(Debug, Clone)]
pub struct AuthorizedApp {
    pub app: OAuthApp,
    pub scopes: ScopeSet,
    pub grants: usize,
    pub authorized_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

fn app_not_found() -> DomainError {
    DomainError::NotFound("OAuth2 application not found.".into())
}

fn parse_app_id(raw: &str) -> Result<ClientId, DomainError> {
    Uuid::parse_str(raw)
        .map(ClientId)
        .map_err(|_| app_not_found())
}

struct ValidInput {
    name: String,
    redirect_uris: Vec<String>,
    icon: String,
    scope: Option<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
}

/// Checks the grant types an owner asked for (`None`: `current`), in the order given, without
/// repeats.
fn validate_grants(
    asked: Option<Vec<String>>,
    current: Vec<String>,
    problems: &mut Vec<FieldError>,
) -> Vec<String> {
    let Some(asked) = asked else {
        return current;
    };
    let mut grants: Vec<String> = Vec::new();
    for grant in asked {
        let grant = grant.trim().to_owned();
        if !SUPPORTED_GRANTS.contains(&grant.as_str()) {
            problems.push(FieldError::new(
                "grant_types",
                format!(
                    "Unsupported grant type {grant:?}. Supported: {}.",
                    SUPPORTED_GRANTS.join(", ")
                ),
            ));
        } else if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    // A refresh token is only ever issued by another grant.
    if !grants.iter().any(|g| g != "refresh_token") && problems.is_empty() {
        problems.push(FieldError::new(
            "grant_types",
            format!("Choose authorization_code, {DEVICE_CODE_GRANT}, or both."),
        ));
    }
    grants
}

/// Checks the fields, given the grant types already checked (and what was wrong with them).
fn validate(
    input: AppInput,
    grants: Vec<String>,
    mut problems: Vec<FieldError>,
) -> Result<ValidInput, DomainError> {
    let name = input.name.trim().to_owned();
    if name.is_empty() {
        problems.push(FieldError::new(
            "name",
            format!("Required: 1-{MAX_APP_NAME} characters."),
        ));
    } else if let Err(problem) = StoredText::line(MAX_APP_NAME).check_field("name", &name) {
        problems.push(problem);
    }
    let redirect_uris = match (input.redirect_uris, input.callback_url) {
        (Some(uris), _) if !uris.is_empty() => uris,
        (_, Some(url)) if !url.trim().is_empty() => vec![url.trim().to_owned()],
        _ => Vec::new(),
    };
    // Only the authorization code grant redirects; a device-only application needs no redirect
    // URI (RFC 8628 §3.1: the user approves on the server's own verification page).
    let redirects = grants.iter().any(|g| g == "authorization_code");
    if redirect_uris.is_empty() && redirects {
        problems.push(FieldError::new(
            "redirect_uris",
            "At least one redirect URI is required for the authorization_code grant.",
        ));
    }
    for uri in &redirect_uris {
        if let Err(e) = redirect_uri::validate_for_registration(uri, false) {
            problems.push(FieldError::new("redirect_uris", format!("{uri}: {e}")));
        }
    }
    let icon = input.icon.trim().to_owned();
    if let Err(problem) = limits::ICON.check_field("icon", &icon) {
        problems.push(problem);
    }
    let scope = match input.scope {
        None => None,
        Some(raw) => {
            let unknown: Vec<&str> = raw
                .split_ascii_whitespace()
                .filter(|s| Scope::parse(s).is_none())
                .collect();
            if !unknown.is_empty() {
                problems.push(FieldError::new(
                    "scope",
                    format!(
                        "Unknown scopes: {}. Known: {}.",
                        unknown.join(", "),
                        ScopeSet::all().to_wire()
                    ),
                ));
            }
            Some(ScopeSet::parse_known(&raw).to_wire())
        }
    };
    if !problems.is_empty() {
        return Err(DomainError::invalid_fields(
            "Invalid OAuth2 application.",
            problems,
        ));
    }
    Ok(ValidInput {
        name,
        redirect_uris,
        icon,
        scope,
        response_types: if redirects {
            vec!["code".into()]
        } else {
            Vec::new()
        },
        grant_types: grants,
    })
}

/// Checks `request` against the application's `current` grant types (a new one: the default).
fn validate_request(request: AppRequest, current: Vec<String>) -> Result<ValidInput, DomainError> {
    let mut problems = Vec::new();
    let grants = validate_grants(request.grant_types, current, &mut problems);
    validate(request.input, grants, problems)
}

/// The built-in clients belong to the server: owners see them but cannot change them.
fn refuse_builtin(app: &OAuthApp) -> Result<(), DomainError> {
    if app.is_builtin() {
        return Err(DomainError::Forbidden(format!(
            "{} is built into the server; it cannot be changed or deleted, and has no secrets.",
            app.name
        )));
    }
    Ok(())
}

impl Services {
    fn oauth_apps(&self) -> Result<&OAuthAppsDeps, DomainError> {
        self.oauth_apps.as_ref().ok_or_else(|| {
            DomainError::internal("OAuth2 applications are not enabled in this process")
        })
    }

    /// Records revoked grants locally so this instance denies their tokens at once.
    fn note_revoked(&self, grants: Vec<GrantId>) -> Result<(), DomainError> {
        self.oauth_apps()?.revocations.add(grants, self.clock.now());
        Ok(())
    }

    pub async fn list_oauth_apps(&self, actor: &Principal) -> Result<Vec<OAuthApp>, DomainError> {
        require_owner_to(actor, MANAGE_APPS)?;
        // The built-in clients are not the owners' to manage; they stay readable by id.
        let mut apps = self.store.list_oauth_apps().await?;
        apps.retain(|app| !app.is_builtin());
        Ok(apps)
    }

    pub async fn get_oauth_app(
        &self,
        actor: &Principal,
        id: &str,
    ) -> Result<OAuthApp, DomainError> {
        require_owner_to(actor, MANAGE_APPS)?;
        self.store
            .get_oauth_app(parse_app_id(id)?)
            .await?
            .ok_or_else(app_not_found)
    }

    pub async fn create_oauth_app(
        &self,
        actor: &Principal,
        request: impl Into<AppRequest>,
        ip: &str,
    ) -> Result<OAuthApp, DomainError> {
        require_owner_to(actor, MANAGE_APPS)?;
        let valid = validate_request(request.into(), default_grants())?;
        let now = self.clock.now();
        let app = OAuthApp {
            icon: valid.icon,
            redirect_uris: valid.redirect_uris,
            grant_types: valid.grant_types,
            response_types: valid.response_types,
            scope: valid.scope.unwrap_or_default(),
            ..OAuthApp::first_party(
                ClientId(Uuid::new_v4()),
                valid.name,
                ClientType::Confidential,
                TokenAuthMethod::ClientSecretBasic,
                now,
            )
        };
        self.store.insert_oauth_app(app.clone()).await?;
        self.audit_app("oauth2.app.create", actor, app.id, ip)
            .await?;
        Ok(app)
    }

    pub async fn update_oauth_app(
        &self,
        actor: &Principal,
        id: &str,
        request: impl Into<AppRequest>,
        ip: &str,
    ) -> Result<OAuthApp, DomainError> {
        let current = self.get_oauth_app(actor, id).await?;
        refuse_builtin(&current)?;
        let valid = validate_request(request.into(), current.grant_types.clone())?;
        let updated = OAuthApp {
            name: valid.name,
            icon: valid.icon,
            redirect_uris: valid.redirect_uris,
            grant_types: valid.grant_types,
            response_types: valid.response_types,
            scope: valid.scope.unwrap_or(current.scope.clone()),
            updated_at: self.clock.now(),
            ..current
        };
        if !self.store.update_oauth_app(updated.clone()).await? {
            return Err(app_not_found());
        }
        self.audit_app("oauth2.app.update", actor, updated.id, ip)
            .await?;
        Ok(updated)
    }

    /// Deletes the application; every token issued to it stops working at once.
    pub async fn delete_oauth_app(
        &self,
        actor: &Principal,
        id: &str,
        ip: &str,
    ) -> Result<(), DomainError> {
        refuse_builtin(&self.get_oauth_app(actor, id).await?)?;
        let id = parse_app_id(id)?;
        let revoked = self
            .store
            .delete_oauth_app(id, self.clock.now())
            .await?
            .ok_or_else(app_not_found)?;
        self.note_revoked(revoked)?;
        self.audit_app("oauth2.app.delete", actor, id, ip).await?;
        Ok(())
    }

    pub async fn create_oauth_app_secret(
        &self,
        actor: &Principal,
        id: &str,
        ip: &str,
    ) -> Result<(AppSecret, Secret), DomainError> {
        let app = self.get_oauth_app(actor, id).await?;
        refuse_builtin(&app)?;
        if app.client_type == ClientType::Public {
            return Err(DomainError::invalid(
                "Public clients authenticate with PKCE and have no secrets.",
            ));
        }
        let issued = AppSecret::generate(app.id, self.clock.now());
        self.store.insert_app_secret(issued.0.clone()).await?;
        self.oauth_apps()?
            .audit
            .record(
                AuditEvent::new(
                    "oauth2.app_secret.create",
                    "oauth2_provider_app_secret",
                    issued.0.id,
                )
                .by(actor.user.id)
                .client(app.id)
                .from_ip(ip),
            )
            .await;
        Ok(issued)
    }

    pub async fn list_oauth_app_secrets(
        &self,
        actor: &Principal,
        id: &str,
    ) -> Result<Vec<AppSecret>, DomainError> {
        let app = self.get_oauth_app(actor, id).await?;
        Ok(self.store.list_app_secrets(app.id).await?)
    }

    /// Deletes a secret; the tokens obtained with it are revoked.
    pub async fn delete_oauth_app_secret(
        &self,
        actor: &Principal,
        id: &str,
        secret_id: &str,
        ip: &str,
    ) -> Result<(), DomainError> {
        let app = self.get_oauth_app(actor, id).await?;
        let not_found = || DomainError::NotFound("OAuth2 application secret not found.".into());
        let secret_id = Uuid::parse_str(secret_id).map_err(|_| not_found())?;
        let revoked = self
            .store
            .delete_app_secret(app.id, secret_id, self.clock.now())
            .await?
            .ok_or_else(not_found)?;
        self.oauth_apps()?.metrics.oauth_revoked(
            app.client_type,
            "secret_deleted",
            revoked.len() as u64,
        );
        self.note_revoked(revoked)?;
        self.oauth_apps()?
            .audit
            .record(
                AuditEvent::new(
                    "oauth2.app_secret.delete",
                    "oauth2_provider_app_secret",
                    secret_id,
                )
                .by(actor.user.id)
                .client(app.id)
                .from_ip(ip),
            )
            .await;
        Ok(())
    }

    /// Whether clients may register themselves (RFC 7591), for the owner's settings.
    pub async fn get_dynamic_registration(&self, actor: &Principal) -> Result<bool, DomainError> {
        require_owner_to(actor, SEE_SETTINGS)?;
        let stored = self.store.get_site_config(DCR_SETTING).await?;
        Ok(dcr_enabled(stored.as_deref()))
    }

    pub async fn set_dynamic_registration(
        &self,
        actor: &Principal,
        enabled: bool,
        ip: &str,
    ) -> Result<(), DomainError> {
        require_owner_to(actor, MANAGE_APPS)?;
        self.store
            .upsert_site_config(
                DCR_SETTING,
                if enabled { "true" } else { "false" },
                self.clock.now(),
            )
            .await?;
        self.oauth_apps()?
            .audit
            .record(
                AuditEvent::new("oauth2.settings.update", "deployment", "oauth2")
                    .by(actor.user.id)
                    .from_ip(ip)
                    .details(json!({ "dynamic_client_registration_enabled": enabled })),
            )
            .await;
        Ok(())
    }

    /// The owners' policy for clients identified by a metadata document, and its listed hosts.
    pub async fn get_metadata_document_policy(
        &self,
        actor: &Principal,
    ) -> Result<(CimdPolicy, Vec<String>), DomainError> {
        require_owner_to(actor, SEE_SETTINGS)?;
        let policy = self.store.get_site_config(CIMD_POLICY_SETTING).await?;
        let hosts = self.store.get_site_config(CIMD_HOSTS_SETTING).await?;
        Ok((
            CimdPolicy::from_stored(policy.as_deref()),
            cimd_hosts_from_stored(hosts.as_deref()),
        ))
    }

    /// Sets the policy; `hosts` (lowercased, each a DNS name or IP address) replaces the list
    /// when given. Listing no host with `listed_hosts` is refused: it would mean `none`.
    pub async fn set_metadata_document_policy(
        &self,
        actor: &Principal,
        policy: CimdPolicy,
        hosts: Option<Vec<String>>,
        ip: &str,
    ) -> Result<Vec<String>, DomainError> {
        require_owner_to(actor, MANAGE_APPS)?;
        let hosts = match hosts {
            Some(hosts) => metadata_document_hosts(hosts)?,
            None => {
                let stored = self.store.get_site_config(CIMD_HOSTS_SETTING).await?;
                cimd_hosts_from_stored(stored.as_deref())
            }
        };
        if policy == CimdPolicy::ListedHosts && hosts.is_empty() {
            return Err(DomainError::invalid_fields(
                "List at least one host, or choose another policy.",
                vec![FieldError::new(
                    "client_id_metadata_document_hosts",
                    "listed_hosts needs at least one host",
                )],
            ));
        }
        let now = self.clock.now();
        let hosts_json = serde_json::Value::from(hosts.clone()).to_string();
        self.store
            .upsert_site_config(CIMD_HOSTS_SETTING, &hosts_json, now)
            .await?;
        self.store
            .upsert_site_config(CIMD_POLICY_SETTING, policy.as_str(), now)
            .await?;
        self.oauth_apps()?
            .audit
            .record(
                AuditEvent::new("oauth2.settings.update", "deployment", "oauth2")
                    .by(actor.user.id)
                    .from_ip(ip)
                    .details(json!({
                        "client_id_metadata_document_policy": policy.as_str(),
                        "client_id_metadata_document_hosts": hosts,
                    })),
            )
            .await;
        Ok(hosts)
    }

    /// The applications the user `who` names has authorized and not revoked, most recently used
    /// first. Members see only their own; `who` is "not found" to them otherwise.
    pub async fn list_authorized_apps(
        &self,
        actor: &Principal,
        who: &UserSelector,
    ) -> Result<Vec<AuthorizedApp>, DomainError> {
        let user = self.get_user(actor, who).await?;
        let grants = self.store.list_user_grants(user.id).await?;
        let mut by_app: Vec<AuthorizedApp> = Vec::new();
        for grant in grants {
            let scopes = ScopeSet::parse_known(&grant.scope);
            if let Some(entry) = by_app.iter_mut().find(|a| a.app.id == grant.app_id) {
                entry.scopes = entry.scopes.iter().chain(scopes.iter()).collect();
                entry.grants += 1;
                entry.authorized_at = entry.authorized_at.min(grant.created_at);
                entry.last_used_at = entry.last_used_at.max(grant.last_used_at);
                continue;
            }
            let Some(app) = self.store.get_oauth_app(grant.app_id).await? else {
                continue;
            };
            by_app.push(AuthorizedApp {
                app,
                scopes,
                grants: 1,
                authorized_at: grant.created_at,
                last_used_at: grant.last_used_at,
            });
        }
        by_app.sort_by_key(|a| std::cmp::Reverse(a.last_used_at));
        Ok(by_app)
    }

    async fn audit_app(
        &self,
        action: &'static str,
        actor: &Principal,
        app: ClientId,
        ip: &str,
    ) -> Result<(), DomainError> {
        self.oauth_apps()?
            .audit
            .record(
                AuditEvent::new(action, "oauth2_provider_app", app)
                    .by(actor.user.id)
                    .client(app)
                    .from_ip(ip),
            )
            .await;
        Ok(())
    }
}

/// At most this many hosts in the metadata-document allowlist.
const MAX_CIMD_HOSTS: usize = 100;

/// The allowlist as stored: each entry a host name or IP address (no scheme, port or path),
/// lowercased, without duplicates.
fn metadata_document_hosts(hosts: Vec<String>) -> Result<Vec<String>, DomainError> {
    let field = |m: String| {
        DomainError::invalid_fields(
            "Invalid metadata document hosts.",
            vec![FieldError::new("client_id_metadata_document_hosts", m)],
        )
    };
    if hosts.len() > MAX_CIMD_HOSTS {
        return Err(field(format!("at most {MAX_CIMD_HOSTS} hosts")));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in hosts {
        let host = raw.trim().to_ascii_lowercase();
        if host.is_empty() {
            continue;
        }
        let valid = host.len() <= 253
            && !host.contains(['/', ':', '@', '?', '#', ' '])
            && url::Host::parse(&host).is_ok_and(|h| h.to_string() == host);
        if !valid {
            return Err(field(format!(
                "{raw:?} is not a host name such as claude.ai or vscode.dev"
            )));
        }
        if !out.contains(&host) {
            out.push(host);
        }
    }
    Ok(out)
}
