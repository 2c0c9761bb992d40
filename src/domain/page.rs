//! Pages of a list: how many items, from where, and the one rule for a page a caller asks for.

use super::{DomainError, FieldError};

/// The most items one page holds.
pub const MAX_PAGE: i64 = 1000;

/// Page through a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// What a list endpoint makes of `limit=0`. Coder's workspace list reads it as "as many as a
/// page holds"; its user list refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroLimit {
    Refused,
    MeansMax,
}

impl Page {
    /// A page from a caller's `limit` and `offset`: `limit` from 1 to `MAX_PAGE`, `offset` not
    /// negative; each problem names its field.
    pub fn requested(limit: i64, offset: i64, zero: ZeroLimit) -> Result<Page, DomainError> {
        let mut problems = Vec::new();
        let (lowest, detail) = match zero {
            ZeroLimit::Refused => (1, format!("Must be between 1 and {MAX_PAGE}.")),
            ZeroLimit::MeansMax => (
                0,
                format!("Must be between 1 and {MAX_PAGE} (0 means {MAX_PAGE})."),
            ),
        };
        if !(lowest..=MAX_PAGE).contains(&limit) {
            problems.push(FieldError::new("limit", detail));
        }
        if offset < 0 {
            problems.push(FieldError::new("offset", "Must not be negative."));
        }
        if !problems.is_empty() {
            return Err(DomainError::invalid_fields(
                "Invalid query parameters.",
                problems,
            ));
        }
        Ok(Page {
            limit: if limit == 0 { MAX_PAGE } else { limit },
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: DomainError) -> Vec<String> {
        match err {
            DomainError::Invalid { fields, .. } => fields.into_iter().map(|f| f.field).collect(),
            other => vec![other.to_string()],
        }
    }

    #[test]
    fn zero_is_refused_or_the_largest_page() {
        assert!(Page::requested(0, 0, ZeroLimit::Refused).is_err());
        let page = Page::requested(0, 5, ZeroLimit::MeansMax);
        assert!(page.is_ok_and(|p| p.limit == MAX_PAGE && p.offset == 5));
    }

    #[test]
    fn each_problem_names_its_field() {
        for zero in [ZeroLimit::Refused, ZeroLimit::MeansMax] {
            assert!(Page::requested(MAX_PAGE, 0, zero).is_ok());
            let err = Page::requested(MAX_PAGE + 1, -1, zero).err();
            assert_eq!(err.map(fields), Some(vec!["limit".into(), "offset".into()]));
            assert!(Page::requested(-1, 0, zero).is_err());
        }
    }
}
