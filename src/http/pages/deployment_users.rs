//! `/deployment/users`: the owners' list of accounts, a form to create one, and per-account
//! suspend/activate, owner/member and delete forms. Every form posts with the CSRF token and
//! redirects (303) on success; a refused action shows the page again with its error and status.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::chrome::{Chrome, render};
use super::form::{FormPage, SignedInForm};
use super::owners::{failure, owner_only};
use super::see_other;
use crate::domain::{DomainError, Page, Principal, Role, User, UserStatus};
use crate::http::extract::MaybeBrowserUser;
use crate::service::{CreateUserRequest, UserSelector};
use crate::web::AppState;

const PAGE: &str = "/deployment/users";

/// Every form of this page, the per-account ones included, comes back to the list.
struct UsersForms;

impl FormPage for UsersForms {
    fn page(_: &str) -> String {
        PAGE.to_owned()
    }
}
/// Accounts per page of the list.
const PER_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show).post(create))
        .route("/deployment/users/{id}/{action}", post(act))
}

struct UserRow {
    id: String,
    username: String,
    email: String,
    role: &'static str,
    owner: bool,
    status: &'static str,
    suspended: bool,
    created: String,
    last_seen: String,
    is_me: bool,
}

impl UserRow {
    fn new(user: &User, me: &Principal) -> Self {
        UserRow {
            id: user.id.0.to_string(),
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role.display_name(),
            owner: user.role == Role::Owner,
            status: match user.status {
                UserStatus::Active => "Active",
                UserStatus::Suspended => "Suspended",
            },
            suspended: user.status == UserStatus::Suspended,
            created: when(&user.created_at),
            last_seen: when(&user.last_seen_at),
            is_me: user.id == me.user.id,
        }
    }
}

fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// What the create form held, shown again when it was refused (never the password).
#[derive(Default)]
struct Draft {
    username: String,
    email: String,
    owner: bool,
}

#[derive(Template)]
#[template(path = "deployment_users.html")]
struct UsersPage {
    chrome: Chrome,
    title: &'static str,
    notice: Option<String>,
    error: Option<String>,
    draft: Draft,
    users: Vec<UserRow>,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<i64>,
    next: Option<i64>,
}

/// What the last action did, from the redirect that followed it: fixed words and a username
/// (escaped like every value).
#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    offset: i64,
    done: Option<String>,
    user: Option<String>,
}

impl ListQuery {
    fn notice(&self) -> Option<String> {
        let who = super::notice_name(self.user.as_deref());
        Some(match self.done.as_deref()? {
            "created" => format!("Created {who}."),
            "suspended" => {
                format!("Suspended {who}: they can no longer sign in or use their tokens.")
            }
            "activated" => format!("Activated {who}."),
            "owner" => format!("{who} is now an owner."),
            "member" => format!("{who} is now a member."),
            "deleted" => format!("Deleted {who}."),
            _ => return None,
        })
    }
}

async fn show(
    State(state): State<AppState>,
    MaybeBrowserUser(user): MaybeBrowserUser,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let me = match owner_only(user, PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let notice = q.notice();
    page(
        &state,
        &me,
        &headers,
        q.offset,
        notice,
        None,
        Draft::default(),
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    me: &Principal,
    headers: &HeaderMap,
    offset: i64,
    notice: Option<String>,
    error: Option<String>,
    draft: Draft,
    status: StatusCode,
) -> Response {
    let (chrome, cookie) = Chrome::signed_in(me, headers, &state.settings, "users");
    let offset = offset.max(0);
    let listed = state
        .services
        .list_users(
            me,
            Page {
                limit: PER_PAGE,
                offset,
            },
        )
        .await;
    let (users, total) = match listed {
        Ok(found) => found,
        Err(e) => return super::error_page(&e, "/"),
    };
    let shown = users.len() as i64;
    let page = UsersPage {
        chrome,
        title: "Users",
        notice,
        error,
        draft,
        users: users.iter().map(|u| UserRow::new(u, me)).collect(),
        total,
        first: if shown == 0 { 0 } else { offset + 1 },
        last: offset + shown,
        previous: (offset > 0).then(|| (offset - PER_PAGE).max(0)),
        next: (offset + shown < total).then_some(offset + shown),
    };
    render(&page, status, &cookie.into_iter().collect::<Vec<_>>())
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedInForm { me, fields, .. }: SignedInForm<UsersForms>,
) -> Response {
    let me = match owner_only(Some(me), PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let draft = Draft {
        username: fields.get("username").trim().to_owned(),
        email: fields.get("email").trim().to_owned(),
        owner: fields.get("role") == "owner",
    };
    let role = match fields.get("role") {
        "owner" => Role::Owner,
        "member" | "" => Role::Member,
        _ => {
            let err = DomainError::invalid("Choose the owner or the member role.");
            return refused(&state, &me, &headers, &err, draft).await;
        }
    };
    let request = CreateUserRequest {
        email: draft.email.clone(),
        username: draft.username.clone(),
        name: String::new(),
        password: fields.get("password").to_owned(),
    };
    match state.services.create_user(&me, request, role).await {
        Ok(created) => see_other(&done("created", &created.username), &[]),
        Err(e) => refused(&state, &me, &headers, &e, draft).await,
    }
}

/// The list again, saying why the action was refused, with the status that says it too.
async fn refused(
    state: &AppState,
    me: &Principal,
    headers: &HeaderMap,
    err: &DomainError,
    draft: Draft,
) -> Response {
    let (status, message) = failure(err);
    page(state, me, headers, 0, None, Some(message), draft, status).await
}

fn done(what: &str, username: &str) -> String {
    let user: String = url::form_urlencoded::byte_serialize(username.as_bytes()).collect();
    format!("{PAGE}?done={what}&user={user}")
}

/// One row's forms: `suspend`, `activate`, `owner`, `member` or `delete`.
async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: SignedInForm<UsersForms>,
) -> Response {
    let me = match owner_only(Some(form.me), PAGE) {
        Ok(me) => me,
        Err(r) => return *r,
    };
    let who = match uuid::Uuid::parse_str(&id) {
        Ok(id) => UserSelector::Id(crate::domain::UserId(id)),
        Err(_) => {
            let err = DomainError::NotFound("User not found.".into());
            return refused(&state, &me, &headers, &err, Draft::default()).await;
        }
    };
    let services = &state.services;
    let outcome = match action.as_str() {
        "suspend" => services
            .set_user_status(&me, &who, UserStatus::Suspended)
            .await
            .map(|u| ("suspended", u.username)),
        "activate" => services
            .set_user_status(&me, &who, UserStatus::Active)
            .await
            .map(|u| ("activated", u.username)),
        "owner" | "member" => services
            .set_user_roles(&me, &who, std::slice::from_ref(&action))
            .await
            .map(|u| {
                (
                    if u.role == Role::Owner {
                        "owner"
                    } else {
                        "member"
                    },
                    u.username,
                )
            }),
        "delete" => match services.get_user(&me, &who).await {
            Ok(target) => services
                .delete_user(&me, &who)
                .await
                .map(|_| ("deleted", target.username)),
            Err(e) => Err(e),
        },
        _ => Err(DomainError::NotFound("There is no such action.".into())),
    };
    match outcome {
        Ok((what, username)) => see_other(&done(what, &username), &[]),
        Err(e) => refused(&state, &me, &headers, &e, Draft::default()).await,
    }
}
