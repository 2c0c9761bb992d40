//! `/api/v2/users`: the first user, sign-in and sign-out, and user management.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::cookies::{SESSION_COOKIE, set_cookie};
use super::extract::{ApiJson, ApiQuery, ClientIp, CurrentUser};
use crate::domain::{FieldError, Page, Role, UserStatus, ZeroLimit};
use crate::service::views::UserResponse;
use crate::service::{CreateUserRequest, UserSelector};
use crate::web::{ApiError, ApiResult, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v2/users/first",
            get(first_user_exists).post(create_first_user),
        )
        .route("/api/v2/users/login", post(login))
        .route("/api/v2/users/logout", post(logout))
        .route("/api/v2/users", get(list_users).post(create_user))
        .route("/api/v2/users/{user}", get(get_user).delete(delete_user))
        .route("/api/v2/users/{user}/status/suspend", put(suspend_user))
        .route("/api/v2/users/{user}/status/activate", put(activate_user))
        .route("/api/v2/users/{user}/roles", put(update_roles))
}

#[derive(Deserialize)]
struct CreateUserBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

impl From<CreateUserBody> for CreateUserRequest {
    fn from(b: CreateUserBody) -> Self {
        CreateUserRequest {
            email: b.email,
            username: b.username,
            name: b.name,
            password: b.password,
        }
    }
}

async fn first_user_exists(State(state): State<AppState>) -> ApiResult<Response> {
    if state.services.first_user_exists().await? {
        Ok(Json(json!({"message": "The initial user has already been created."})).into_response())
    } else {
        Err(ApiError::not_found(
            "The initial user has not been created.",
        ))
    }
}

async fn create_first_user(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<Response> {
    let user = state.services.create_first_user(body.into()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user_id": user.id.0 }))).into_response())
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<Response> {
    let mut missing = Vec::new();
    if body.email.trim().is_empty() {
        missing.push(FieldError::new("email", "Required."));
    }
    if body.password.is_empty() {
        missing.push(FieldError::new("password", "Required."));
    }
    if !missing.is_empty() {
        return Err(
            ApiError::bad_request("Email and password are required.").with_validations(missing)
        );
    }
    let (_, token) = state
        .services
        .login(&body.email, body.password, &ip.to_string())
        .await?;
    let cookie = session_cookie(&state, token.expose());
    let mut response = (
        StatusCode::CREATED,
        Json(json!({"session_token": token.expose()})),
    )
        .into_response();
    append_cookie(response.headers_mut(), &cookie);
    Ok(response)
}

async fn logout(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> ApiResult<Response> {
    state.services.logout(&me).await?;
    let mut response = Json(json!({"message": "Logged out!"})).into_response();
    append_cookie(
        response.headers_mut(),
        &set_cookie(
            SESSION_COOKIE,
            "",
            0,
            "Lax",
            state.settings.secure_cookies(),
        ),
    );
    Ok(response)
}

/// The session cookie for `token`, living as long as a session does.
pub fn session_cookie(state: &AppState, token: &str) -> String {
    let max_age = state.services.session_duration().as_secs() as i64;
    set_cookie(
        SESSION_COOKIE,
        token,
        max_age,
        "Lax",
        state.settings.secure_cookies(),
    )
}

pub fn append_cookie(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list_users(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let page = Page::requested(q.limit, q.offset, ZeroLimit::Refused)?;
    let (users, count) = state.services.list_users(&me, page).await?;
    let users: Vec<UserResponse> = users.into_iter().map(UserResponse::from).collect();
    Ok(Json(json!({ "users": users, "count": count })))
}

async fn create_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    let user = state
        .services
        .create_user(&me, body.into(), Role::Member)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

async fn get_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
) -> ApiResult<Json<UserResponse>> {
    let user = state
        .services
        .get_user(&me, &UserSelector::parse(&user))
        .await?;
    Ok(Json(user.into()))
}

async fn delete_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_user(&me, &UserSelector::parse(&user))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn suspend_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
) -> ApiResult<Json<UserResponse>> {
    set_status(&state, &me, &user, UserStatus::Suspended).await
}

async fn activate_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
) -> ApiResult<Json<UserResponse>> {
    set_status(&state, &me, &user, UserStatus::Active).await
}

async fn set_status(
    state: &AppState,
    me: &crate::domain::Principal,
    user: &str,
    status: UserStatus,
) -> ApiResult<Json<UserResponse>> {
    let user = state
        .services
        .set_user_status(me, &UserSelector::parse(user), status)
        .await?;
    Ok(Json(user.into()))
}

/// Coder's `codersdk.UpdateRoles`.
#[derive(Deserialize)]
struct UpdateRolesBody {
    roles: Vec<String>,
}

async fn update_roles(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<UpdateRolesBody>,
) -> ApiResult<Json<UserResponse>> {
    let user = state
        .services
        .set_user_roles(&me, &UserSelector::parse(&user), &body.roles)
        .await?;
    Ok(Json(user.into()))
}
