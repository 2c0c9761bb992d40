//! The stored-text rule: every user-supplied string the server stores passes it at the edge, so
//! that a value is refused (or kept) alike on SQLite and PostgreSQL, whichever door it came in by.
//!
//! PostgreSQL refuses NUL in `text` (a 500 there) while SQLite stores it; other control
//! characters corrupt logs, terminals and pages. The rule: at most `max_chars` characters, no NUL,
//! and no control character (Unicode `Cc`) except, in multi-line text, tab, line feed and
//! carriage return.

use std::fmt;

use super::FieldError;

/// One field's limits under the stored-text rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredText {
    /// The most characters (Unicode scalar values) the field holds.
    pub max_chars: usize,
    /// Whether tab, line feed and carriage return are allowed.
    pub multiline: bool,
}

impl StoredText {
    /// A one-line field (a name, a URL) of at most `max_chars` characters.
    pub const fn line(max_chars: usize) -> Self {
        Self {
            max_chars,
            multiline: false,
        }
    }

    /// A multi-line field (a description, a script) of at most `max_chars` characters.
    pub const fn multiline(max_chars: usize) -> Self {
        Self {
            max_chars,
            multiline: true,
        }
    }

    /// Checks `value`; the error says what is wrong and where.
    pub fn check(self, value: &str) -> Result<(), TextProblem> {
        let mut count = 0;
        for (index, c) in value.chars().enumerate() {
            count = index + 1;
            if c == '\0' {
                return Err(TextProblem::Nul { index });
            }
            if c.is_control() && !(self.multiline && matches!(c, '\t' | '\n' | '\r')) {
                return Err(TextProblem::Control { index, c });
            }
        }
        if count > self.max_chars {
            return Err(TextProblem::TooLong {
                max_chars: self.max_chars,
            });
        }
        Ok(())
    }

    /// Checks `value` as the field `field` of a request; the detail says what is wrong, for
    /// example "Must not contain a NUL character (found one at character 3)."
    pub fn check_field(self, field: &str, value: &str) -> Result<(), FieldError> {
        self.check(value).map_err(|problem| {
            let problem = problem.to_string();
            let mut chars = problem.chars();
            let capitalized: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            FieldError::new(field, format!("{capitalized}."))
        })
    }
}

/// Whether `value` could name something stored (a username, a template or organization name):
/// a lookup by any other value finds nothing, and is answered so without asking the database,
/// which on PostgreSQL would fail on a NUL.
pub fn is_lookup_key(value: &str) -> bool {
    StoredText::line(limits::LOOKUP_KEY_CHARS)
        .check(value)
        .is_ok()
}

/// Why a string broke the stored-text rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    TooLong { max_chars: usize },
    Nul { index: usize },
    Control { index: usize, c: char },
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextProblem::TooLong { max_chars } => {
                write!(f, "must be at most {max_chars} characters")
            }
            TextProblem::Nul { index } => write!(
                f,
                "must not contain a NUL character (found one at character {})",
                index + 1
            ),
            TextProblem::Control { index, c } => write!(
                f,
                "must not contain control characters (found U+{:04X} at character {})",
                u32::from(*c),
                index + 1
            ),
        }
    }
}

impl std::error::Error for TextProblem {}

/// Limits per kind of field, in one place so that `docs/input-limits.md` can list them.
pub mod limits {
    use super::StoredText;

    /// The longest name a lookup (by username, template or workspace name) may give.
    pub const LOOKUP_KEY_CHARS: usize = 256;
    /// Display names: users, templates, parameters, apps, OAuth2 clients.
    pub const DISPLAY_NAME: StoredText = StoredText::line(128);
    /// Descriptions and messages (templates, versions, parameters).
    pub const DESCRIPTION: StoredText = StoredText::multiline(512);
    /// Icons: a URL or a path such as `/icon/book.svg`.
    pub const ICON: StoredText = StoredText::line(2048);
    /// URLs a client registers: redirect, client, logo, terms and policy URIs.
    pub const URI: StoredText = StoredText::line(2048);
    /// Emails (RFC 5321 §4.5.3.1.3 caps a path at 256 octets, 254 for the address).
    pub const EMAIL: StoredText = StoredText::line(254);
    /// Short labels: OAuth2 software id and version, contacts.
    pub const LABEL: StoredText = StoredText::line(256);
    /// A parameter value (a workspace's input to its template).
    pub const PARAMETER_VALUE: StoredText = StoredText::multiline(4096);
    /// A template's startup script.
    pub const SCRIPT: StoredText = StoredText::multiline(64 * 1024);
    /// A template's README.
    pub const README: StoredText = StoredText::multiline(1024 * 1024);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nul_controls_and_length_alike() {
        let line = StoredText::line(5);
        assert_eq!(line.check("hello"), Ok(()));
        assert_eq!(line.check("héllo"), Ok(()), "counts characters, not bytes");
        assert_eq!(
            line.check("hello!"),
            Err(TextProblem::TooLong { max_chars: 5 })
        );
        assert_eq!(line.check("a\0"), Err(TextProblem::Nul { index: 1 }));
        assert_eq!(
            line.check("a\nb"),
            Err(TextProblem::Control { index: 1, c: '\n' })
        );
        assert!(line.check("\u{7f}").is_err());
        assert!(line.check("\u{85}").is_err(), "C1 controls too");
        let text = StoredText::multiline(10);
        assert_eq!(text.check("a\r\n\tb"), Ok(()));
        assert_eq!(text.check("a\0"), Err(TextProblem::Nul { index: 1 }));
        assert!(text.check("\u{1b}[31m").is_err());
        assert_eq!(
            TextProblem::Nul { index: 0 }.to_string(),
            "must not contain a NUL character (found one at character 1)"
        );
    }
}

/// Property test of the rule itself: it accepts exactly the strings of at most `max_chars`
/// characters without control characters (tab, LF and CR allowed on multi-line fields).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::proptest_support::{config, hostile_text};

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn the_rule_is_what_it_says(value in hostile_text(), max in 0usize..64, multiline in any::<bool>()) {
            let rule = StoredText { max_chars: max, multiline };
            let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\t' | '\n' | '\r'));
            let expected = value.chars().count() <= max && value.chars().all(allowed);
            prop_assert_eq!(rule.check(&value).is_ok(), expected);
            if !value.contains('\0') || !expected {
                prop_assert_eq!(is_lookup_key(&value), StoredText::line(limits::LOOKUP_KEY_CHARS).check(&value).is_ok());
            }
        }
    }
}
