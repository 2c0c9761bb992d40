//! Field rules shared by the use cases: names, emails, and the stored-text rule
//! (`domain::text`) as a `FieldError`.

use crate::domain::FieldError;
use crate::domain::text::{StoredText, limits};

/// The longest name (Coder's `NameValid`).
pub const MAX_NAME_LEN: usize = 32;
/// RFC 5321 §4.5.3.1.1.
const MAX_EMAIL_LOCAL_LEN: usize = 64;
/// RFC 1035 §2.3.4.
const MAX_DOMAIN_LABEL_LEN: usize = 63;

/// The stored-text rule for one field (see `domain::text`).
pub fn text(field: &str, value: &str, rule: StoredText) -> Result<(), FieldError> {
    rule.check_field(field, value)
}

/// Coder's name rule, one for usernames, workspace names and template names: 1-32 ASCII letters
/// and digits in groups joined by single hyphens, and never "me".
pub fn name(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "Required."));
    }
    let valid = value.len() <= MAX_NAME_LEN
        && value
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if value.eq_ignore_ascii_case("me") {
        // `/users/me` always means the caller, so a user named "me" could never be addressed;
        // names share one rule, so no workspace or template takes it either.
        return Err(FieldError::new(
            field,
            format!("\"me\" is reserved; choose another {field}."),
        ));
    }
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "Must be 1-{MAX_NAME_LEN} letters or digits, optionally joined by single hyphens (e.g. \"jane-doe\")."
            ),
        ))
    }
}

/// An address `local@domain`: the local part of RFC 5322 atoms (`dot-atom`, letters in any
/// script as RFC 6531 allows) and a domain of at least two labels, so markup such as
/// `<script>` or quoting can never be part of one.
pub fn email(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "Required."));
    }
    let well_formed = limits::EMAIL.check(value).is_ok()
        && value
            .split_once('@')
            .is_some_and(|(local, domain)| valid_local_part(local) && valid_domain(domain));
    if well_formed {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "Must be a valid email address (e.g. jane@example.com).",
        ))
    }
}

/// RFC 5322 §3.2.3 `dot-atom-text`: atoms of `atext` joined by single dots.
fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    local.chars().count() <= MAX_EMAIL_LOCAL_LEN
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_alphanumeric() || SPECIALS.contains(c))
        })
}

/// Labels of letters, digits and inner hyphens (RFC 1035 §2.3.1, in any script for IDNs),
/// at least two of them.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.chars().count() <= MAX_DOMAIN_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// A display name: optional, at most 128 characters on one line.
pub fn display_name(field: &str, value: &str) -> Result<(), FieldError> {
    text(field, value, limits::DISPLAY_NAME)
}

/// Token names: 1-64 of `[a-zA-Z0-9_-]`.
pub fn token_name(field: &str, value: &str) -> Result<(), FieldError> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "Must be 1-64 letters, digits, hyphens or underscores.",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_details_say_what_is_wrong() {
        let err = text("description", "a\0b", limits::DESCRIPTION).unwrap_err();
        assert_eq!(err.field, "description");
        assert_eq!(
            err.detail,
            "Must not contain a NUL character (found one at character 2)."
        );
        assert!(display_name("name", &"x".repeat(129)).is_err());
        assert!(display_name("name", "Jane Doe").is_ok());
    }

    #[test]
    fn names_follow_coder_rules() {
        for ok in ["a", "jane-doe", "A1-b2-c3"] {
            assert!(name("username", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "me",
            "ME",
            "-a",
            "a-",
            "a--b",
            "jane_doe",
            "jané",
            &"a".repeat(33),
        ] {
            assert!(name("username", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for ok in [
            "jane@example.com",
            "jane.doe+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "josé@bücher.de",
        ] {
            assert!(email("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@localhost",
            "a b@x.io",
            "a@b@c.io",
            "<script>alert(1)</script>@example.com",
            "\"quoted\"@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-x.io",
            "a@x..io",
            "a\0@example.com",
            "a@exa_mple.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }
}
