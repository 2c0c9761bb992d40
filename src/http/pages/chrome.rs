//! The page layout's moving parts (`html/base.html`): who is signed in, the CSRF token of the
//! sign-out form, which section is current; rendering an askama template into a response with
//! the pages' security headers; and the HTML error pages browsers get instead of Coder's JSON.

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::csrf;
use super::layout::with_page_headers;
use crate::domain::{Experiment, Principal};
use crate::web::state::HttpSettings;

/// The signed-in user as the header shows them.
pub struct ChromeUser {
    pub username: String,
    pub email: String,
    pub owner: bool,
    /// Whether the OAuth2 pages exist (the oauth2 experiment), so the nav never links a 404.
    pub oauth2: bool,
}

/// What `base.html` needs besides the page's own fields.
pub struct Chrome {
    pub user: Option<ChromeUser>,
    pub csrf: String,
    /// The navigation entry to mark current (`aria-current="page"`).
    pub section: &'static str,
}

impl Chrome {
    /// The chrome for a signed-in user, with the CSRF token their forms carry and the cookie to
    /// set when the browser had none.
    pub fn signed_in(
        me: &Principal,
        headers: &HeaderMap,
        settings: &HttpSettings,
        section: &'static str,
    ) -> (Chrome, Option<String>) {
        let (csrf, cookie) = csrf::token_for(headers, settings.secure_cookies());
        let chrome = Chrome {
            user: Some(ChromeUser {
                username: me.user.username.clone(),
                email: me.user.email.clone(),
                owner: me.is_owner(),
                oauth2: settings.experiments.enabled(Experiment::OAuth2),
            }),
            csrf,
            section,
        };
        (chrome, cookie)
    }

    /// The chrome for a visitor: the product name only.
    pub fn anonymous() -> Chrome {
        Chrome {
            user: None,
            csrf: String::new(),
            section: "",
        }
    }
}

/// Renders `page` with `status`, setting `cookies`; a template that fails to render (it cannot
/// fail to compile) is logged and answered with the plain 500 page.
pub fn render(page: &impl Template, status: StatusCode, cookies: &[String]) -> Response {
    let mut response = match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error · Coder</title><h1>Something went wrong</h1>"),
            )
                .into_response()
        }
    };
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    with_page_headers(response)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
}

/// The HTML page a browser gets for an error status (404, 403, 405, 500, ...): what happened in
/// words, a link home, and the headers every page carries.
pub fn browser_error(status: StatusCode) -> Response {
    let (title, message) = match status {
        StatusCode::NOT_FOUND => (
            "Page not found",
            "There is nothing at this address. Check the link, or start from the home page.",
        ),
        StatusCode::FORBIDDEN => (
            "Not allowed",
            "Your account may not see this page. Ask an owner of this deployment if you need it.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not available this way",
            "This address does not take that kind of request. Open it from a link or a form.",
        ),
        s if s.is_server_error() => (
            "Something went wrong",
            "The server could not answer this request. The error was logged; try again.",
        ),
        _ => (
            "Request not understood",
            "The server could not use this request.",
        ),
    };
    render(
        &ErrorPage {
            chrome: Chrome::anonymous(),
            title: title.to_owned(),
            message: message.to_owned(),
        },
        status,
        &[],
    )
}

/// The pages' one script: copy buttons (`<button class="copy" data-copy="ID">`) copy the value
/// of element ID. Without it the fields are still there to select and copy by hand.
pub const COPY_SCRIPT: &str = "document.querySelectorAll('button.copy').forEach(function(b){b.addEventListener('click',function(){var el=document.getElementById(b.dataset.copy);if(!el||!navigator.clipboard){return;}navigator.clipboard.writeText(el.value).then(function(){b.textContent='Copied';});});});";

/// Lets a page run [`COPY_SCRIPT`] and nothing else: its CSP allows that script by its SHA-256
/// (CSP Level 3 §8.2 hash-source), so injected markup still cannot run a script.
pub fn allow_copy_script(mut response: Response) -> Response {
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(COPY_SCRIPT));
    let policy = format!(
        "{}; script-src 'sha256-{hash}'",
        super::layout::content_security_policy(None)
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}
