//! `GET/POST /oauth2/authorize`: sign-in redirect, the consent page, and the user's decision.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::RequireOAuth2;
use super::form::OAuthForm;
use crate::domain::Principal;
use crate::domain::redirect_uri;
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::http::pages::layout::{content_security_policy, escape, hidden};
use crate::http::pages::{csrf, respond, see_other};
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
    let body = format!(
        "<h1>{}</h1><p class=\"lead\">{}</p><p class=\"muted\">Close this window and start again from the application.</p>",
        escape(title),
        escape(message)
    );
    respond(status, title, &body, &[])
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
    let (token, cookie) = csrf::token_for(headers, state.settings.secure_cookies());
    let app = &request.client.app;
    let destination = redirect_uri::redirect_host(&request.client.redirect_uri);
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li><strong>{}</strong>: {}</li>",
                escape(s.name()),
                escape(s.description())
            )
        })
        .collect();
    let fields: String = params
        .to_pairs()
        .iter()
        .map(|(k, v)| hidden(k, v))
        .collect();
    let caution = identity_notes(app);
    let error = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Authorize {name}</h1>{error}\
         <p class=\"lead\"><strong>{name}</strong> wants to access your Coder account \
         <strong>{username}</strong> ({email}).</p>\
         <p>It will be able to:</p><ul class=\"plain\">{scopes}</ul>\
         <p>After you decide, you will be sent to <strong>{destination}</strong>.</p>{caution}\
         <form method=\"post\" action=\"/oauth2/authorize\">{csrf}{fields}\
         <button type=\"submit\" name=\"action\" value=\"allow\">Allow</button> \
         <button class=\"secondary\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        name = escape(&app.name),
        username = escape(&user.user.username),
        email = escape(&user.user.email),
        destination = escape(&destination),
        csrf = hidden(csrf::FIELD, &token),
    );
    let mut response = respond(status, "Authorize application", &body, cookie.as_slice());
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

/// What the consent page says about who the client is: for a client identified by a metadata
/// document, the host that vouches for it ("identified by"), not "registered itself"; and a
/// warning when every redirect URI stays on this computer, where any local program may listen.
fn identity_notes(app: &crate::domain::OAuthApp) -> String {
    let mut notes = match &app.metadata_document_url {
        Some(url) => format!(
            "<p class=\"muted\">This application is identified by <strong>{host}</strong>: Coder \
             read its details from <code>{url}</code>. Allow it only if you started this \
             connection and trust {host}.</p>",
            host = escape(&redirect_uri::redirect_host(url)),
            url = escape(url),
        ),
        None if app.dynamically_registered => "<p class=\"muted\">This application registered \
            itself with Coder. Allow it only if you started this connection and trust it.</p>"
            .to_owned(),
        None => String::new(),
    };
    if !app.redirect_uris.is_empty() && app.redirect_uris.iter().all(|u| is_localhost(u)) {
        notes.push_str(
            "<p class=\"warning\" role=\"note\">This application only sends you back to \
             <strong>localhost</strong>, a program on your own computer. Allow it only if you \
             started it on this computer yourself.</p>",
        );
    }
    notes
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
