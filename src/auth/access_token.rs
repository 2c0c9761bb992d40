//! Verifies OAuth access tokens (RFC 9068 JWTs) for the resource server: signature, issuer,
//! audience (RFC 8707: the MCP endpoint's URL only), expiry and revocation. A verified token's
//! claims are cached by the token's hash until it expires, so the signature is checked once per
//! token, not per request, and no request needs the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::{ClientId, GrantId, ScopeSet, UserId};
use crate::oauth::jwt::{self, JwtError};
use crate::oauth::keys::KeyRing;
use crate::oauth::resource::Resources;
use crate::revocation::RevocationList;
use crate::secret;

/// Above this many cached tokens, expired ones are swept; if none are, the cache starts over.
const CACHE_LIMIT: usize = 50_000;

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAccessToken {
    pub user_id: UserId,
    pub client_id: ClientId,
    pub grant_id: GrantId,
    pub scopes: ScopeSet,
    pub audience: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused; each maps to an RFC 6750 `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    Invalid,
    Expired,
    Revoked,
    WrongAudience,
}

impl TokenRejection {
    pub fn description(self) -> &'static str {
        match self {
            TokenRejection::Invalid => "The access token is invalid.",
            TokenRejection::Expired => "The access token has expired.",
            TokenRejection::Revoked => "The access token has been revoked.",
            TokenRejection::WrongAudience => {
                "The access token was issued for another resource (audience mismatch)."
            }
        }
    }
}

#[derive(Debug)]
pub struct AccessTokenVerifier {
    issuer: String,
    resources: Resources,
    keys: Arc<KeyRing>,
    revocations: Arc<RevocationList>,
    clock: SharedClock,
    cache: Mutex<HashMap<Vec<u8>, Arc<VerifiedAccessToken>>>,
}

impl AccessTokenVerifier {
    pub fn new(
        issuer: String,
        resources: Resources,
        keys: Arc<KeyRing>,
        revocations: Arc<RevocationList>,
        clock: SharedClock,
    ) -> Self {
        Self {
            issuer,
            resources,
            keys,
            revocations,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the string looks like one of our JWTs (three segments), as opposed to an API key.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedAccessToken>, TokenRejection> {
        let now = self.clock.now();
        let fingerprint = secret::sha256(token.as_bytes());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fingerprint)
            .cloned();
        let verified = match cached {
            Some(v) => v,
            None => {
                let fresh = Arc::new(self.verify_uncached(token).await?);
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHE_LIMIT {
                    cache.retain(|_, v| v.expires_at > now);
                    if cache.len() >= CACHE_LIMIT {
                        cache.clear();
                    }
                }
                cache.insert(fingerprint, fresh.clone());
                fresh
            }
        };
        if verified.expires_at <= now {
            return Err(TokenRejection::Expired);
        }
        if self.revocations.is_revoked(verified.grant_id) {
            return Err(TokenRejection::Revoked);
        }
        Ok(verified)
    }

    async fn verify_uncached(&self, token: &str) -> Result<VerifiedAccessToken, TokenRejection> {
        // The MCP endpoint is the only resource server that accepts our access tokens, so only
        // a token issued for it is accepted (RFC 8707 §2, RFC 9068 §4): one whose `aud` is the
        // deployment root was issued for another resource.
        let expected = jwt::Expected {
            issuer: &self.issuer,
            audience: Some(&self.resources.mcp_url),
        };
        let claims = match jwt::verify(token, &expected, |kid| self.keys.verifying_key(kid)) {
            Err(JwtError::UnknownKey) => {
                // Another replica may have rotated keys since we loaded them.
                if matches!(self.keys.reload(false).await, Ok(true)) {
                    jwt::verify(token, &expected, |kid| self.keys.verifying_key(kid))
                } else {
                    Err(JwtError::UnknownKey)
                }
            }
            other => other,
        }
        .map_err(|e| match e {
            JwtError::WrongAudience => TokenRejection::WrongAudience,
            _ => TokenRejection::Invalid,
        })?;
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|_| TokenRejection::Invalid);
        let expires_at = Utc
            .timestamp_opt(claims.exp, 0)
            .single()
            .ok_or(TokenRejection::Invalid)?;
        // A metadata-document client's `client_id` is its URL; `cid` then names its row.
        let client_row = claims.cid.as_deref().unwrap_or(&claims.client_id);
        Ok(VerifiedAccessToken {
            user_id: UserId(uuid(&claims.sub)?),
            client_id: ClientId(uuid(client_row)?),
            grant_id: GrantId(uuid(&claims.gid)?),
            scopes: ScopeSet::parse_known(&claims.scope),
            audience: claims.aud,
            expires_at,
        })
    }
}
