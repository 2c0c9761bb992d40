//! Password hashing (argon2id, PHC strings) and the password policy.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use tokio::sync::Semaphore;

use crate::domain::{DomainError, FieldError};

pub const MIN_PASSWORD_LEN: usize = 8;
/// Long enough for any passphrase, short enough that hashing cannot be used to burn CPU.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Checks the policy: length, and not the same as the username or email.
pub fn check_policy(password: &str, username: &str, email: &str) -> Result<(), FieldError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(FieldError::new(
            "password",
            format!("Password must be at least {MIN_PASSWORD_LEN} characters."),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(FieldError::new(
            "password",
            format!("Password must be at most {MAX_PASSWORD_LEN} characters."),
        ));
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() || lowered == email.to_lowercase() {
        return Err(FieldError::new(
            "password",
            "Password must not be the same as the username or email.",
        ));
    }
    Ok(())
}

/// A bound on concurrent password hashing. argon2id takes about 19 MiB and a core for tens of
/// milliseconds per hash, so a burst of sign-ins must not each get one: at most `permits` run at
/// once, a request waits at most `wait` for a turn, then gets a 503 with `Retry-After`.
#[derive(Debug)]
pub struct HashingPool {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashingPool {
    pub fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            wait,
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let busy = || DomainError::Unavailable {
            message: "The server is busy checking other passwords. Try again in a moment.".into(),
            retry_after_secs: 1,
        };
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        // The permit goes with the work: a request abandoned mid-hash (the client hung up) does
        // not free its slot before the hash it started is done.
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(DomainError::internal)?
    }
}

/// Hashes on the blocking pool: argon2id is deliberately slow.
pub async fn hash(pool: &HashingPool, password: String) -> Result<String, DomainError> {
    pool.run(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(DomainError::internal)
    })
    .await
}

/// Verifies on the blocking pool. With no stored hash, a dummy hash is checked instead so that
/// an unknown email takes as long as a wrong password.
pub async fn verify(
    pool: &HashingPool,
    password: String,
    stored: Option<String>,
) -> Result<bool, DomainError> {
    pool.run(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored).map_err(DomainError::internal)?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && ok)
    })
    .await
}

/// argon2id (default parameters) of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Jq0jTnq1h3bO4S6QKXwtzg9Yb5zjbZrC4kLlPAx3dE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rejects_short_and_identity_passwords() {
        assert!(check_policy("short", "alice", "a@x.io").is_err());
        assert!(check_policy("Alice123", "alice123", "a@x.io").is_err());
        assert!(check_policy("a@x.io.io", "bob", "a@x.io.io").is_err());
        assert!(check_policy("correct horse", "alice", "a@x.io").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_and_dummy_never_matches() {
        let pool = HashingPool::new(2, Duration::from_secs(5));
        let hashed = hash(&pool, "correct horse".into()).await.ok();
        assert!(
            hashed
                .as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$"))
        );
        assert_eq!(
            verify(&pool, "correct horse".into(), hashed.clone())
                .await
                .ok(),
            Some(true)
        );
        assert_eq!(
            verify(&pool, "wrong horse".into(), hashed).await.ok(),
            Some(false)
        );
        assert_eq!(
            verify(&pool, "anything".into(), None).await.ok(),
            Some(false)
        );
    }

    #[tokio::test]
    async fn excess_hashing_waits_then_is_refused() {
        let pool = std::sync::Arc::new(HashingPool::new(1, Duration::from_millis(10)));
        let held = pool.permits.acquire().await.ok();
        assert!(held.is_some());
        let refused = hash(&pool, "correct horse".into()).await;
        assert!(matches!(
            refused,
            Err(DomainError::Unavailable {
                retry_after_secs: 1,
                ..
            })
        ));
        drop(held);
        assert!(hash(&pool, "correct horse".into()).await.is_ok());
    }
}
