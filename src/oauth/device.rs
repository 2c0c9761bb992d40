//! The device authorization grant (RFC 8628): the device authorization endpoint (§3.1–3.2),
//! user codes, and the user's decision on the verification page (§3.3).

use chrono::Duration;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::client_auth::{ClientCredentials, ClientForm};
use super::scopes::negotiate;
use super::{OAuthError, OAuthResult, OAuthServer};
use crate::audit::AuditEvent;
use crate::domain::{
    DEVICE_CODE_GRANT, DeviceCode, GrantId, OAuthApp, Role, ScopeSet, User, credentials,
};

/// How long a device code and its user code live (RFC 8628 §3.2 `expires_in`).
pub const DEVICE_CODE_LIFETIME: Duration = Duration::minutes(10);
/// The minimum seconds between polls (RFC 8628 §3.2 `interval`).
pub const POLL_INTERVAL_SECS: i64 = 5;
/// What each `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_SECS: i64 = 5;
/// Where the user goes to enter the code, under the access URL.
pub const VERIFICATION_PATH: &str = "/oauth2/device/verify";

/// Consonants only (RFC 8628 §6.1): no vowels to spell words, no 0/O or 1/I/L to confuse, and
/// case does not matter.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// A fresh user code, normalized (no dash).
fn generate_user_code() -> String {
    let mut rng = rand::thread_rng();
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// What a person typed, as stored: upper case, without dashes or spaces (RFC 8628 §6.1 says to
/// compare case-insensitively and ignore punctuation). `None` when it cannot be a user code, so
/// nothing is looked up.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// A normalized user code as shown to people: `XXXX-XXXX`.
pub fn display_user_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(head), Some(tail)) if !tail.is_empty() => format!("{head}-{tail}"),
        _ => code.to_owned(),
    }
}

/// A device authorization request's form fields; unknown ones are ignored.
#[derive(Debug, Default, Clone)]
pub struct DeviceAuthorizationRequest {
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub client: ClientCredentials,
    /// Names of parameters sent more than once.
    pub repeated: Vec<String>,
}

impl ClientForm for DeviceAuthorizationRequest {
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        match key {
            "scope" => Some(&mut self.scope),
            "resource" => Some(&mut self.resource),
            _ => None,
        }
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

    /// RFC 8628 §3.1: only clients that registered the device grant may ask for a device code.
    fn grant_type(&self) -> OAuthResult<&str> {
        Ok(DEVICE_CODE_GRANT)
    }
}

/// RFC 8628 §3.2.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

impl OAuthServer {
    /// `POST /oauth2/device` (RFC 8628 §3.1): the client authenticates as at the token endpoint
    /// (§3.1 requires it for confidential clients) and must have registered the device grant.
    pub async fn device_authorization(
        &self,
        read: OAuthResult<DeviceAuthorizationRequest>,
        ip: &str,
    ) -> OAuthResult<DeviceAuthorizationResponse> {
        let (req, client) = self.authenticated_request("device", read, ip).await?;
        let audience = self
            .resources()
            .audience_for(req.resource.as_deref())
            .map_err(|e| OAuthError::invalid_target(e.0))?;
        // The approving user is not known yet: keep what the most privileged role could get;
        // the approver's role narrows it on the verification page, as at authorize.
        let scopes = negotiate(req.scope.as_deref(), &client.app.scope, Role::Owner)
            .ok_or_else(|| {
                OAuthError::invalid_scope(format!(
                    "none of the requested scopes can be granted to this client; supported scopes: {}",
                    ScopeSet::all().to_wire()
                ))
            })?;
        let now = self.inner.clock.now();
        let device_code = credentials::generate();
        let user_code = generate_user_code();
        self.inner
            .store
            .insert_device_code(&DeviceCode {
                id: Uuid::new_v4(),
                secret_prefix: device_code.prefix.clone(),
                hashed_secret: device_code.hashed_secret.clone(),
                user_code: user_code.clone(),
                app_id: client.app.id,
                scope: scopes.to_wire(),
                audience,
                grant_id: GrantId(Uuid::new_v4()),
                interval_secs: POLL_INTERVAL_SECS,
                last_polled_at: None,
                user_id: None,
                approved_at: None,
                denied_at: None,
                used_at: None,
                expires_at: now + DEVICE_CODE_LIFETIME,
                created_at: now,
            })
            .await?;
        let shown = display_user_code(&user_code);
        let verification_uri = format!("{}{VERIFICATION_PATH}", self.issuer());
        Ok(DeviceAuthorizationResponse {
            device_code: device_code.full.into_inner(),
            verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
            user_code: shown,
            verification_uri,
            expires_in: DEVICE_CODE_LIFETIME.num_seconds(),
            interval: POLL_INTERVAL_SECS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typed_forgivingly_and_shown_with_a_dash() {
        let code = generate_user_code();
        assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
        let shown = display_user_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(shown.as_bytes()[4], b'-');
        assert_eq!(
            normalize_user_code(&format!(" {} ", shown.to_lowercase())).as_deref(),
            Some(code.as_str())
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None, "too short");
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "vowel: not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ0"), None);
    }
}

/// A pending device request as the verification page shows it.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    pub code: DeviceCode,
    pub app: OAuthApp,
    /// What approving would grant this user.
    pub scopes: ScopeSet,
}

/// Why the verification page cannot go on with a code.
#[derive(Debug, Clone)]
pub enum VerifyFailure {
    /// Unknown, expired, already decided, or not grantable to this user: say so and let them
    /// type it again.
    Refused(String),
    /// Too many tries from this address or account.
    RateLimited(OAuthError),
    /// The database failed.
    Failed(OAuthError),
}

impl From<OAuthError> for VerifyFailure {
    fn from(err: OAuthError) -> Self {
        VerifyFailure::Failed(err)
    }
}

impl OAuthServer {
    /// The pending request a signed-in user typed the code of. Every lookup counts against the
    /// caller's IP and the user (RFC 8628 §5.1: user codes are short, so guessing must be slow).
    pub async fn pending_device(
        &self,
        typed: &str,
        user: &User,
        ip: &str,
    ) -> Result<PendingDevice, VerifyFailure> {
        self.check_ip_limit("device_verify", ip)
            .and_then(|()| self.check_client_limit("device_verify", &format!("user:{}", user.id.0)))
            .map_err(VerifyFailure::RateLimited)?;
        let invalid = || {
            VerifyFailure::Refused(
                "This code is not valid. Check it and try again, or start again on your device."
                    .to_owned(),
            )
        };
        let normalized = normalize_user_code(typed).ok_or_else(invalid)?;
        let code = self
            .inner
            .store
            .get_device_code_by_user_code(&normalized)
            .await
            .map_err(OAuthError::from)?
            .ok_or_else(invalid)?;
        if code.approved_at.is_some() || code.denied_at.is_some() {
            return Err(VerifyFailure::Refused(
                "This code was already used. Start again on your device.".to_owned(),
            ));
        }
        if code.expires_at <= self.inner.clock.now() {
            return Err(VerifyFailure::Refused(
                "This code expired. Start again on your device.".to_owned(),
            ));
        }
        let app = self
            .inner
            .store
            .get_oauth_app(code.app_id)
            .await
            .map_err(OAuthError::from)?
            .ok_or_else(invalid)?;
        let scopes = negotiate(Some(&code.scope), &app.scope, user.role).ok_or_else(|| {
            VerifyFailure::Refused(
                "Your role does not allow any of the access this device asks for.".to_owned(),
            )
        })?;
        Ok(PendingDevice { code, app, scopes })
    }

    /// The user's decision (RFC 8628 §3.3), recorded and audited as consent is.
    pub async fn decide_device(
        &self,
        pending: &PendingDevice,
        user: &User,
        approved: bool,
        ip: &str,
    ) -> Result<(), VerifyFailure> {
        let now = self.inner.clock.now();
        let decided = self
            .inner
            .store
            .decide_device_code(
                pending.code.id,
                user.id,
                &pending.scopes.to_wire(),
                approved,
                now,
            )
            .await
            .map_err(OAuthError::from)?;
        if !decided {
            return Err(VerifyFailure::Refused(
                "This code was already used or expired. Start again on your device.".to_owned(),
            ));
        }
        let app = &pending.app;
        self.inner
            .metrics
            .oauth_authorization(app.client_type, approved);
        let action = if approved {
            "oauth2.consent.allow"
        } else {
            "oauth2.consent.deny"
        };
        let mut event = AuditEvent::new(action, "oauth2_provider_app", app.id)
            .by(user.id)
            .client(app.id)
            .from_ip(ip);
        if approved {
            event = event.details(json!({
                "scope": pending.scopes.to_wire(),
                "audience": pending.code.audience,
                "grant_type": DEVICE_CODE_GRANT,
            }));
        }
        self.inner.audit.record(event).await;
        Ok(())
    }
}
