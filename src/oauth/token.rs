//! The token endpoint (RFC 6749 §4.1.3, §6; OAuth 2.1 §4.3.1): code exchange with PKCE, refresh
//! with rotation and reuse detection, and minting access tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::client_auth::{AuthenticatedClient, ClientCredentials, ClientForm, refuse_repeated};
use super::jwt::{self, AccessTokenClaims};
use super::{ErrorCode, OAuthError, OAuthResult, OAuthServer, pkce};
use crate::audit::AuditEvent;
use crate::domain::{
    ApiKey, AuthorizationCode, ClientId, DeviceCode, Grant, GrantId, LoginType, RefreshToken,
    ScopeSet, User, UserId, UserStatus,
};
use crate::domain::{DEVICE_CODE_GRANT, credentials};
use crate::store::{Redemption, StoreResult};

/// A token request's form fields; unknown ones are ignored.
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    /// RFC 8628 §3.4.
    pub device_code: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub client: ClientCredentials,
    /// Names of parameters sent more than once.
    pub repeated: Vec<String>,
}

/// The grant types the token endpoint knows.
const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", DEVICE_CODE_GRANT];

impl ClientForm for TokenRequest {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        Some(match key {
            "grant_type" => &mut self.grant_type,
            "code" => &mut self.code,
            "redirect_uri" => &mut self.redirect_uri,
            "code_verifier" => &mut self.code_verifier,
            "refresh_token" => &mut self.refresh_token,
            "device_code" => &mut self.device_code,
            "scope" => &mut self.scope,
            "resource" => &mut self.resource,
            _ => return None,
        })
    }

    fn client_mut(&mut self) -> &mut ClientCredentials {
        &mut self.client
    }

    fn client(&self) -> &ClientCredentials {
        &self.client
    }

    fn repeated(&self) -> &[String] {
        &self.repeated
    }

    fn set_repeated(&mut self, repeated: Vec<String>) {
        self.repeated = repeated;
    }

    /// A repeated `grant_type` is an unsupported one, whatever else was repeated.
    fn refuse_repeated(&self) -> OAuthResult<()> {
        if self.repeated.iter().any(|n| n == "grant_type") {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type was sent more than once",
            ));
        }
        refuse_repeated(&self.repeated)
    }

    fn grant_type(&self) -> OAuthResult<&str> {
        let grant_type = required(&self.grant_type, "grant_type")?;
        if !GRANT_TYPES.contains(&grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type must be authorization_code, refresh_token or {DEVICE_CODE_GRANT}"
                ),
            ));
        }
        Ok(grant_type)
    }
}

/// RFC 6749 §5.1.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Absent for clients that did not register the `refresh_token` grant type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

fn required<'a>(value: &'a Option<String>, name: &str) -> OAuthResult<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request(format!("missing required parameter: {name}")))
}

impl OAuthServer {
    /// `read` is the request as the endpoint could read it: one that could not be read is
    /// refused only after the per-IP limit counted it.
    pub async fn token(
        &self,
        read: OAuthResult<TokenRequest>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let (req, client) = self.authenticated_request("token", read, ip).await?;
        let grant_type = req.grant_type()?.to_owned();
        let response = match grant_type.as_str() {
            "authorization_code" => self.exchange_code(&req, &client).await?,
            DEVICE_CODE_GRANT => self.exchange_device_code(&req, &client, ip).await?,
            _ => self.refresh(&req, &client).await?,
        };
        let now = self.inner.clock.now();
        if super::client_auth::last_use_is_stale(client.app.last_used_at, now) {
            self.inner.store.touch_oauth_app(client.app.id, now).await?;
        }
        self.inner
            .metrics
            .oauth_token_issued(client.app.client_type, &grant_type);
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.token.issue", "oauth2_provider_app", client.app.id)
                    .client(client.app.id)
                    .from_ip(ip)
                    .details(json!({ "grant_type": grant_type, "scope": response.scope })),
            )
            .await;
        Ok(response)
    }

    async fn exchange_code(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
    ) -> OAuthResult<TokenResponse> {
        let now = self.inner.clock.now();
        let (code, user) = self.redeemable_code(req, client, now).await?;
        let approved = Approved {
            grant_id: code.grant_id,
            user_id: code.user_id,
            user: UserRead::Joined(user),
            scope: &code.scope,
            audience: &code.audience,
        };
        self.finish_grant(req, client, approved, now, async |grant, refresh| {
            if self
                .inner
                .store
                .redeem_auth_code(code.id, now, grant, refresh)
                .await?
            {
                Ok(())
            } else {
                // Lost a race with another exchange of the same code.
                Err(self.code_replayed(code.grant_id, client).await)
            }
        })
        .await
    }

    /// The end both code grants share: the requested resource must be the code's audience;
    /// the grant and its refresh token are built (`approved_grant`) and stored by `redeem`
    /// with the code's redemption (an error when another exchange redeemed it first); then
    /// the tokens are minted.
    async fn finish_grant(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
        approved: Approved<'_>,
        now: DateTime<Utc>,
        redeem: impl AsyncFnOnce(Grant, RefreshToken) -> OAuthResult<()>,
    ) -> OAuthResult<TokenResponse> {
        self.check_resource(req.resource.as_deref(), approved.audience)?;
        let user = match approved.user {
            UserRead::Joined(found) => usable_user(found)?,
            UserRead::Pending => self.grant_user(approved.user_id).await?,
        };
        let ApprovedGrant {
            user,
            scopes,
            grant,
            refresh,
            refresh_token,
        } = self
            .approved_grant(
                client,
                approved.grant_id,
                user,
                approved.scope,
                approved.audience,
                now,
            )
            .await?;
        redeem(grant, refresh).await?;
        self.mint(
            &user,
            client,
            approved.grant_id,
            approved.audience,
            &scopes,
            refresh_token,
        )
    }

    /// The authorization code the request presents, if `client` may redeem it `now`: issued to
    /// it, unused (a replay revokes the grant), unexpired, asked for with the same redirect URI,
    /// and proven by the PKCE verifier. It comes with the user who approved it, read with it
    /// (`None` if they were deleted).
    async fn redeemable_code(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
        now: DateTime<Utc>,
    ) -> OAuthResult<(AuthorizationCode, Option<User>)> {
        let raw = required(&req.code, "code")?;
        let verifier = required(&req.code_verifier, "code_verifier")?;
        if !pkce::is_valid_verifier(verifier) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43-128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)",
            ));
        }
        let invalid = || {
            OAuthError::invalid_grant("the authorization code is invalid, expired or already used")
        };
        let (code, user): (AuthorizationCode, Option<User>) =
            issued_code(raw, "authorization code", client, invalid, |prefix| {
                self.inner.store.get_auth_code_with_user(prefix)
            })
            .await?;
        if code.used_at.is_some() {
            return Err(self.code_replayed(code.grant_id, client).await);
        }
        if code.expires_at <= now {
            return Err(invalid());
        }
        match req.redirect_uri.as_deref() {
            Some(uri) if uri != code.redirect_uri => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the one in the authorization request",
                ));
            }
            None if code.redirect_uri_sent => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri is required because the authorization request included it (RFC 6749 §4.1.3)",
                ));
            }
            _ => {}
        }
        if !pkce::verify_s256(verifier, &code.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        Ok((code, user))
    }

    /// RFC 8628 §3.4–3.5: the device polls with its device code until the user decides.
    async fn exchange_device_code(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let raw = required(&req.device_code, "device_code")?;
        let invalid = || OAuthError::invalid_grant("the device code is invalid or already used");
        let code: DeviceCode = issued_code(raw, "device code", client, invalid, |prefix| {
            self.inner.store.get_device_code_by_prefix(prefix)
        })
        .await?;
        if code.used_at.is_some() {
            return Err(invalid());
        }
        let now = self.inner.clock.now();
        if code.expires_at <= now {
            return Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                "the device code expired; start the device flow again",
            ));
        }
        if !self
            .inner
            .store
            .poll_device_code(&code, now, super::device::SLOW_DOWN_SECS)
            .await?
        {
            return Err(OAuthError::new(
                ErrorCode::SlowDown,
                format!(
                    "polled faster than the interval; wait {} seconds between requests",
                    code.interval_secs + super::device::SLOW_DOWN_SECS
                ),
            ));
        }
        if code.denied_at.is_some() {
            // RFC 8628 §3.5 makes `access_denied` final ("the device MUST stop polling") but
            // does not say what a later poll gets. Our reading: the denial is answered once and
            // uses the code up, so a later poll is `invalid_grant` (RFC 6749 §5.2: the grant is
            // no longer valid) like any used code, not `access_denied` for ten minutes.
            if !self
                .inner
                .store
                .consume_denied_device_code(code.id, now)
                .await?
            {
                return Err(invalid());
            }
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        let (Some(_), Some(user_id)) = (code.approved_at, code.user_id) else {
            return Err(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not decided yet",
            ));
        };
        if client.app.is_builtin() {
            return self.open_cli_session(&code, user_id, now, ip).await;
        }
        let approved = Approved {
            grant_id: code.grant_id,
            user_id,
            user: UserRead::Pending,
            scope: &code.scope,
            audience: &code.audience,
        };
        self.finish_grant(req, client, approved, now, async |grant, refresh| {
            let redemption = Redemption::Grant { grant, refresh };
            if self
                .inner
                .store
                .redeem_device_code(code.id, now, redemption)
                .await?
            {
                Ok(())
            } else {
                Err(invalid())
            }
        })
        .await
    }

    /// The built-in Coder CLI's approved device code opens an API session (an API key, as a
    /// password sign-in does), not an MCP grant. Why: the CLI speaks `/api/v2`, which takes API
    /// keys and refuses our JWT access tokens (their audience is the MCP endpoint); Coder's own
    /// OAuth2 provider issues API keys as access tokens too. The key is returned as a Bearer
    /// `access_token` with its real lifetime (the session duration) and no refresh token (the
    /// CLI signs in again, as after a password session ends); it is revoked like any session
    /// (`coder logout`, `DELETE /api/v2/users/{user}/keys/{id}`) and its opening is audited.
    async fn open_cli_session(
        &self,
        code: &DeviceCode,
        user_id: UserId,
        now: DateTime<Utc>,
        ip: &str,
    ) -> OAuthResult<TokenResponse> {
        let user = self.grant_user(user_id).await?;
        let scopes = cap_to_role(&ScopeSet::parse_known(&code.scope), &user)?;
        let lifetime = self.inner.policy.cli_session_lifetime;
        let (key, token) = ApiKey::generate(
            user.id,
            LoginType::OAuth2ProviderApp,
            String::new(),
            lifetime,
            now,
        );
        let key_id = key.id.clone();
        if !self
            .inner
            .store
            .redeem_device_code(code.id, now, Redemption::Session(key))
            .await?
        {
            return Err(OAuthError::invalid_grant(
                "the device code is invalid or already used",
            ));
        }
        self.inner
            .audit
            .record(
                AuditEvent::new("user.login", "api_key", key_id)
                    .by(user.id)
                    .client(code.app_id)
                    .from_ip(ip)
                    .details(json!({
                        "login_type": LoginType::OAuth2ProviderApp.as_str(),
                        "grant_type": DEVICE_CODE_GRANT,
                    })),
            )
            .await;
        Ok(TokenResponse {
            access_token: token.into_inner(),
            token_type: "Bearer",
            expires_in: lifetime.num_seconds(),
            refresh_token: None,
            scope: scopes.to_wire(),
        })
    }

    /// What redeeming a code that `user` approved (an authorization code, a device code) grants
    /// `client`: the `scope` they approved, capped to their role now, for the code's audience,
    /// and the refresh token that opens the grant. The caller stores both in the code's
    /// redemption.
    async fn approved_grant(
        &self,
        client: &AuthenticatedClient,
        grant_id: GrantId,
        user: User,
        scope: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> OAuthResult<ApprovedGrant> {
        let scopes = cap_to_role(&ScopeSet::parse_known(scope), &user)?;
        let grant = Grant {
            id: grant_id,
            app_id: client.app.id,
            user_id: user.id,
            app_secret_id: client.secret_id,
            scope: scopes.to_wire(),
            audience: audience.to_owned(),
            last_used_at: now,
            revoked_at: None,
            created_at: now,
        };
        let (refresh, refresh_token) = self.new_refresh_token(grant.id);
        Ok(ApprovedGrant {
            user,
            scopes,
            grant,
            refresh,
            refresh_token,
        })
    }

    async fn refresh(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
    ) -> OAuthResult<TokenResponse> {
        let raw = required(&req.refresh_token, "refresh_token")?;
        let invalid =
            || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
        let presented = credentials::parse(raw).ok_or_else(invalid)?;
        // The token, its grant and the user are read in one query (a token request's round
        // trips are most of its cost, docs/benchmarks.md); the checks still run in order.
        let (token, grant, user) = self
            .inner
            .store
            .get_refresh_token_with_grant(presented.prefix)
            .await?
            .filter(|(t, _, _)| presented.matches(&t.hashed_secret))
            .ok_or_else(invalid)?;
        if grant.app_id != client.app.id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if grant.revoked_at.is_some() {
            return Err(invalid());
        }
        let now = self.inner.clock.now();
        if token.rotated_at.is_some() {
            return Err(self.refresh_replayed(grant.id, client).await);
        }
        if token.expires_at <= now {
            return Err(invalid());
        }
        self.check_resource(req.resource.as_deref(), &grant.audience)?;
        let user = usable_user(user)?;
        let granted = cap_to_role(&ScopeSet::parse_known(&grant.scope), &user)?;
        // RFC 6749 §6: a refresh may narrow the scope of the new access token, never widen it.
        // A scope naming nothing we know is not "the full grant": it is refused (§5.2).
        let asked = req
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let requested = asked.map(ScopeSet::parse_known);
        if requested.as_ref().is_some_and(ScopeSet::is_empty) {
            return Err(OAuthError::invalid_scope(format!(
                "the requested scope names no scope of this server; ask for some of {}",
                granted.to_wire()
            )));
        }
        let scopes = match requested {
            Some(requested) if requested.is_subset_of(&granted) => requested,
            Some(_) => {
                return Err(OAuthError::invalid_scope(format!(
                    "a refresh may only narrow the granted scope ({})",
                    granted.to_wire()
                )));
            }
            None => granted,
        };
        let (next, next_token) = self.new_refresh_token(grant.id);
        if !self
            .inner
            .store
            .rotate_refresh_token(token.id, now, next)
            .await?
        {
            return Err(self.refresh_replayed(grant.id, client).await);
        }
        self.mint(
            &user,
            client,
            grant.id,
            &grant.audience,
            &scopes,
            next_token,
        )
    }

    /// A `resource` on the token request must name the audience the grant was bound to.
    fn check_resource(&self, resource: Option<&str>, audience: &str) -> OAuthResult<()> {
        let Some(resource) = resource else {
            return Ok(());
        };
        match self.resources().audience_for(Some(resource)) {
            Ok(aud) if aud == audience => Ok(()),
            Ok(_) => Err(OAuthError::invalid_target(
                "resource differs from the one in the authorization request",
            )),
            Err(e) => Err(OAuthError::invalid_target(e.0)),
        }
    }

    /// The user behind a grant, if they may still use it: a deleted or suspended user's codes
    /// and refresh tokens are `invalid_grant` (RFC 6749 §5.2), so the client stops and asks again.
    async fn grant_user(&self, id: UserId) -> OAuthResult<User> {
        usable_user(self.inner.store.get_user_by_id(id).await?)
    }

    /// A second use of a code means it leaked: revoke what the first use obtained.
    async fn code_replayed(&self, grant: GrantId, client: &AuthenticatedClient) -> OAuthError {
        self.revoke_for_replay(grant, client, "authorization_code", "oauth2.code.replayed")
            .await;
        OAuthError::invalid_grant(
            "the authorization code was already used; tokens issued from it have been revoked",
        )
    }

    /// A rotated refresh token presented again means the family leaked (OAuth 2.1 §4.3.1).
    async fn refresh_replayed(&self, grant: GrantId, client: &AuthenticatedClient) -> OAuthError {
        self.revoke_for_replay(grant, client, "refresh_token", "oauth2.refresh.replayed")
            .await;
        OAuthError::invalid_grant(
            "the refresh token was already used; the grant has been revoked, so authorize again",
        )
    }

    async fn revoke_for_replay(
        &self,
        grant: GrantId,
        client: &AuthenticatedClient,
        credential: &'static str,
        action: &'static str,
    ) {
        let metrics = &self.inner.metrics;
        metrics.oauth_reuse_detected(client.app.client_type, credential);
        match self
            .inner
            .store
            .revoke_grant(grant, self.inner.clock.now())
            .await
        {
            Ok(revoked) => {
                if revoked {
                    metrics.oauth_revoked(client.app.client_type, "reuse", 1);
                }
                self.note_revoked([grant])
            }
            Err(err) => {
                tracing::error!(error = %err, grant = %grant, "could not revoke a replayed grant")
            }
        }
        self.inner
            .audit
            .record(AuditEvent::new(action, "oauth2_grant", grant))
            .await;
    }

    fn new_refresh_token(&self, grant: GrantId) -> (RefreshToken, String) {
        let now = self.inner.clock.now();
        let cred = credentials::generate();
        let token = RefreshToken {
            id: Uuid::new_v4(),
            grant_id: grant,
            secret_prefix: cred.prefix,
            hashed_secret: cred.hashed_secret,
            expires_at: now + self.inner.policy.refresh_token_lifetime,
            rotated_at: None,
            created_at: now,
        };
        (token, cred.full.into_inner())
    }

    fn mint(
        &self,
        user: &User,
        client: &AuthenticatedClient,
        grant: GrantId,
        audience: &str,
        scopes: &ScopeSet,
        refresh_token: String,
    ) -> OAuthResult<TokenResponse> {
        let now = self.inner.clock.now();
        let lifetime = self.inner.policy.access_token_lifetime;
        let claims = AccessTokenClaims {
            iss: self.issuer().to_owned(),
            sub: user.id.to_string(),
            aud: audience.to_owned(),
            // RFC 9068 §2.2: the client identifier the client used; `cid` keeps the row id
            // for a metadata-document client, whose identifier is its document's URL.
            client_id: client.app.wire_client_id(),
            scope: scopes.to_wire(),
            iat: now.timestamp(),
            exp: (now + lifetime).timestamp(),
            jti: Uuid::new_v4().to_string(),
            gid: grant.to_string(),
            cid: client
                .app
                .metadata_document_url
                .is_some()
                .then(|| client.app.id.to_string()),
        };
        let access_token =
            jwt::sign(&self.keys().current(), &claims).map_err(OAuthError::server_error)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.num_seconds(),
            refresh_token: client
                .app
                .grant_types
                .iter()
                .any(|g| g == "refresh_token")
                .then_some(refresh_token),
            scope: claims.scope,
        })
    }
}

/// `OAuthServer::grant_user` on a user already read (`None`: not found, or deleted).
fn usable_user(found: Option<User>) -> OAuthResult<User> {
    let user = found
        .ok_or_else(|| OAuthError::invalid_grant("the user who granted access no longer exists"))?;
    if user.status != UserStatus::Active {
        return Err(OAuthError::invalid_grant(
            "the user who granted access is suspended",
        ));
    }
    Ok(user)
}

/// The user who approved a code, as the code's lookup left them.
enum UserRead {
    /// Read with the code (`None`: not found, or deleted).
    Joined(Option<User>),
    /// Not read yet: `Approved::user_id` is looked up when needed.
    Pending,
}

/// What the user approved with a code, as both code grants redeem it.
struct Approved<'a> {
    grant_id: GrantId,
    user_id: UserId,
    user: UserRead,
    scope: &'a str,
    audience: &'a str,
}

/// A grant about to open: see `OAuthServer::approved_grant`.
struct ApprovedGrant {
    user: User,
    scopes: ScopeSet,
    grant: Grant,
    refresh: RefreshToken,
    refresh_token: String,
}

/// A single-use code the token endpoint redeems.
trait IssuedCode {
    fn hashed_secret(&self) -> &[u8];
    fn app_id(&self) -> ClientId;
}

impl IssuedCode for AuthorizationCode {
    fn hashed_secret(&self) -> &[u8] {
        &self.hashed_secret
    }
    fn app_id(&self) -> ClientId {
        self.app_id
    }
}

/// A code read with the user who approved it.
impl<T: IssuedCode> IssuedCode for (T, Option<User>) {
    fn hashed_secret(&self) -> &[u8] {
        self.0.hashed_secret()
    }
    fn app_id(&self) -> ClientId {
        self.0.app_id()
    }
}

impl IssuedCode for DeviceCode {
    fn hashed_secret(&self) -> &[u8] {
        &self.hashed_secret
    }
    fn app_id(&self) -> ClientId {
        self.app_id
    }
}

/// The stored code `raw` names (an authorization code, a device code), if it is genuine (found by
/// its prefix, its secret compared in constant time) and was issued to `client`; `invalid` is the
/// answer for a code that is not. The lookup both code grants share.
async fn issued_code<'a, T, Fut>(
    raw: &'a str,
    kind: &str,
    client: &AuthenticatedClient,
    invalid: impl Fn() -> OAuthError,
    lookup: impl FnOnce(&'a str) -> Fut,
) -> OAuthResult<T>
where
    T: IssuedCode,
    Fut: Future<Output = StoreResult<Option<T>>>,
{
    let presented = credentials::parse(raw).ok_or_else(&invalid)?;
    let code = lookup(presented.prefix)
        .await?
        .filter(|c| presented.matches(c.hashed_secret()))
        .ok_or_else(invalid)?;
    if code.app_id() != client.app.id {
        return Err(OAuthError::invalid_grant(format!(
            "the {kind} was issued to another client"
        )));
    }
    Ok(code)
}

/// Drops scopes the user's current role no longer allows; nothing left is an error.
fn cap_to_role(scopes: &ScopeSet, user: &User) -> OAuthResult<ScopeSet> {
    let capped: ScopeSet = scopes.iter().filter(|s| s.allowed_for(user.role)).collect();
    if capped.is_empty() {
        Err(OAuthError::invalid_grant(
            "the user's role no longer allows any of the granted scopes",
        ))
    } else {
        Ok(capped)
    }
}
