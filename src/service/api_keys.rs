//! API keys: browser sessions, user-created tokens, and authenticating a request by either.
//!
//! A key reads `<id>-<secret>` (Coder's format): the 10-character id is the lookup, and only the
//! SHA-256 of the 22-character secret is stored.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::require_owner;
use super::{Services, UserSelector, conflict_field, validate};
use crate::audit::AuditEvent;
use crate::domain::{
    ApiKey, ApiKeyId, Credential, DomainError, FieldError, LoginType, Principal, User, UserId,
    UserStatus,
};
use crate::secret::{self, Secret};

use crate::domain::api_key::{KEY_ID_LEN as ID_LEN, KEY_SECRET_LEN as SECRET_LEN};

/// `last_used` is written at most this often per key, so authentication is not a write per request.
const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Default)]
pub struct CreateTokenRequest {
    pub token_name: String,
    /// Requested lifetime in nanoseconds (Go's `time.Duration`); 0 means the default.
    pub lifetime_ns: i64,
}

/// A freshly issued key: the only moment its secret is known.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: Secret,
}

const INVALID_TOKEN: &str =
    "Invalid or unknown session token. Sign in again, or create a new API token.";

impl Services {
    /// Opens a browser session for a user who just proved their password.
    /// A browser session for `user`: its token, and its key's id for the audit log.
    pub(super) async fn create_session(
        &self,
        user: UserId,
    ) -> Result<(Secret, ApiKeyId), DomainError> {
        let lifetime =
            Duration::from_std(self.policy.session_duration).map_err(DomainError::internal)?;
        let issued = self
            .issue_key(user, LoginType::Password, String::new(), lifetime)
            .await?;
        Ok((issued.token, issued.key.id))
    }

    /// Creates a named, long-lived token for `who` (the caller, or anyone for an owner).
    pub async fn create_token(
        &self,
        actor: &Principal,
        who: &UserSelector,
        req: CreateTokenRequest,
    ) -> Result<IssuedKey, DomainError> {
        let user = self.key_owner(actor, who).await?;
        let name = req.token_name.trim().to_owned();
        let mut problems = Vec::new();
        if let Err(p) = validate::token_name("token_name", &name) {
            problems.push(p);
        }
        let max = self.policy.max_token_lifetime;
        let lifetime = match req.lifetime_ns {
            0 => Some(self.policy.default_token_lifetime),
            n if n < 0 => None,
            n => Some(std::time::Duration::from_nanos(n.unsigned_abs())),
        };
        let lifetime = match lifetime {
            Some(l) if l >= std::time::Duration::from_secs(1) && l <= max => l,
            _ => {
                problems.push(FieldError::new(
                    "lifetime",
                    format!(
                        "Must be between 1s and the maximum token lifetime of {}h, in nanoseconds.",
                        max.as_secs() / 3600
                    ),
                ));
                max
            }
        };
        if !problems.is_empty() {
            return Err(DomainError::invalid_fields(
                "Invalid token request.",
                problems,
            ));
        }
        let lifetime = Duration::from_std(lifetime).map_err(DomainError::internal)?;
        let issued = self
            .issue_key(user.id, LoginType::Token, name, lifetime)
            .await?;
        self.audit(
            actor,
            AuditEvent::new("api_key.create", "api_key", &issued.key.id.0).details(json!({
                "token_name": issued.key.token_name,
                "username": user.username,
                "lifetime_seconds": issued.key.lifetime_seconds,
                "expires_at": issued.key.expires_at,
            })),
        )
        .await;
        Ok(issued)
    }

    pub async fn list_tokens(
        &self,
        actor: &Principal,
        who: &UserSelector,
    ) -> Result<(User, Vec<ApiKey>), DomainError> {
        let user = self.key_owner(actor, who).await?;
        let keys = self.store.list_api_keys(user.id, LoginType::Token).await?;
        Ok((user, keys))
    }

    pub async fn delete_key(
        &self,
        actor: &Principal,
        who: &UserSelector,
        id: &str,
    ) -> Result<(), DomainError> {
        let user = self.key_owner(actor, who).await?;
        if !self
            .store
            .delete_api_key(user.id, &ApiKeyId(id.to_owned()))
            .await?
        {
            return Err(DomainError::NotFound("API key not found.".into()));
        }
        self.audit(
            actor,
            AuditEvent::new("api_key.delete", "api_key", id)
                .details(json!({ "username": user.username })),
        )
        .await;
        Ok(())
    }

    /// Ends the session (or revokes the token) the caller authenticated with.
    pub async fn logout(&self, actor: &Principal) -> Result<(), DomainError> {
        match &actor.credential {
            Credential::ApiKey { id, .. } => {
                self.store.delete_api_key(actor.user.id, id).await?;
                Ok(())
            }
            Credential::OAuth { .. } => Err(DomainError::invalid(
                "OAuth access tokens are revoked at /oauth2/revoke, not by signing out.",
            )),
        }
    }

    /// Resolves a presented token to its user, or says why it is not accepted.
    pub async fn authenticate_api_key(&self, raw: &str) -> Result<Principal, DomainError> {
        let (id, secret_part) =
            parse_key(raw).ok_or_else(|| DomainError::Unauthenticated(INVALID_TOKEN.into()))?;
        let key = self
            .store
            .get_api_key(&ApiKeyId(id.to_owned()))
            .await?
            .filter(|key| {
                secret::constant_time_eq(
                    &key.hashed_secret,
                    &secret::sha256(secret_part.as_bytes()),
                )
            })
            .ok_or_else(|| DomainError::Unauthenticated(INVALID_TOKEN.into()))?;
        let now = self.clock.now();
        if key.expires_at <= now {
            return Err(DomainError::Unauthenticated(
                "The session token has expired. Sign in again, or create a new API token.".into(),
            ));
        }
        let user = self
            .store
            .get_user_by_id(key.user_id)
            .await?
            .filter(|u| u.status == UserStatus::Active)
            .ok_or_else(|| DomainError::Unauthenticated(INVALID_TOKEN.into()))?;
        if now - key.last_used >= LAST_USED_RESOLUTION {
            self.store.touch_api_key(&key.id, now).await?;
        }
        Ok(Principal {
            user,
            credential: Credential::ApiKey {
                id: key.id,
                login_type: key.login_type,
            },
        })
    }

    /// Deletes keys past their expiry; run periodically.
    pub async fn delete_expired_keys(&self) -> Result<u64, DomainError> {
        Ok(self.store.delete_expired_api_keys(self.clock.now()).await?)
    }

    async fn key_owner(&self, actor: &Principal, who: &UserSelector) -> Result<User, DomainError> {
        let user = self.get_user(actor, who).await?;
        if user.id != actor.user.id {
            require_owner(actor)?;
        }
        Ok(user)
    }

    async fn issue_key(
        &self,
        user: UserId,
        login_type: LoginType,
        token_name: String,
        lifetime: Duration,
    ) -> Result<IssuedKey, DomainError> {
        let now: DateTime<Utc> = self.clock.now();
        let (key, token) = ApiKey::generate(user, login_type, token_name, lifetime, now);
        self.store.insert_api_key(key.clone()).await.map_err(|e| {
            if conflict_field(&e) == Some("token_name") {
                DomainError::conflict(
                    "You already have a token with this name.",
                    Some("token_name"),
                )
            } else {
                e.into()
            }
        })?;
        Ok(IssuedKey { key, token })
    }
}

/// Splits `<id>-<secret>`, checking lengths and alphabet before any database work.
fn parse_key(raw: &str) -> Option<(&str, &str)> {
    let (id, secret_part) = raw.split_once('-')?;
    let ok = id.len() == ID_LEN
        && secret_part.len() == SECRET_LEN
        && id
            .bytes()
            .chain(secret_part.bytes())
            .all(|b| b.is_ascii_alphanumeric());
    ok.then_some((id, secret_part))
}

#[cfg(test)]
mod tests {
    use super::parse_key;

    #[test]
    fn parses_only_well_formed_keys() {
        assert_eq!(
            parse_key("abcdefghij-abcdefghijklmnopqrstuv"),
            Some(("abcdefghij", "abcdefghijklmnopqrstuv"))
        );
        assert_eq!(parse_key("abcdefghij-short"), None);
        assert_eq!(parse_key("abcdefghijabcdefghijklmnopqrstuvw"), None);
        assert_eq!(parse_key("abcdefgh!j-abcdefghijklmnopqrstuv"), None);
    }
}

/// Property tests of the `<id>-<secret>` session and API token format.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text};

    proptest! {
        #![proptest_config(config(128))]

        #[test]
        fn keys_round_trip(id in "[a-zA-Z0-9]{10}", secret in "[a-zA-Z0-9]{22}") {
            let raw = format!("{id}-{secret}");
            prop_assert_eq!(parse_key(&raw), Some((id.as_str(), secret.as_str())));
        }

        #[test]
        fn other_text_is_refused_or_well_formed(raw in prop_oneof![hostile_text(), "[a-zA-Z0-9-]{0,40}"]) {
            if let Some((id, secret)) = parse_key(&raw) {
                prop_assert_eq!(id.len(), ID_LEN);
                prop_assert_eq!(secret.len(), SECRET_LEN);
                prop_assert!(id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_alphanumeric()));
            }
        }
    }
}
