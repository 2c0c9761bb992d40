//! Password hashing (argon2id, PHC strings) and the password policy.

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

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

/// Hashes on the blocking pool: argon2id is deliberately slow.
pub async fn hash(password: String) -> Result<String, DomainError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(DomainError::internal)
    })
    .await
    .map_err(DomainError::internal)?
}

/// Verifies on the blocking pool. With no stored hash, a dummy hash is checked instead so that
/// an unknown email takes as long as a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, DomainError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored).map_err(DomainError::internal)?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && ok)
    })
    .await
    .map_err(DomainError::internal)?
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
        let hashed = hash("correct horse".into()).await.ok();
        assert!(
            hashed
                .as_deref()
                .is_some_and(|h| h.starts_with("$argon2id$"))
        );
        assert_eq!(
            verify("correct horse".into(), hashed.clone()).await.ok(),
            Some(true)
        );
        assert_eq!(verify("wrong horse".into(), hashed).await.ok(), Some(false));
        assert_eq!(verify("anything".into(), None).await.ok(), Some(false));
    }
}
