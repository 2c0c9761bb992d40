//! `StoreError`, what a store call fails with.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; `constraint` names the rule (for example `users_email_unique`).
    #[error("conflicts with an existing row ({constraint})")]
    Conflict { constraint: String },
    /// The first user already exists.
    #[error("the first user already exists")]
    FirstUserExists,
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            // Postgres names the constraint; SQLite puts the index or columns in the message.
            let constraint = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            return StoreError::Conflict { constraint };
        }
        StoreError::Database(err.to_string())
    }
}

/// A stored value the domain has no name for: the database holds something this build never
/// writes.
pub(super) fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Database(format!("unexpected value {value:?} in {column}"))
}

/// A stored JSON value that does not parse.
pub(super) fn corrupt_json(column: &'static str, err: serde_json::Error) -> StoreError {
    StoreError::Database(format!("invalid JSON in {column}: {err}"))
}
