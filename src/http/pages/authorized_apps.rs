//! `/settings/oauth2-provider`: the applications a user authorized, what each may do, and a
//! button to take that access back.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{escape, hidden, notice_box, post_form, time};
use super::{
    csrf, csrf_checked, error_page, form_expired, oauth2_page_user, respond_wide, see_other,
};
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

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    query: Result<Query<Revoked>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let me = match oauth2_page_user(&state, user, PAGE) {
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
        let name: String = name.chars().take(64).collect();
        format!("Revoked access for {name}. Its tokens no longer work.")
    });
    let (token, cookie) = csrf::token_for(&headers, state.settings.secure_cookies());
    let list = if apps.is_empty() {
        "<p class=\"muted\">You have not authorized any applications.</p>".to_owned()
    } else {
        apps.iter().map(|a| app_item(a, &token)).collect()
    };
    let body = format!(
        "<nav class=\"crumbs\"><a href=\"/\">Home</a></nav>\
         <h1>Authorized applications</h1><p class=\"lead\">Applications you allowed to act on your \
         Coder account. Revoking access signs the application out at once.</p>{notice}{list}",
        notice = notice_box(notice.as_deref()),
    );
    respond_wide(
        StatusCode::OK,
        "Authorized applications",
        &body,
        cookie.as_slice(),
    )
}

fn app_item(entry: &AuthorizedApp, token: &str) -> String {
    let scopes: String = entry
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", escape(s.description())))
        .collect();
    let scopes = if scopes.is_empty() {
        "<p class=\"muted\">It holds no permissions.</p>".to_owned()
    } else {
        format!("<p>It can:</p><ul class=\"plain\">{scopes}</ul>")
    };
    format!(
        "<section class=\"item\"><h2>{name}</h2>\
         <p class=\"muted\">Authorized {authorized} · last used {used}</p>{scopes}{revoke}</section>",
        name = escape(&entry.app.name),
        authorized = time(&entry.authorized_at),
        used = time(&entry.last_used_at),
        revoke = post_form(
            REVOKE,
            token,
            &hidden("app_id", &entry.app.id.to_string()),
            "Revoke access",
            "danger",
        ),
    )
}

async fn revoke(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let me = match oauth2_page_user(&state, user, PAGE) {
        Ok(me) => me,
        Err(page) => return *page,
    };
    let Some(fields) = csrf_checked(&state, &headers, form) else {
        return form_expired(PAGE);
    };
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
