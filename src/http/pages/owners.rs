//! What the owners' pages share: who may open them, and the words of a failed action.

use axum::http::StatusCode;
use axum::response::Response;

use super::chrome::browser_error;
use super::error_status;
use super::signed_in;
use crate::domain::{DomainError, Principal};

/// The owner behind a request for `path`: visitors are sent to sign in (and back), members get
/// the 403 page.
pub(super) fn owner_only(user: Option<Principal>, path: &str) -> Result<Principal, Box<Response>> {
    let me = signed_in(user, path)?;
    if me.is_owner() {
        Ok(me)
    } else {
        Err(Box::new(browser_error(StatusCode::FORBIDDEN)))
    }
}

/// The status and the sentence a page shows for a failed action, with each field's problem.
pub(super) fn failure(err: &DomainError) -> (StatusCode, String) {
    let (status, message) = error_status(err);
    let fields = match err {
        // A conflict's field repeats its message.
        DomainError::Invalid { fields, .. } => fields
            .iter()
            .map(|f| format!(" {}: {}", f.field, f.detail))
            .collect::<String>(),
        _ => String::new(),
    };
    (status, format!("{message}{fields}"))
}
