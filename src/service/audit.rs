//! Reading the audit log (owners only), with Coder's search syntax, and its retention.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::validate;
use super::views::UserResponse;
use super::{Services, require_owner};
use crate::domain::text::StoredText;
use crate::domain::{AuditEntry, DomainError, FieldError, Page, Principal, User, UserId};
use crate::store::AuditFilter;

/// A search query is one line of at most this many characters.
pub const AUDIT_QUERY: StoredText = StoredText::line(1024);
/// The most entries one page holds.
pub const MAX_AUDIT_PAGE: i64 = 1000;
/// A page's size when the request names none.
pub const DEFAULT_AUDIT_PAGE: i64 = 50;

/// Coder's audit search (`codersdk` `AuditLogsRequest.q`): `username:`, `email:`, `action:`,
/// `resource_type:`, `resource_id:`, `date_from:` and `date_to:` (`2006-01-02`, both days
/// included; an RFC 3339 time is taken as it is), and bare words, which are resource types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub username: Option<String>,
    pub email: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl AuditQuery {
    pub fn parse(q: &str) -> Result<Self, DomainError> {
        let invalid =
            |problems| DomainError::invalid_fields("Invalid audit search query.", problems);
        validate::text("q", q, AUDIT_QUERY).map_err(|problem| invalid(vec![problem]))?;
        let mut query = AuditQuery::default();
        let mut problems = Vec::new();
        for term in q.split_whitespace() {
            let (key, value) = match term.split_once(':') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.trim_matches('"').to_owned()),
                None => ("resource_type".to_owned(), term.to_owned()),
            };
            if value.is_empty() {
                problems.push(FieldError::new(
                    "q",
                    format!("The {key}: filter needs a value."),
                ));
                continue;
            }
            match key.as_str() {
                "username" => query.username = Some(value),
                "email" => query.email = Some(value),
                "action" => query.action = Some(value),
                "resource_type" => query.resource_type = Some(value),
                "resource_id" => query.resource_id = Some(value),
                "date_from" => match parse_day_or_time(&value) {
                    Some((start, _)) => query.from = Some(start),
                    None => problems.push(bad_date("date_from", &value)),
                },
                "date_to" => match parse_day_or_time(&value) {
                    Some((_, end)) => query.before = Some(end),
                    None => problems.push(bad_date("date_to", &value)),
                },
                other => problems.push(FieldError::new(
                    "q",
                    format!(
                        "Unknown filter {other:?}; use username:, email:, action:, resource_type:, \
                         resource_id:, date_from: or date_to:."
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(query)
        } else {
            Err(invalid(problems))
        }
    }
}

fn bad_date(key: &str, value: &str) -> FieldError {
    FieldError::new(
        "q",
        format!(
            "{key}:{value} is not a date such as 2026-01-31 or a time such as 2026-01-31T12:00:00Z."
        ),
    )
}

/// A day (`2026-01-31`, UTC) as its first instant and the first instant after it; a time as
/// itself twice (a `date_to` time is then exclusive).
fn parse_day_or_time(raw: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let start = day.and_hms_opt(0, 0, 0)?.and_utc();
        return Some((start, start + Duration::days(1)));
    }
    let time = DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc);
    Some((time, time))
}

/// Coder's `codersdk.AuditLogResponse`.
#[derive(Debug, Serialize)]
pub struct AuditLogPage {
    pub audit_logs: Vec<AuditLogView>,
    pub count: i64,
}

/// Coder's `codersdk.AuditLog`, with the fields this server records. `resource_id` is kept as
/// it was recorded (a tool's entries name the tool); `client_id` names the OAuth2 client that
/// acted, when one did.
#[derive(Debug, Serialize)]
pub struct AuditLogView {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub ip: String,
    pub user_agent: &'static str,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_target: String,
    pub resource_icon: &'static str,
    pub action: String,
    pub diff: Value,
    pub additional_fields: Value,
    pub description: String,
    pub resource_link: &'static str,
    pub is_deleted: bool,
    pub client_id: Option<Uuid>,
    pub user: Option<UserResponse>,
}

impl Services {
    /// A page of the audit log, newest first: owners only.
    pub async fn list_audit_logs(
        &self,
        actor: &Principal,
        q: &str,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<AuditLogPage, DomainError> {
        require_owner(actor)?;
        let query = AuditQuery::parse(q)?;
        let page = audit_page(limit, offset)?;
        let mut filter = AuditFilter {
            action: query.action,
            resource_type: query.resource_type,
            resource_id: query.resource_id,
            from: query.from,
            before: query.before,
            user_id: None,
        };
        // A user that does not exist matches nothing (as in Coder), rather than failing.
        let empty = || AuditLogPage {
            audit_logs: Vec::new(),
            count: 0,
        };
        for wanted in [query.username, query.email] {
            let Some(wanted) = wanted else { continue };
            let found = self.find_user(&wanted).await?;
            match (found, filter.user_id) {
                (None, _) => return Ok(empty()),
                (Some(user), Some(already)) if user.id != already => return Ok(empty()),
                (Some(user), _) => filter.user_id = Some(user.id),
            }
        }
        let (entries, count) = self.store.search_audit_logs(&filter, page).await?;
        let mut users: HashMap<UserId, Option<User>> = HashMap::new();
        for id in entries.iter().filter_map(|e| e.user_id) {
            if let std::collections::hash_map::Entry::Vacant(slot) = users.entry(id) {
                slot.insert(self.store.get_user_by_id(id).await?);
            }
        }
        let audit_logs = entries
            .into_iter()
            .map(|entry| {
                let user = entry
                    .user_id
                    .and_then(|id| users.get(&id).cloned().flatten());
                view(entry, user)
            })
            .collect();
        Ok(AuditLogPage { audit_logs, count })
    }

    /// A user by username, or by email when `wanted` holds an `@`.
    async fn find_user(&self, wanted: &str) -> Result<Option<User>, DomainError> {
        if wanted.contains('@') {
            Ok(self
                .store
                .get_user_credentials_by_email(wanted)
                .await?
                .map(|c| c.user))
        } else {
            Ok(self.store.get_user_by_username(wanted).await?)
        }
    }

    /// Deletes audit entries older than `retention`; run periodically.
    pub async fn delete_old_audit_logs(&self, retention: Duration) -> Result<u64, DomainError> {
        Ok(self
            .store
            .delete_audit_logs_before(self.clock.now() - retention)
            .await?)
    }
}

fn audit_page(limit: Option<i64>, offset: Option<i64>) -> Result<Page, DomainError> {
    let limit = match limit {
        None | Some(0) => DEFAULT_AUDIT_PAGE,
        Some(n) if (1..=MAX_AUDIT_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(DomainError::invalid_fields(
                "Invalid pagination.",
                vec![FieldError::new(
                    "limit",
                    format!("limit must be between 1 and {MAX_AUDIT_PAGE}."),
                )],
            ));
        }
    };
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(DomainError::invalid_fields(
            "Invalid pagination.",
            vec![FieldError::new("offset", "offset must not be negative.")],
        ));
    }
    Ok(Page { limit, offset })
}

fn view(entry: AuditEntry, user: Option<User>) -> AuditLogView {
    let target = if Uuid::parse_str(&entry.resource_id).is_ok() {
        String::new()
    } else {
        entry.resource_id.clone()
    };
    let actor = user
        .as_ref()
        .map_or_else(|| "an unknown user".to_owned(), |u| u.username.clone());
    let description = match target.as_str() {
        "" => format!("{actor}: {} on {}", entry.action, entry.resource_type),
        name => format!(
            "{actor}: {} on {} {name}",
            entry.action, entry.resource_type
        ),
    };
    AuditLogView {
        id: entry.id,
        time: entry.time,
        ip: entry.ip,
        user_agent: "",
        resource_type: entry.resource_type,
        resource_id: entry.resource_id,
        resource_target: target,
        resource_icon: "",
        action: entry.action,
        diff: Value::Object(Default::default()),
        additional_fields: entry.details,
        description,
        resource_link: "",
        is_deleted: false,
        client_id: entry.client_id.map(|c| c.0),
        user: user.map(UserResponse::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_coders_audit_search_syntax() {
        let q = AuditQuery::parse(
            "username:alice action:mcp.tool.call mcp_tool date_from:2026-01-02 date_to:2026-01-03",
        )
        .ok();
        let day = |d: u32| {
            NaiveDate::from_ymd_opt(2026, 1, d)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        };
        assert_eq!(
            q,
            Some(AuditQuery {
                username: Some("alice".into()),
                action: Some("mcp.tool.call".into()),
                resource_type: Some("mcp_tool".into()),
                from: day(2),
                // date_to includes its whole day.
                before: day(4),
                ..Default::default()
            })
        );
        assert!(AuditQuery::parse("date_from:yesterday").is_err());
        assert!(AuditQuery::parse("color:blue").is_err());
        assert!(AuditQuery::parse("action:").is_err());
        assert_eq!(AuditQuery::parse("").ok(), Some(AuditQuery::default()));
    }
}
