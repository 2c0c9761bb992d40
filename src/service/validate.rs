//! Field rules shared by the use cases: names, emails.

use crate::domain::FieldError;

pub const MAX_USERNAME_LEN: usize = 32;
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_EMAIL_LEN: usize = 254;

/// Coder's username rule: 1-32 ASCII letters and digits in groups joined by single hyphens.
pub fn username(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "Required."));
    }
    let valid = value.len() <= MAX_USERNAME_LEN
        && value
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if value.eq_ignore_ascii_case("me") {
        // `/users/me` always means the caller, so a user named "me" could never be addressed.
        return Err(FieldError::new(
            field,
            "\"me\" is reserved; choose another username.",
        ));
    }
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "Must be 1-{MAX_USERNAME_LEN} letters or digits, optionally joined by single hyphens (e.g. \"jane-doe\")."
            ),
        ))
    }
}

pub fn email(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "Required."));
    }
    let well_formed = value.len() <= MAX_EMAIL_LEN
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if well_formed {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "Must be a valid email address (e.g. jane@example.com).",
        ))
    }
}

/// A display name: optional, at most 128 characters, no control characters.
pub fn display_name(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().count() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("Must be at most {MAX_NAME_LEN} characters without control characters."),
        ));
    }
    Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_coder_rules() {
        for ok in ["a", "jane-doe", "A1-b2-c3"] {
            assert!(username("username", ok).is_ok(), "{ok}");
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
            assert!(username("username", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(email("email", "jane@example.com").is_ok());
        for bad in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "jane@localhost",
            "a b@x.io",
            "a@b@c.io",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }
}
