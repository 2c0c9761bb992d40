//! `StoreError`, what a store call fails with, and `Constraint`, the uniqueness rules the
//! services tell apart.

use std::fmt;

use sqlx::error::DatabaseError;

use super::health::{Kind, classify};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken.
    #[error("conflicts with an existing row ({0})")]
    Conflict(Constraint),
    /// The first user already exists.
    #[error("the first user already exists")]
    FirstUserExists,
    /// The database cannot be reached right now (down, restarting, unreachable, or the pool
    /// is closing); the same call is likely to work once it is back.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A statement failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The database holds something this build never writes: a value the domain has no name
    /// for, or JSON that does not parse.
    #[error("unreadable {column}: {detail}")]
    Corrupt {
        column: &'static str,
        detail: String,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The database could not be reached: worth trying again shortly, not a defect.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match (&err, classify(&err)) {
            (sqlx::Error::Database(db), Kind::Conflict) => {
                StoreError::Conflict(Constraint::broken(db.as_ref()))
            }
            (_, Kind::Unavailable) => StoreError::Unavailable(err),
            _ => StoreError::Database(err),
        }
    }
}

/// A stored value the domain has no name for.
pub(super) fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: format!("unexpected value {value:?}"),
    }
}

/// A stored JSON value that does not parse.
pub(super) fn corrupt_json(column: &'static str, err: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: format!("invalid JSON: {err}"),
    }
}

/// A uniqueness rule, named for what it keeps unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// A live user's username, in any case.
    UserUsername,
    /// A live user's email, in any case.
    UserEmail,
    /// The name of a user's API token.
    ApiKeyTokenName,
    /// A live template's name in its organization, in any case.
    TemplateName,
    /// A version's name within its template, in any case.
    TemplateVersionName,
    /// A live workspace's name for its owner, in any case.
    WorkspaceName,
    /// A provisioner key's name in its organization, in any case.
    ProvisionerKeyName,
    /// Any other rule (a reused id, say): no service tells these apart.
    Other,
}

/// Each named rule with the unique index behind it and how SQLite reports that index. PostgreSQL
/// names the index as the violated constraint; SQLite has only a message, "UNIQUE constraint
/// failed: …", naming an index on expressions (`lower(name)`) by its name and one on plain
/// columns by its columns.
const RULES: [(Constraint, &str, &str); 7] = [
    (
        Constraint::UserUsername,
        "users_username_unique",
        "index 'users_username_unique'",
    ),
    (
        Constraint::UserEmail,
        "users_email_unique",
        "index 'users_email_unique'",
    ),
    (
        Constraint::ApiKeyTokenName,
        "api_keys_token_name_unique",
        "api_keys.user_id, api_keys.token_name",
    ),
    (
        Constraint::TemplateName,
        "templates_name_unique",
        "index 'templates_name_unique'",
    ),
    (
        Constraint::TemplateVersionName,
        "template_versions_name_unique",
        "index 'template_versions_name_unique'",
    ),
    (
        Constraint::WorkspaceName,
        "workspaces_owner_name_unique",
        "index 'workspaces_owner_name_unique'",
    ),
    (
        Constraint::ProvisionerKeyName,
        "provisioner_keys_organization_name",
        "index 'provisioner_keys_organization_name'",
    ),
];

impl Constraint {
    /// The rule a unique violation broke, from either backend's report of it.
    fn broken(db: &dyn DatabaseError) -> Constraint {
        let postgres = db.constraint();
        let sqlite = db.message().strip_prefix("UNIQUE constraint failed: ");
        RULES
            .into_iter()
            .find(|(_, index, failed)| postgres == Some(*index) || sqlite == Some(*failed))
            .map_or(Constraint::Other, |(rule, _, _)| rule)
    }

    /// The unique index behind the rule.
    fn index(self) -> Option<&'static str> {
        RULES
            .into_iter()
            .find(|(rule, _, _)| *rule == self)
            .map(|(_, index, _)| index)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.index().unwrap_or("another uniqueness rule"))
    }
}
