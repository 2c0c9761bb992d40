//! Opaque OAuth secrets (client secrets, codes, refresh tokens, registration tokens):
//! `coder_<prefix>_<secret>`, looked up by prefix, stored as SHA-256 of the secret part.

use crate::secret::{self, Secret};

const PREFIX_LEN: usize = 10;
const SECRET_LEN: usize = 40;

/// A freshly generated credential: the full value for the client, the parts for the store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub full: Secret,
    pub prefix: String,
    pub hashed_secret: Vec<u8>,
}

pub fn generate() -> NewCredential {
    let prefix = secret::random_alphanumeric(PREFIX_LEN);
    let secret_part = secret::random_alphanumeric(SECRET_LEN);
    NewCredential {
        full: Secret::new(format!("coder_{prefix}_{secret_part}")),
        hashed_secret: secret::sha256(secret_part.as_bytes()),
        prefix,
    }
}

/// A presented credential split into its lookup prefix and secret part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    pub prefix: &'a str,
    secret: &'a str,
}

impl Presented<'_> {
    /// Whether the secret part matches a stored hash, compared in constant time.
    pub fn matches(&self, hashed_secret: &[u8]) -> bool {
        secret::constant_time_eq(&secret::sha256(self.secret.as_bytes()), hashed_secret)
    }
}

/// Splits `coder_<prefix>_<secret>`; `None` for anything else, before any database work.
pub fn parse(raw: &str) -> Option<Presented<'_>> {
    let rest = raw.strip_prefix("coder_")?;
    let (prefix, secret_part) = rest.split_once('_')?;
    let well_formed = prefix.len() == PREFIX_LEN
        && secret_part.len() == SECRET_LEN
        && prefix
            .bytes()
            .chain(secret_part.bytes())
            .all(|b| b.is_ascii_alphanumeric());
    well_formed.then_some(Presented {
        prefix,
        secret: secret_part,
    })
}

/// The tail shown in secret lists, so a user can tell secrets apart.
pub fn display_tail(full: &str) -> String {
    let tail: String = full
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("******{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_parse_and_match_only_their_hash() {
        let cred = generate();
        let presented = parse(cred.full.expose());
        assert!(presented.as_ref().is_some_and(|p| p.prefix == cred.prefix));
        assert!(
            presented
                .as_ref()
                .is_some_and(|p| p.matches(&cred.hashed_secret))
        );
        let other = generate();
        assert!(presented.is_some_and(|p| !p.matches(&other.hashed_secret)));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        for bad in [
            "",
            "coder_",
            "coder_short_short",
            "xoder_abcdefghij_abcdefghijabcdefghijabcdefghijabcdefghij",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}

/// Property tests of the opaque credential format: generated credentials parse and match only
/// their own hash; any other text is refused before the database.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text};

    proptest! {
        #![proptest_config(config(128))]

        #[test]
        fn generated_credentials_round_trip(_seed in any::<u8>()) {
            let cred = generate();
            let presented = parse(cred.full.expose()).unwrap();
            prop_assert_eq!(presented.prefix, cred.prefix.as_str());
            prop_assert!(presented.matches(&cred.hashed_secret));
            prop_assert!(!presented.matches(&generate().hashed_secret));
        }

        #[test]
        fn other_text_is_refused_or_well_formed(raw in prop_oneof![hostile_text(), "coder_[a-zA-Z0-9_]{0,60}"]) {
            if let Some(p) = parse(&raw) {
                prop_assert_eq!(p.prefix.len(), PREFIX_LEN);
                prop_assert!(p.prefix.bytes().all(|b| b.is_ascii_alphanumeric()));
                prop_assert_eq!(raw.len(), "coder__".len() + PREFIX_LEN + SECRET_LEN);
            }
        }
    }
}
