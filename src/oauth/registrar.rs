//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ErrorCode, OAuthError, OAuthResult, OAuthServer};
use crate::audit::AuditEvent;
use crate::domain::text::{StoredText, limits};
use crate::domain::{
    AppSecret, ClientId, ClientType, DEVICE_CODE_GRANT, OAuthApp, ScopeSet, TokenAuthMethod,
};
use crate::domain::{credentials, redirect_uri};
use crate::secret::{self, Secret};

/// At most this many redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 32;
const MAX_NAME_CHARS: usize = 64;
const MAX_CONTACTS: usize = 16;
/// A `client_name` longer than this is refused rather than cut: nobody names an app in a page.
const MAX_GIVEN_NAME_CHARS: usize = 256;
/// Every scope we know fits many times over; claude.ai sends one unknown word.
const MAX_SCOPE_CHARS: usize = 1024;
/// `grant_types` and `response_types` entries; we serve two grant types and one response type.
const MAX_LIST_ENTRIES: usize = 8;
const DEFAULT_NAME: &str = "Dynamically Registered Client";

/// RFC 7591 §2 client metadata. Unknown fields (`application_type`, vendor extras) are ignored,
/// per §3.1 and mcp-requirements D2; `jwks` and `jwks_uri` matter only to metadata documents.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    pub client_id: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
    pub contacts: Option<Vec<String>>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks: Option<Value>,
}

fn bad_metadata(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

fn invalid_registration_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is missing or invalid for this client",
    )
}

impl ClientMetadata {
    pub fn parse(body: &[u8]) -> OAuthResult<Self> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad_metadata(format!("the body must be a JSON object: {e}")))?;
        if !value.is_object() {
            return Err(bad_metadata("the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map_err(|e| bad_metadata(format!("invalid client metadata: {e}")))
    }
}

/// Where client metadata comes from: a registration request (RFC 7591), or a Client ID Metadata
/// Document the server fetched (draft-ietf-oauth-client-id-metadata-document §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Door {
    Registration,
    MetadataDocument,
}

/// The keys a `private_key_jwt` client publishes (RFC 7591 §2: one of the two, never both).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ClientKeys {
    None,
    Inline(Value),
    Uri(url::Url),
}

/// Metadata that passed validation, ready to store.
#[derive(Debug, Clone)]
pub(super) struct ValidMetadata {
    pub(super) name: String,
    pub(super) redirect_uris: Vec<String>,
    pub(super) method: TokenAuthMethod,
    pub(super) grant_types: Vec<String>,
    pub(super) response_types: Vec<String>,
    pub(super) scope: String,
    pub(super) client_uri: String,
    pub(super) logo_uri: String,
    pub(super) tos_uri: String,
    pub(super) policy_uri: String,
    pub(super) contacts: Vec<String>,
    pub(super) software_id: String,
    pub(super) software_version: String,
    pub(super) keys: ClientKeys,
}

fn validate(meta: ClientMetadata) -> OAuthResult<ValidMetadata> {
    validate_for(meta, Door::Registration)
}

/// The token endpoint authentication method `door` allows: registration offers the secret
/// methods and `none` (RFC 7591 §2 defaults to `client_secret_basic`); a metadata document
/// has no secret to share, so `none` (the default) or `private_key_jwt` (CIMD §4.1).
fn auth_method(given: Option<&str>, door: Door) -> OAuthResult<TokenAuthMethod> {
    let parsed = given.filter(|m| !m.is_empty()).map(TokenAuthMethod::parse);
    match (door, parsed) {
        (Door::Registration, None) => Ok(TokenAuthMethod::ClientSecretBasic),
        (Door::MetadataDocument, None) => Ok(TokenAuthMethod::None),
        (
            Door::Registration,
            Some(Some(
                m @ (TokenAuthMethod::ClientSecretBasic
                | TokenAuthMethod::ClientSecretPost
                | TokenAuthMethod::None),
            )),
        ) => Ok(m),
        (Door::Registration, _) => Err(bad_metadata(
            "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
        )),
        (
            Door::MetadataDocument,
            Some(Some(m @ (TokenAuthMethod::None | TokenAuthMethod::PrivateKeyJwt))),
        ) => Ok(m),
        (Door::MetadataDocument, _) => Err(bad_metadata(
            "token_endpoint_auth_method must be none or private_key_jwt: a client identified by \
             a metadata document has no shared secret (client_secret_* is refused)",
        )),
    }
}

/// `jwks` or `jwks_uri`, required with `private_key_jwt` and refused together (RFC 7591 §2).
fn client_keys(
    method: TokenAuthMethod,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
) -> OAuthResult<ClientKeys> {
    let jwks_uri = jwks_uri.filter(|u| !u.is_empty());
    if method != TokenAuthMethod::PrivateKeyJwt {
        return Ok(ClientKeys::None);
    }
    match (jwks_uri, jwks) {
        (Some(_), Some(_)) => Err(bad_metadata(
            "send jwks or jwks_uri, not both (RFC 7591 §2)",
        )),
        (None, None) => Err(bad_metadata(
            "private_key_jwt needs the client's public keys in jwks or jwks_uri",
        )),
        (None, Some(jwks)) if jwks.get("keys").is_some_and(Value::is_array) => {
            Ok(ClientKeys::Inline(jwks))
        }
        (None, Some(_)) => Err(bad_metadata("jwks must be a JWK Set: {\"keys\": [...]}")),
        (Some(uri), None) => {
            text("jwks_uri", &uri, limits::URI)?;
            match url::Url::parse(&uri) {
                Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Ok(ClientKeys::Uri(u)),
                _ => Err(bad_metadata("jwks_uri must be an absolute https URL")),
            }
        }
    }
}

pub(super) fn validate_for(meta: ClientMetadata, door: Door) -> OAuthResult<ValidMetadata> {
    let method = auth_method(meta.token_endpoint_auth_method.as_deref(), door)?;
    let keys = client_keys(method, meta.jwks_uri, meta.jwks)?;
    let public = method.client_type() == ClientType::Public;
    for (field, list) in [
        ("grant_types", &meta.grant_types),
        ("response_types", &meta.response_types),
    ] {
        if list.as_ref().is_some_and(|l| l.len() > MAX_LIST_ENTRIES) {
            return Err(bad_metadata(format!(
                "{field} may list at most {MAX_LIST_ENTRIES} values"
            )));
        }
    }
    let grant_types = grant_types(meta.grant_types)?;
    // RFC 7591 §2.1: `code` goes with authorization_code; a device-only client (RFC 8628) has
    // no response type and, never being redirected, needs no redirect URI.
    let redirects = grant_types.iter().any(|g| g == "authorization_code");
    let response_types = response_types(meta.response_types, redirects)?;
    let given_uris = meta.redirect_uris.unwrap_or_default();
    let redirect_uris = if redirects || !given_uris.is_empty() {
        redirect_uris(given_uris, public)?
    } else {
        Vec::new()
    };
    // RFC 7591 §2: every text field is stored and shown on the consent page; each passes the
    // stored-text rule (no NUL or control characters, bounded length), as on every other door.
    let client_uri = web_uri("client_uri", meta.client_uri)?;
    let logo_uri = web_uri("logo_uri", meta.logo_uri)?;
    let tos_uri = web_uri("tos_uri", meta.tos_uri)?;
    let policy_uri = web_uri("policy_uri", meta.policy_uri)?;
    let software_id = meta.software_id.unwrap_or_default();
    text("software_id", &software_id, limits::LABEL)?;
    let software_version = meta.software_version.unwrap_or_default();
    text("software_version", &software_version, limits::LABEL)?;
    let contacts = contacts(meta.contacts.unwrap_or_default())?;
    // A long name is cut to 64 characters (see `client_name`); it must still be bounded text.
    if let Some(name) = &meta.client_name {
        text("client_name", name, StoredText::line(MAX_GIVEN_NAME_CHARS))?;
    }
    if let Some(scope) = &meta.scope {
        text("scope", scope, StoredText::line(MAX_SCOPE_CHARS))?;
    }
    let name = client_name(meta.client_name.as_deref(), &client_uri, &redirect_uris);
    // Names outside the catalog (claude.ai registers "claudeai") are dropped: the client then
    // has no allowlist and negotiates at authorization time (mcp-requirements D6).
    let scope = ScopeSet::parse_known(meta.scope.as_deref().unwrap_or_default()).to_wire();
    Ok(ValidMetadata {
        name,
        redirect_uris,
        method,
        grant_types,
        response_types,
        scope,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        contacts,
        software_id,
        software_version,
        keys,
    })
}

/// At least one and at most `MAX_REDIRECT_URIS`, each one a client may register.
fn redirect_uris(uris: Vec<String>, public: bool) -> OAuthResult<Vec<String>> {
    if uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris must list at least one URI",
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECT_URIS} redirect_uris are allowed"),
        ));
    }
    for uri in &uris {
        redirect_uri::validate_for_registration(uri, public)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, format!("{uri:?}: {e}")))?;
    }
    Ok(uris)
}

/// The grant types served, authorization_code or the device grant (RFC 8628) among them (a
/// refresh token is only ever issued by one of those); authorization_code and refresh_token when
/// none are given. The device grant is only for clients that ask.
fn grant_types(given: Option<Vec<String>>) -> OAuthResult<Vec<String>> {
    let grant_types = given
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !["authorization_code", "refresh_token", DEVICE_CODE_GRANT].contains(&g.as_str()))
    {
        return Err(bad_metadata(format!(
            "grant type {bad:?} is not supported; use authorization_code, refresh_token and {DEVICE_CODE_GRANT}"
        )));
    }
    if !grant_types
        .iter()
        .any(|g| g == "authorization_code" || g == DEVICE_CODE_GRANT)
    {
        return Err(bad_metadata(format!(
            "grant_types must include authorization_code or {DEVICE_CODE_GRANT}"
        )));
    }
    Ok(grant_types)
}

/// With the authorization_code grant: only `code`, which is also the default. Without it (a
/// device-only client): none, since nothing is asked for at the authorization endpoint.
fn response_types(given: Option<Vec<String>>, redirects: bool) -> OAuthResult<Vec<String>> {
    let given = given.filter(|r| !r.is_empty());
    if !redirects {
        return match given {
            None => Ok(Vec::new()),
            Some(_) => Err(bad_metadata(
                "response_types must be empty without the authorization_code grant (RFC 7591 §2.1)",
            )),
        };
    }
    let response_types = given.unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") {
        return Err(bad_metadata("response_types may only contain code"));
    }
    Ok(response_types)
}

/// The stored-text rule for one metadata field.
fn text(field: &str, value: &str, rule: StoredText) -> OAuthResult<()> {
    rule.check(value)
        .map_err(|problem| bad_metadata(format!("{field} {problem}")))
}

/// An optional absolute http(s) URL, as stored text.
fn web_uri(field: &str, value: Option<String>) -> OAuthResult<String> {
    let value = value.unwrap_or_default();
    if value.is_empty() {
        return Ok(value);
    }
    text(field, &value, limits::URI)?;
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(value),
        _ => Err(bad_metadata(format!(
            "{field} must be an absolute http or https URL"
        ))),
    }
}

/// At most `MAX_CONTACTS` non-empty addresses, each stored text.
fn contacts(contacts: Vec<String>) -> OAuthResult<Vec<String>> {
    for contact in &contacts {
        text("contacts", contact, limits::LABEL)?;
    }
    if contacts.len() > MAX_CONTACTS || contacts.iter().any(|c| c.trim().is_empty()) {
        return Err(bad_metadata(format!(
            "contacts must be at most {MAX_CONTACTS} non-empty addresses"
        )));
    }
    Ok(contacts)
}

/// The name the consent page shows: the given one (cut to 64 characters), else the host of the
/// client or redirect URI.
fn client_name(given: Option<&str>, client_uri: &str, redirect_uris: &[String]) -> String {
    let given = given.map(str::trim).filter(|n| !n.is_empty());
    let name = match given {
        Some(n) => n.to_owned(),
        None => std::iter::once(client_uri)
            .chain(redirect_uris.iter().map(String::as_str))
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .find_map(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_NAME.to_owned()),
    };
    if name.chars().count() <= MAX_NAME_CHARS {
        return name;
    }
    let head: String = name.chars().take(MAX_NAME_CHARS - 9).collect();
    format!("{head}-{}", &secret::sha256_hex(name.as_bytes())[..8])
}

impl OAuthServer {
    /// RFC 7591 §3: registers a client and returns its information (201).
    pub async fn register_client(&self, body: &[u8], ip: &str) -> OAuthResult<Value> {
        if !self.dynamic_registration_enabled().await? {
            return Err(OAuthError::invalid_request(
                "dynamic client registration is disabled on this deployment; ask an owner to register the application",
            )
            .with_status(403));
        }
        self.check_ip_limit("register", ip)?;
        let meta = validate(ClientMetadata::parse(body)?)?;
        self.check_registration_capacity().await?;
        let now = self.inner.clock.now();
        let registration_token = credentials::generate();
        let app = OAuthApp {
            id: ClientId(Uuid::new_v4()),
            name: meta.name,
            icon: meta.logo_uri.clone(),
            redirect_uris: meta.redirect_uris,
            client_type: meta.method.client_type(),
            token_endpoint_auth_method: meta.method,
            grant_types: meta.grant_types,
            response_types: meta.response_types,
            scope: meta.scope,
            dynamically_registered: true,
            client_uri: meta.client_uri,
            logo_uri: meta.logo_uri,
            tos_uri: meta.tos_uri,
            policy_uri: meta.policy_uri,
            contacts: meta.contacts,
            software_id: meta.software_id,
            software_version: meta.software_version,
            registration_access_token_hash: Some(secret::sha256(
                registration_token.full.expose().as_bytes(),
            )),
            metadata_document_url: None,
            client_id_issued_at: now,
            last_used_at: None,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.insert_oauth_app(app.clone()).await?;
        let client_secret = match app.client_type {
            ClientType::Confidential => Some(self.issue_secret(app.id).await?.1),
            ClientType::Public => None,
        };
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.client.register", "oauth2_provider_app", app.id)
                    .client(app.id)
                    .from_ip(ip)
                    .details(json!({ "client_name": app.name, "token_endpoint_auth_method": app.token_endpoint_auth_method.as_str() })),
            )
            .await;
        let mut info = self.client_information(&app);
        if let Some(secret) = client_secret {
            info["client_secret"] = json!(secret.expose());
            info["client_secret_expires_at"] = json!(0);
        }
        info["registration_access_token"] = json!(registration_token.full.expose());
        Ok(info)
    }

    /// The deployment-wide caps on registration, checked once a request is valid: registrations
    /// per hour from everyone together, and clients registered but never used. The per-IP limit
    /// alone does not stop many addresses.
    async fn check_registration_capacity(&self) -> OAuthResult<()> {
        self.inner
            .registration_limiter
            .check("register")
            .map_err(|r| OAuthError::rate_limited(r.0))?;
        let unused = self.inner.store.count_unused_dynamic_apps().await?;
        if unused >= i64::from(self.inner.policy.max_unused_dynamic_clients) {
            tracing::warn!(
                unused,
                "dynamic registration refused: too many registered clients are still unused"
            );
            let mut err = OAuthError::invalid_request(
                "too many registered clients have not been used yet; try again later",
            )
            .with_status(503);
            err.retry_after = Some(300);
            return Err(err);
        }
        Ok(())
    }

    /// Creates a client secret; the full value is returned once and only its hash is kept.
    async fn issue_secret(&self, app: ClientId) -> OAuthResult<(AppSecret, Secret)> {
        let (secret, full) = AppSecret::generate(app, self.inner.clock.now());
        self.inner.store.insert_app_secret(secret.clone()).await?;
        Ok((secret, full))
    }

    /// RFC 7591 §3.2.1 client information, without secrets (RFC 7592 §3 never returns the
    /// registration access token again).
    pub fn client_information(&self, app: &OAuthApp) -> Value {
        let scope = if app.scope.is_empty() {
            ScopeSet::all().to_wire()
        } else {
            app.scope.clone()
        };
        let mut info = json!({
            "client_id": app.id.to_string(),
            "client_id_issued_at": app.client_id_issued_at.timestamp(),
            "client_name": app.name,
            "redirect_uris": app.redirect_uris,
            "grant_types": app.grant_types,
            "response_types": app.response_types,
            "token_endpoint_auth_method": app.token_endpoint_auth_method.as_str(),
            "scope": scope,
            "registration_client_uri": format!("{}/oauth2/clients/{}", self.issuer(), app.id),
        });
        for (field, value) in [
            ("client_uri", &app.client_uri),
            ("logo_uri", &app.logo_uri),
            ("tos_uri", &app.tos_uri),
            ("policy_uri", &app.policy_uri),
            ("software_id", &app.software_id),
            ("software_version", &app.software_version),
        ] {
            if !value.is_empty() {
                info[field] = json!(value);
            }
        }
        if !app.contacts.is_empty() {
            info["contacts"] = json!(app.contacts);
        }
        if app.client_type == ClientType::Confidential {
            info["client_secret_expires_at"] = json!(0);
        }
        info
    }

    /// RFC 7592 §2: the client named in the path, if the bearer token is its registration
    /// access token. Every mismatch is the same 401, so clients cannot be probed.
    pub async fn authenticate_registration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
    ) -> OAuthResult<OAuthApp> {
        let token = bearer.ok_or_else(invalid_registration_token)?;
        let id = Uuid::parse_str(client_id).map_err(|_| invalid_registration_token())?;
        let app = self
            .inner
            .store
            .get_oauth_app(ClientId(id))
            .await?
            .ok_or_else(invalid_registration_token)?;
        let presented = secret::sha256(token.as_bytes());
        match &app.registration_access_token_hash {
            Some(stored) if secret::constant_time_eq(stored, &presented) => Ok(app),
            _ => Err(invalid_registration_token()),
        }
    }

    /// RFC 7592 §2.2: replaces the client's metadata. The client type cannot change, and the
    /// scope allowlist can only shrink.
    pub async fn update_registration(
        &self,
        app: OAuthApp,
        body: &[u8],
        ip: &str,
    ) -> OAuthResult<Value> {
        let raw = ClientMetadata::parse(body)?;
        if raw
            .client_id
            .as_deref()
            .is_some_and(|id| id != app.id.to_string())
        {
            return Err(bad_metadata(
                "client_id in the body does not match the client being updated",
            ));
        }
        let requested_scope = raw.scope.clone();
        let meta = validate(raw)?;
        if meta.method.client_type() != app.client_type {
            return Err(bad_metadata(format!(
                "a {} client cannot become {}; register a new client instead",
                app.client_type.as_str(),
                meta.method.client_type().as_str()
            )));
        }
        let scope = match requested_scope {
            Some(_) if !app.scope.is_empty() => {
                let current = ScopeSet::parse_known(&app.scope);
                let wanted = ScopeSet::parse_known(&meta.scope);
                if !wanted.is_subset_of(&current) || wanted.is_empty() {
                    return Err(bad_metadata(format!(
                        "scope may only narrow this client's allowed scopes ({})",
                        app.scope
                    )));
                }
                wanted.to_wire()
            }
            Some(_) => meta.scope,
            None => app.scope.clone(),
        };
        let updated = OAuthApp {
            name: meta.name,
            icon: meta.logo_uri.clone(),
            redirect_uris: meta.redirect_uris,
            token_endpoint_auth_method: meta.method,
            grant_types: meta.grant_types,
            response_types: meta.response_types,
            scope,
            client_uri: meta.client_uri,
            logo_uri: meta.logo_uri,
            tos_uri: meta.tos_uri,
            policy_uri: meta.policy_uri,
            contacts: meta.contacts,
            software_id: meta.software_id,
            software_version: meta.software_version,
            updated_at: self.inner.clock.now(),
            ..app
        };
        self.inner.store.update_oauth_app(updated.clone()).await?;
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.client.update", "oauth2_provider_app", updated.id)
                    .client(updated.id)
                    .from_ip(ip),
            )
            .await;
        Ok(self.client_information(&updated))
    }

    /// RFC 7592 §2.3: deletes the client and revokes everything issued to it.
    pub async fn delete_registration(&self, app: OAuthApp, ip: &str) -> OAuthResult<()> {
        let revoked = self
            .inner
            .store
            .delete_oauth_app(app.id, self.inner.clock.now())
            .await?
            .unwrap_or_default();
        self.note_revoked(revoked);
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.client.delete", "oauth2_provider_app", app.id)
                    .client(app.id)
                    .from_ip(ip),
            )
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_a_host_and_are_capped() {
        assert_eq!(
            client_name(
                None,
                "",
                &["https://claude.ai/api/mcp/auth_callback".into()]
            ),
            "claude.ai"
        );
        assert_eq!(
            client_name(None, "", &["cursor://anysphere.cursor-mcp/cb".into()]),
            DEFAULT_NAME
        );
        let long = "x".repeat(100);
        let capped = client_name(Some(&long), "", &[]);
        assert_eq!(capped.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn claude_registration_is_accepted_with_its_unknown_scope_dropped() {
        let body = br#"{"client_name":"claudeai","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_post","scope":"claudeai","redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}"#;
        let meta = ClientMetadata::parse(body).and_then(validate);
        let meta = meta.ok();
        assert!(
            meta.as_ref()
                .is_some_and(|m| m.method == TokenAuthMethod::ClientSecretPost)
        );
        assert!(meta.is_some_and(|m| m.scope.is_empty()));
    }

    #[test]
    fn bad_metadata_is_refused_with_the_right_code() {
        let code = |body: &[u8]| {
            ClientMetadata::parse(body)
                .and_then(validate)
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code(b"[]"), Some(ErrorCode::InvalidClientMetadata));
        assert_eq!(
            code(br#"{"redirect_uris":"https://x.io/cb"}"#),
            Some(ErrorCode::InvalidClientMetadata)
        );
        assert_eq!(
            code(br#"{"redirect_uris":[]}"#),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert_eq!(
            code(br#"{"redirect_uris":["javascript:alert(1)"]}"#),
            Some(ErrorCode::InvalidRedirectUri)
        );
        assert_eq!(
            code(br#"{"redirect_uris":["https://x.io/cb"],"grant_types":["client_credentials"]}"#),
            Some(ErrorCode::InvalidClientMetadata)
        );
        assert_eq!(
            code(br#"{"redirect_uris":["https://x.io/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#),
            Some(ErrorCode::InvalidClientMetadata)
        );
        // Registration never offers private_key_jwt, even with keys: only metadata documents do.
        let keyed = br#"{"redirect_uris":["https://x.io/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}"#;
        assert_eq!(code(keyed), Some(ErrorCode::InvalidClientMetadata));
        assert!(
            ClientMetadata::parse(keyed)
                .and_then(|m| validate_for(m, Door::MetadataDocument))
                .is_ok()
        );
    }
}

/// Property tests: any body, and metadata objects with hostile values in every field. The
/// registrar answers `invalid_client_metadata`-class errors or metadata whose every stored
/// string passes the stored-text rule.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text, timed};

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            hostile_text().prop_map(Value::String),
            Just(json!("https://example.com/a")),
            Just(json!("http://127.0.0.1:3000/cb")),
            prop::collection::vec(
                prop_oneof![
                    hostile_text().prop_map(Value::String),
                    Just(json!("http://127.0.0.1:3000/cb")),
                    Just(json!("authorization_code")),
                    Just(json!("code")),
                ],
                0..4
            )
            .prop_map(Value::Array),
        ]
    }

    fn metadata() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(
            prop::sample::select(vec![
                "redirect_uris",
                "client_name",
                "client_uri",
                "logo_uri",
                "tos_uri",
                "policy_uri",
                "grant_types",
                "response_types",
                "token_endpoint_auth_method",
                "scope",
                "contacts",
                "software_id",
                "software_version",
                "jwks",
            ]),
            value(),
            0..10,
        )
        .prop_map(|m| {
            let mut object: serde_json::Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            object
                .entry("redirect_uris")
                .or_insert(json!(["http://127.0.0.1:3000/cb"]));
            Value::Object(object)
        })
    }

    fn registered(body: &[u8]) -> Result<Option<ValidMetadata>, TestCaseError> {
        let outcome = timed("register", || {
            ClientMetadata::parse(body).and_then(validate)
        })?;
        match outcome {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                prop_assert!(matches!(
                    e.code,
                    ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
                ));
                prop_assert_eq!(e.status, 400);
                Ok(None)
            }
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_body_is_refused_as_client_metadata(body in prop::collection::vec(any::<u8>(), 0..256)) {
            registered(&body)?;
        }

        #[test]
        fn accepted_metadata_is_storable_text(meta in metadata()) {
            if let Some(m) = registered(meta.to_string().as_bytes())? {
                let one_line = crate::domain::text::StoredText::line(2048);
                for s in [&m.name, &m.client_uri, &m.logo_uri, &m.tos_uri, &m.policy_uri,
                          &m.software_id, &m.software_version, &m.scope]
                    .into_iter()
                    .chain(&m.redirect_uris)
                    .chain(&m.contacts)
                {
                    prop_assert!(one_line.check(s).is_ok(), "{:?}", s);
                }
                prop_assert!(m.name.chars().count() <= MAX_NAME_CHARS);
            }
        }
    }
}
