//! The token endpoint (RFC 6749 §4.1.3, §6; OAuth 2.1 §4.3.1): code exchange with PKCE, refresh
//! with rotation and reuse detection, and minting access tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::client_auth::{AuthenticatedClient, ClientCredentials};
use super::jwt::{self, AccessTokenClaims};
use super::{ErrorCode, OAuthError, OAuthResult, OAuthServer, pkce};
use crate::audit::AuditEvent;
use crate::domain::{
    AuthorizationCode, Grant, GrantId, RefreshToken, ScopeSet, User, UserId, UserStatus,
};
use crate::domain::{DEVICE_CODE_GRANT, credentials};

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

impl TokenRequest {
    /// Reads the form body; `client_id` and `client_secret` go to the client credentials.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut req = TokenRequest::default();
        for (key, value) in pairs {
            let slot = match key {
                "grant_type" => &mut req.grant_type,
                "code" => &mut req.code,
                "redirect_uri" => &mut req.redirect_uri,
                "code_verifier" => &mut req.code_verifier,
                "refresh_token" => &mut req.refresh_token,
                "device_code" => &mut req.device_code,
                "scope" => &mut req.scope,
                "resource" => &mut req.resource,
                "client_id" => &mut req.client.body_client_id,
                "client_secret" => &mut req.client.body_client_secret,
                "client_assertion_type" => &mut req.client.assertion_type,
                "client_assertion" => &mut req.client.assertion,
                _ => continue,
            };
            if slot.is_some() {
                req.repeated.push(key.to_owned());
            }
            *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        req
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
        self.check_ip_limit("token", ip)?;
        let req = read?;
        if req.repeated.iter().any(|n| n == "grant_type") {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type was sent more than once",
            ));
        }
        if let Some(name) = req.repeated.first() {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {name} was sent more than once"
            )));
        }
        let grant_type = required(&req.grant_type, "grant_type")?.to_owned();
        if !["authorization_code", "refresh_token", DEVICE_CODE_GRANT]
            .contains(&grant_type.as_str())
        {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!(
                    "grant_type must be authorization_code, refresh_token or {DEVICE_CODE_GRANT}"
                ),
            ));
        }
        let client = self.authenticate_client(&req.client, ip).await?;
        self.check_authenticated_client_limit("token", &client, ip)?;
        if !client.app.grant_types.contains(&grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("this client did not register the {grant_type} grant type"),
            ));
        }
        let response = match grant_type.as_str() {
            "authorization_code" => self.exchange_code(&req, &client).await?,
            DEVICE_CODE_GRANT => self.exchange_device_code(&req, &client).await?,
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
        let code = self.redeemable_code(req, client, now).await?;
        self.check_resource(req.resource.as_deref(), &code.audience)?;
        let ApprovedGrant {
            user,
            scopes,
            grant,
            refresh,
            refresh_token,
        } = self
            .approved_grant(
                client,
                code.grant_id,
                code.user_id,
                &code.scope,
                &code.audience,
                now,
            )
            .await?;
        if !self
            .inner
            .store
            .redeem_auth_code(code.id, now, grant, refresh)
            .await?
        {
            // Lost a race with another exchange of the same code.
            return Err(self.code_replayed(code.grant_id, client).await);
        }
        self.mint(
            &user,
            client,
            code.grant_id,
            &code.audience,
            &scopes,
            refresh_token,
        )
    }

    /// The authorization code the request presents, if `client` may redeem it `now`: issued to
    /// it, unused (a replay revokes the grant), unexpired, asked for with the same redirect URI,
    /// and proven by the PKCE verifier.
    async fn redeemable_code(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
        now: DateTime<Utc>,
    ) -> OAuthResult<AuthorizationCode> {
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
        let presented = credentials::parse(raw).ok_or_else(invalid)?;
        let code = self
            .inner
            .store
            .get_auth_code_by_prefix(presented.prefix)
            .await?
            .filter(|c| presented.matches(&c.hashed_secret))
            .ok_or_else(invalid)?;
        if code.app_id != client.app.id {
            return Err(OAuthError::invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
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
        Ok(code)
    }

    /// RFC 8628 §3.4–3.5: the device polls with its device code until the user decides.
    async fn exchange_device_code(
        &self,
        req: &TokenRequest,
        client: &AuthenticatedClient,
    ) -> OAuthResult<TokenResponse> {
        let raw = required(&req.device_code, "device_code")?;
        let invalid = || OAuthError::invalid_grant("the device code is invalid or already used");
        let presented = credentials::parse(raw).ok_or_else(invalid)?;
        let code = self
            .inner
            .store
            .get_device_code_by_prefix(presented.prefix)
            .await?
            .filter(|c| presented.matches(&c.hashed_secret))
            .ok_or_else(invalid)?;
        if code.app_id != client.app.id {
            return Err(OAuthError::invalid_grant(
                "the device code was issued to another client",
            ));
        }
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
        self.check_resource(req.resource.as_deref(), &code.audience)?;
        let ApprovedGrant {
            user,
            scopes,
            grant,
            refresh,
            refresh_token,
        } = self
            .approved_grant(
                client,
                code.grant_id,
                user_id,
                &code.scope,
                &code.audience,
                now,
            )
            .await?;
        if !self
            .inner
            .store
            .redeem_device_code(code.id, now, grant, refresh)
            .await?
        {
            return Err(invalid());
        }
        self.mint(
            &user,
            client,
            code.grant_id,
            &code.audience,
            &scopes,
            refresh_token,
        )
    }

    /// What redeeming a code the user approved (an authorization code, a device code) grants
    /// `client`: the user's `scope`, capped to their role now, for the code's audience, and the
    /// refresh token that opens the grant. The caller stores both in the code's redemption.
    async fn approved_grant(
        &self,
        client: &AuthenticatedClient,
        grant_id: GrantId,
        user_id: UserId,
        scope: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> OAuthResult<ApprovedGrant> {
        let user = self.grant_user(user_id).await?;
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
        let token = self
            .inner
            .store
            .get_refresh_token_by_prefix(presented.prefix)
            .await?
            .filter(|t| presented.matches(&t.hashed_secret))
            .ok_or_else(invalid)?;
        let grant = self
            .inner
            .store
            .get_grant(token.grant_id)
            .await?
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
        let user = self.grant_user(grant.user_id).await?;
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
        let user = self.inner.store.get_user_by_id(id).await?.ok_or_else(|| {
            OAuthError::invalid_grant("the user who granted access no longer exists")
        })?;
        if user.status != UserStatus::Active {
            return Err(OAuthError::invalid_grant(
                "the user who granted access is suspended",
            ));
        }
        Ok(user)
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

/// A grant about to open: see `OAuthServer::approved_grant`.
struct ApprovedGrant {
    user: User,
    scopes: ScopeSet,
    grant: Grant,
    refresh: RefreshToken,
    refresh_token: String,
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
