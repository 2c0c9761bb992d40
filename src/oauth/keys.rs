//! The access-token key ring: the key new tokens are signed with, every key still valid for
//! verification, and the JWKS document that publishes them. Keys live in the database, so every
//! replica signs and verifies with the same set.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::jwt::{self, SigningKey, VerifyingKey};
use crate::domain::StoredSigningKey;
use crate::store::{SharedStore, StoreError};

const ALGORITHM: &str = "EdDSA";
/// A token naming an unknown `kid` reloads the ring at most this often, so random kids cannot
/// turn into a database query per request.
const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Keys {
    current: Arc<SigningKey>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: Value,
}

#[derive(Debug)]
pub struct KeyRing {
    store: SharedStore,
    keys: RwLock<Keys>,
    last_reload: std::sync::Mutex<Instant>,
}

impl KeyRing {
    /// Loads the keys, creating the first one when the database has none.
    pub async fn load_or_create(
        store: SharedStore,
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, StoreError> {
        let mut stored = store.list_signing_keys().await?;
        if !stored.iter().any(|k| k.retired_at.is_none()) {
            store
                .insert_signing_key(to_stored(&SigningKey::generate(), now))
                .await?;
            stored = store.list_signing_keys().await?;
        }
        let keys = build(&stored)?;
        Ok(Arc::new(KeyRing {
            store,
            keys: RwLock::new(keys),
            last_reload: std::sync::Mutex::new(Instant::now()),
        }))
    }

    /// Creates a new signing key and retires the others; retired keys keep verifying until
    /// their tokens have expired. For `coder server rotate-oauth2-signing-key`.
    pub async fn rotate(store: &SharedStore, now: DateTime<Utc>) -> Result<String, StoreError> {
        let key = SigningKey::generate();
        store.insert_signing_key(to_stored(&key, now)).await?;
        store.retire_signing_keys_except(&key.kid, now).await?;
        Ok(key.kid)
    }

    pub fn current(&self) -> Arc<SigningKey> {
        self.read().current.clone()
    }

    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.read().verifying.get(kid).copied()
    }

    /// The RFC 7517 JWK Set served at the `jwks_uri`.
    pub fn jwks(&self) -> Value {
        self.read().jwks.clone()
    }

    /// Re-reads the keys from the database (another replica may have rotated). Returns whether
    /// it ran; throttled to once per `RELOAD_INTERVAL` unless `force`.
    pub async fn reload(&self, force: bool) -> Result<bool, StoreError> {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.elapsed() < RELOAD_INTERVAL {
                return Ok(false);
            }
            *last = Instant::now();
        }
        let stored = self.store.list_signing_keys().await?;
        let fresh = build(&stored)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn to_stored(key: &SigningKey, now: DateTime<Utc>) -> StoredSigningKey {
    StoredSigningKey {
        kid: key.kid.clone(),
        algorithm: ALGORITHM.to_owned(),
        private_key: key.seed_b64(),
        public_key: key.public_b64(),
        retired_at: None,
        created_at: now,
    }
}

fn build(stored: &[StoredSigningKey]) -> Result<Keys, StoreError> {
    let bad = |e: jwt::JwtError| StoreError::Corrupt {
        column: "oauth2_signing_keys",
        detail: format!("unusable signing key: {e}"),
    };
    let mut verifying = HashMap::new();
    let mut published = Vec::new();
    for key in stored.iter().filter(|k| k.algorithm == ALGORITHM) {
        let public = jwt::verifying_key_from_b64(&key.public_key).map_err(bad)?;
        published.push(jwt::jwk_from_verifying_key(&key.kid, &public));
        verifying.insert(key.kid.clone(), public);
    }
    // The newest active key signs; keys are listed oldest first.
    let current = stored
        .iter()
        .rev()
        .find(|k| k.retired_at.is_none() && k.algorithm == ALGORITHM)
        .ok_or_else(|| StoreError::Corrupt {
            column: "oauth2_signing_keys",
            detail: "no active access-token signing key".into(),
        })?;
    let current = SigningKey::from_parts(current.kid.clone(), &current.private_key).map_err(bad)?;
    Ok(Keys {
        current: Arc::new(current),
        verifying,
        jwks: json!({ "keys": published }),
    })
}
