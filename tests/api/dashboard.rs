//! The dashboard: HTML error pages for browsers (JSON for API clients), the layout's header,
//! and the workspace, template, token and "Connect an AI agent" pages, driven as a browser
//! without JavaScript drives them (GET, then POST forms with the CSRF token, then redirects).

use reqwest::{Response, StatusCode};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_html_page, json_body};

both_backends!(browsers_get_error_pages_and_api_clients_json,);

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn get_as(app: &TestApp, path: &str, accept: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("Accept", accept)
        .send()
        .await
        .unwrap()
}

async fn browsers_get_error_pages_and_api_clients_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/no-such-page", "/workspaces/x/y/z"] {
        let res = get_as(&app, path, HTML).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_html_page(&res);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let html = res.text().await.unwrap();
        assert!(html.contains("<h1>Page not found</h1>"), "{html}");
        assert!(
            html.contains("<main") && html.contains("<header"),
            "landmarks: {html}"
        );
        assert!(html.contains("href=\"/\""), "a link home: {html}");
    }
    // A wrong method is a page too.
    let res = app
        .client
        .delete(app.url("/login"))
        .header("Accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_html_page(&res);

    // API clients, and anything under /api, keep Coder's JSON.
    let res = get_as(&app, "/no-such-page", "application/json").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(res).await["message"], "Route not found.");
    let res = get_as(&app, "/api/v2/no-such-route", HTML).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_body(res).await["message"], "Route not found.");
    let res = get_as(&app, "/oauth2/no-such-route", HTML).await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}
