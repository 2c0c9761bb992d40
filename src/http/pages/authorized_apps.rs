//! `/settings/oauth2-provider`: the applications a user authorized, what each may do, and a
//! button to take that access back.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::chrome::{Chrome, render};
use super::form::SignedInForm;
use super::parts::When;
use super::{OAuth2Pages, error_page, see_other, signed_in};
use crate::domain::{ClientId, DomainError};
use crate::http::extract::{ClientIp, MaybeBrowserUser};
use crate::service::{AuthorizedApp, UserSelector};
use crate::web::AppState;

const PAGE: &str = "/settings/oauth2-provider";
const REVOKE: &str = "/settings/oauth2-provider/revoke";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show))
        .route(REVOKE, post(revoke))
}

#[derive(Deserialize, Default)]
struct Revoked {
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "authorized_apps.html")]
struct AuthorizedAppsPage {
    chrome: Chrome,
    title: &'static str,
    revoke: &'static str,
    notice: Option<String>,
    apps: Vec<AppItem>,
}

struct AppItem {
    id: String,
    name: String,
    authorized: When,
    used: When,
    scopes: Vec<&'static str>,
}

impl From<&AuthorizedApp> for AppItem {
    fn from(entry: &AuthorizedApp) -> Self {
        AppItem {
            id: entry.app.id.to_string(),
            name: entry.app.name.clone(),
            authorized: When::of(&entry.authorized_at),
            used: When::of(&entry.last_used_at),
            scopes: entry.scopes.iter().map(|s| s.description()).collect(),
        }
    }
}

async fn show(
    _: OAuth2Pages,
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    query: Result<Query<Revoked>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let me = match signed_in(user, PAGE) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let apps = match state
        .services
        .list_authorized_apps(&me, &UserSelector::Me)
        .await
    {
        Ok(apps) => apps,
        Err(e) => return error_page(&e, "/"),
    };
    let notice = query.ok().and_then(|q| q.0.revoked).map(|name| {
        let name = super::notice_name(Some(&name));
        format!("Revoked access for {name}. Its tokens no longer work.")
    });
    let (chrome, cookie) = Chrome::signed_in(&me, &headers, &state.settings, "account");
    let page = AuthorizedAppsPage {
        chrome,
        title: "Authorized applications",
        revoke: REVOKE,
        notice,
        apps: apps.iter().map(AppItem::from).collect(),
    };
    render(&page, StatusCode::OK, cookie.as_slice())
}

async fn revoke(
    _: OAuth2Pages,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SignedInForm { me, fields, .. }: SignedInForm,
) -> Response {
    let not_found = || DomainError::NotFound("You have not authorized this application.".into());
    let Ok(app) = Uuid::parse_str(fields.get("app_id")).map(ClientId) else {
        return error_page(&not_found(), PAGE);
    };
    let authorized = match state
        .services
        .list_authorized_apps(&me, &UserSelector::Me)
        .await
    {
        Ok(apps) => apps,
        Err(e) => return error_page(&e, PAGE),
    };
    let Some(entry) = authorized.iter().find(|a| a.app.id == app) else {
        return error_page(&not_found(), PAGE);
    };
    match state
        .oauth
        .revoke_user_app(me.user.id, app, &ip.to_string())
        .await
    {
        Ok(_) => {
            let name: String =
                url::form_urlencoded::byte_serialize(entry.app.name.as_bytes()).collect();
            see_other(&format!("{PAGE}?revoked={name}"), &[])
        }
        Err(e) => error_page(&DomainError::from(e), PAGE),
    }
}
