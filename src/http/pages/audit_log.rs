//! `/audit`: the owners' audit log, newest first, filtered by user, action, resource type and
//! time, a page at a time. The filters become the `q` of `GET /api/v2/audit` and go through the
//! same use case, so the page and the API always agree.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::owners::{failure, owner_only};
use crate::domain::{DomainError, FieldError};
use crate::http::extract::MaybeBrowserUser;
use crate::service::audit::AuditLogView;
use crate::web::AppState;

const PAGE: &str = "/audit";
/// Entries per page.
const PER_PAGE: i64 = 50;
/// The resource types this server records, offered as suggestions.
const RESOURCE_TYPES: [&str; 10] = [
    "api_key",
    "deployment",
    "mcp_tool",
    "oauth2_grant",
    "oauth2_provider_app",
    "oauth2_provider_app_secret",
    "template",
    "template_version",
    "user",
    "workspace",
];

pub fn routes() -> Router<AppState> {
    Router::new().route(PAGE, get(show))
}

/// The filter form's fields, as the browser sends them.
#[derive(Deserialize, Default, Clone)]
struct Filters {
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    offset: i64,
}

impl Filters {
    /// The search in Coder's syntax; a value with a space in it cannot be said in it.
    fn query(&self) -> Result<String, DomainError> {
        let mut terms = Vec::new();
        let mut problems = Vec::new();
        let user = self.user.trim();
        let from = as_search_time(self.from.trim());
        let to = as_search_time(self.to.trim());
        for (field, key, value) in [
            (
                "user",
                if user.contains('@') {
                    "email"
                } else {
                    "username"
                },
                user,
            ),
            ("action", "action", self.action.trim()),
            ("resource_type", "resource_type", self.resource_type.trim()),
            ("from", "date_from", from.as_str()),
            ("to", "date_to", to.as_str()),
        ] {
            if value.is_empty() {
                continue;
            }
            if value.chars().any(|c| c.is_whitespace() || c == '"') {
                problems.push(FieldError::new(field, "Must not contain spaces or quotes."));
            } else {
                terms.push(format!("{key}:{value}"));
            }
        }
        if problems.is_empty() {
            Ok(terms.join(" "))
        } else {
            Err(DomainError::invalid_fields("Invalid filter.", problems))
        }
    }

    /// These filters at another offset, as a link.
    fn link(&self, offset: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("user", &self.user),
            ("action", &self.action),
            ("resource_type", &self.resource_type),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        let query = query.append_pair("offset", &offset.to_string()).finish();
        format!("{PAGE}?{query}")
    }
}

/// A `datetime-local` value (`2026-01-31T12:00`, read as UTC) as an RFC 3339 time; a day or
/// anything else is passed on as it is, for the search to accept or explain.
fn as_search_time(raw: &str) -> String {
    match chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M") {
        Ok(t) => t
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Err(_) => raw.to_owned(),
    }
}

struct EntryRow {
    time: String,
    user: String,
    action: String,
    resource_type: String,
    resource: String,
    ip: String,
    details: String,
}

impl From<AuditLogView> for EntryRow {
    fn from(e: AuditLogView) -> Self {
        // `key: value` pairs read better than JSON; strings lose their quotes.
        let details = match &e.additional_fields {
            serde_json::Value::Object(fields) => fields
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(text) => format!("{k}: {text}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        let client = e
            .client_id
            .map(|c| format!(" via client {c}"))
            .unwrap_or_default();
        EntryRow {
            time: e.time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            user: e.user.map_or_else(|| "unknown".to_owned(), |u| u.username) + &client,
            action: e.action,
            resource_type: e.resource_type,
            resource: e.resource_id,
            ip: e.ip,
            details,
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    title: &'static str,
    error: Option<String>,
    filters: Filters,
    resource_types: [&'static str; 10],
    entries: Vec<EntryRow>,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<String>,
    next: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    query: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let me = match owner_only(user, PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "audit");
    let cookies: Vec<String> = cookie.into_iter().collect();
    let mut page = AuditPage {
        chrome,
        title: "Audit log",
        error: None,
        filters: Filters::default(),
        resource_types: RESOURCE_TYPES,
        entries: Vec::new(),
        total: 0,
        first: 0,
        last: 0,
        previous: None,
        next: None,
    };
    let Ok(Query(filters)) = query else {
        page.error = Some("The filters could not be read; an offset is a whole number.".into());
        return render(&page, StatusCode::BAD_REQUEST, &cookies);
    };
    page.filters = filters.clone();
    let offset = filters.offset.max(0);
    // Show what was recorded up to this request, as the API does.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), state.audit.flush()).await;
    let listed = match filters.query() {
        Ok(q) => {
            state
                .services
                .list_audit_logs(&me, &q, Some(PER_PAGE), Some(offset))
                .await
        }
        Err(e) => Err(e),
    };
    match listed {
        Ok(found) => {
            let shown = found.audit_logs.len() as i64;
            page.total = found.count;
            page.first = if shown == 0 { 0 } else { offset + 1 };
            page.last = offset + shown;
            page.previous = (offset > 0).then(|| filters.link((offset - PER_PAGE).max(0)));
            page.next = (offset + shown < found.count).then(|| filters.link(offset + shown));
            page.entries = found.audit_logs.into_iter().map(EntryRow::from).collect();
            render(&page, StatusCode::OK, &cookies)
        }
        Err(e) => {
            let (status, message) = failure(&e);
            page.error = Some(message);
            render(&page, status, &cookies)
        }
    }
}
