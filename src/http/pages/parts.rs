//! Small pieces several pages share: the page that only says something (an error, an expired
//! form, a finished action) and timestamps as people read them.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};

use super::chrome::{Chrome, render};

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
    note: &'a str,
    back: Option<&'a str>,
}

/// A page with a heading and a sentence, an optional muted `note` (`""`: none) and an optional
/// link back.
pub(crate) fn message_page(
    status: StatusCode,
    title: &str,
    message: &str,
    note: &str,
    back: Option<&str>,
) -> Response {
    render(
        &MessagePage {
            chrome: Chrome::anonymous(),
            title,
            message,
            note,
            back,
        },
        status,
        &[],
    )
}

/// A timestamp for `<time datetime="{{ iso }}">{{ text }}</time>`, in UTC.
pub(crate) struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn of(at: &DateTime<Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}
