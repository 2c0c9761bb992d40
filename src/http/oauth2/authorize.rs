//! `GET/POST /oauth2/authorize`: sign-in redirect, the consent page, and the user's decision.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::RequireOAuth2;
use super::form::OAuthForm;
use crate::domain::Principal;
use crate::domain::redirect_uri;
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::http::pages::chrome::{Chrome, render};
use crate::http::pages::layout::content_security_policy;
use crate::http::pages::parts::message_page;
use crate::http::pages::{csrf, see_other};
use crate::oauth::OAuthError;
use crate::oauth::authorize::{AuthorizeFailure, AuthorizeParams, ValidatedAuthorization};
use crate::web::AppState;

pub async fn show(
    _: RequireOAuth2,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let params = AuthorizeParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    handle(&state, user, &ip.to_string(), &headers, params, None).await
}

pub async fn decide(
    _: RequireOAuth2,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<OAuthForm, OAuthError>,
) -> Response {
    let form = match form {
        Ok(form) => form,
        Err(err) => {
            return error_page(StatusCode::BAD_REQUEST, "Invalid request", &err.description);
        }
    };
    let params = AuthorizeParams::from_pairs(
        form.pairs()
            .filter(|(k, _)| *k != csrf::FIELD && *k != "action"),
    );
    let decision = Decision {
        allow: form.get("action") == Some("allow"),
        csrf_token: form.get(csrf::FIELD).unwrap_or_default().to_owned(),
    };
    handle(
        &state,
        user,
        &ip.to_string(),
        &headers,
        params,
        Some(decision),
    )
    .await
}

struct Decision {
    allow: bool,
    csrf_token: String,
}

async fn handle(
    state: &AppState,
    user: Option<Principal>,
    ip: &str,
    headers: &HeaderMap,
    params: AuthorizeParams,
    decision: Option<Decision>,
) -> Response {
    let client = match state.oauth.trust_client(&params, ip).await {
        Ok(client) => client,
        Err(failure) => return failure_response(failure),
    };
    let Some(user) = user else {
        // RFC 6749 §3.1: the user signs in first, then comes back to this same request.
        let back = authorize_url(&params);
        let login = format!(
            "/login?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("redirect", &back)
                .finish()
        );
        return see_other(&login, &[]);
    };
    let request = match state
        .oauth
        .validate_authorization(client, &params, &user.user)
    {
        Ok(request) => request,
        Err(failure) => return failure_response(failure),
    };
    let Some(decision) = decision else {
        return consent_page(
            state,
            headers,
            &request,
            &user,
            &params,
            None,
            StatusCode::OK,
        );
    };
    if !csrf::verify(state, headers, &decision.csrf_token) {
        return consent_page(
            state,
            headers,
            &request,
            &user,
            &params,
            Some("This page expired. Review the request and decide again."),
            StatusCode::FORBIDDEN,
        );
    }
    let target = if decision.allow {
        match state.oauth.approve(&request, &user.user, ip).await {
            Ok(target) => target,
            Err(err) if err.status == 503 => return unavailable_page(&err),
            Err(err) => {
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    &err.description,
                );
            }
        }
    } else {
        state.oauth.deny(&request.client, &user.user, ip).await
    };
    found(&target)
}

/// RFC 6749 §4.1.2 uses 302 for the redirect back to the client.
fn found(target: &str) -> Response {
    let mut response = Redirect::to(target).into_response();
    *response.status_mut() = StatusCode::FOUND;
    response
}

fn failure_response(failure: AuthorizeFailure) -> Response {
    match failure {
        AuthorizeFailure::Page { title, message } => {
            error_page(StatusCode::BAD_REQUEST, title, &message)
        }
        AuthorizeFailure::Redirect(target) => found(&target),
        AuthorizeFailure::RateLimited {
            message,
            retry_after_secs,
        } => {
            let mut page = error_page(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &message);
            if let Some(secs) = retry_after_secs {
                page.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            page
        }
        AuthorizeFailure::Unavailable(err) => unavailable_page(&err),
    }
}

/// 503 with `Retry-After` while the database is unreachable.
fn unavailable_page(err: &OAuthError) -> Response {
    let mut page = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        &err.description,
    );
    if let Some(secs) = err.retry_after {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    page
}

fn authorize_url(params: &AuthorizeParams) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.to_pairs() {
        query.append_pair(k, &v);
    }
    format!("/oauth2/authorize?{}", query.finish())
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    message_page(
        status,
        title,
        message,
        "Close this window and start again from the application.",
        None,
    )
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    chrome: Chrome,
    title: &'static str,
    name: &'a str,
    icon: Option<&'a str>,
    error: Option<&'a str>,
    username: &'a str,
    email: &'a str,
    /// (name, description) of the scopes asked for, the powerful ones apart.
    scopes: Vec<(&'static str, &'static str)>,
    powerful: Vec<(&'static str, &'static str)>,
    destination: String,
    /// For a client identified by a metadata document: the host that vouches for it and the
    /// document's URL ("identified by", not "registered itself").
    document: Option<(String, &'a str)>,
    self_registered: bool,
    /// Every redirect URI stays on this computer, where any local program may listen.
    localhost_only: bool,
    fields: Vec<(&'static str, String)>,
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    request: &ValidatedAuthorization,
    user: &Principal,
    params: &AuthorizeParams,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (chrome, cookie) = Chrome::signed_in(user, headers, &state.settings, "");
    let app = &request.client.app;
    let scope = |s: &crate::domain::Scope| (s.name(), s.description());
    let page = ConsentPage {
        chrome,
        title: "Authorize application",
        name: &app.name,
        icon: https_icon(app),
        error,
        username: &user.user.username,
        email: &user.user.email,
        scopes: request
            .scopes
            .iter()
            .filter(|s| !s.powerful())
            .map(|s| scope(&s))
            .collect(),
        powerful: request
            .scopes
            .iter()
            .filter(|s| s.powerful())
            .map(|s| scope(&s))
            .collect(),
        destination: redirect_uri::redirect_host(&request.client.redirect_uri),
        document: app
            .metadata_document_url
            .as_deref()
            .map(|url| (redirect_uri::redirect_host(url), url)),
        self_registered: app.dynamically_registered,
        localhost_only: !app.redirect_uris.is_empty()
            && app.redirect_uris.iter().all(|u| is_localhost(u)),
        fields: params.to_pairs(),
    };
    let mut response = render(&page, status, cookie.as_slice());
    // The form's POST answers with a redirect to the client, which CSP `form-action` also
    // governs, so that destination is allowed alongside this site.
    let csp = content_security_policy(Some(&form_action_source(&request.client.redirect_uri)));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The CSP source expression for a redirect URI: its origin, or its scheme for private-use URIs.
fn form_action_source(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    }
}

/// The application's icon, shown only from an https URL: the page's CSP allows `img-src https:`,
/// and a plain-http image would be mixed content that anyone on the path could swap.
fn https_icon(app: &crate::domain::OAuthApp) -> Option<&str> {
    [app.icon.as_str(), app.logo_uri.as_str()]
        .into_iter()
        .find(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "https"))
}

fn is_localhost(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(
                u.host(),
                Some(url::Host::Domain("localhost"))
                    | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                    | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
            )
    })
}
