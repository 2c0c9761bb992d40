//! A browser without JavaScript for the page tests: keeps cookies, does not follow redirects,
//! asks for HTML, and reads the CSRF token out of a form.

use reqwest::{Response, StatusCode};

use crate::helpers::{TestApp, assert_html_page};

/// The `Accept` header a browser sends for a page.
pub const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

impl Browser {
    /// A browser holding `session` as its session cookie, or a visitor's.
    pub fn new(app: &TestApp, session: Option<&str>) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let url: reqwest::Url = app.url.parse().unwrap();
        if let Some(token) = session {
            jar.add_cookie_str(&format!("coder_session_token={token}; Path=/"), &url);
        }
        let client = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            base: app.url.clone(),
        }
    }

    pub fn signed_in(app: &TestApp, token: &str) -> Browser {
        Browser::new(app, Some(token))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("Accept", HTML)
            .send()
            .await
            .unwrap()
    }

    /// GETs a page that must render, returning its HTML.
    pub async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_html_page(&res);
        res.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("Accept", HTML)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// The value of the input named or with id `attr` (the first `value` after it).
pub fn input_value(html: &str, attr: &str) -> Option<String> {
    let start = html.find(attr)?;
    let rest = &html[start..];
    let marker = "value=\"";
    let v = rest.find(marker)? + marker.len();
    let len = rest[v..].find('"')?;
    Some(rest[v..v + len].to_owned())
}

/// The form's CSRF token.
pub fn csrf(html: &str) -> String {
    input_value(html, "name=\"csrf_token\"").expect("a CSRF field")
}
