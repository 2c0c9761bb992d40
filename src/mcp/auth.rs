//! Who is calling the MCP endpoint, and the RFC 6750 / RFC 9728 challenges when that is unclear
//! or not enough (mcp-requirements W1-W5, B1-B4).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::access_token::AccessTokenVerifier;
use crate::domain::{
    Credential, DomainError, Experiment, Principal, ScopeSet, User, UserId, UserStatus,
};
use crate::web::AppState;
use crate::web::credentials::{bearer_token, session_token_header};

/// How long a user looked up for an OAuth token is reused. Deleting a user revokes their
/// grants at once, so this only delays a role change, by at most this long.
const USER_CACHE_TTL: Duration = Duration::from_secs(10);

/// Users behind recently seen access tokens, so a verified token needs no database round trip.
#[derive(Debug, Default)]
pub struct UserCache {
    users: Mutex<HashMap<UserId, (User, Instant)>>,
}

impl UserCache {
    /// The user, from the cache while fresh, else from the database. While the database is
    /// unreachable a stale entry is used: nothing can have changed the user meanwhile (that
    /// would have needed the database), and the token was verified without it.
    async fn get(&self, state: &AppState, id: UserId) -> Result<Option<User>, DomainError> {
        let cached = self.lock().get(&id).cloned();
        if let Some((user, at)) = &cached
            && at.elapsed() < USER_CACHE_TTL
        {
            return Ok(Some(user.clone()));
        }
        let user = match state.services.get_token_subject(id).await {
            Ok(Some(user)) => user,
            Ok(None) => return Ok(None),
            Err(err @ DomainError::Unavailable { .. }) => {
                return cached.map(|(u, _)| Some(u)).ok_or(err);
            }
            Err(err) => return Err(err),
        };
        let mut users = self.lock();
        if users.len() > 10_000 {
            users.retain(|_, (_, at)| at.elapsed() < USER_CACHE_TTL);
        }
        users.insert(id, (user.clone(), Instant::now()));
        Ok(Some(user))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (User, Instant)>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The token of an MCP request: `Authorization: Bearer`, then Coder's `Coder-Session-Token`
/// header. Never the query string or a cookie (mcp-requirements B1).
fn mcp_token(headers: &HeaderMap) -> Option<String> {
    bearer_token(headers).or_else(|| session_token_header(headers))
}

/// Authenticates the request, or returns the 401 to send.
pub async fn authenticate(
    state: &AppState,
    users: &UserCache,
    headers: &HeaderMap,
    challenge_scope: &ScopeSet,
) -> Result<Principal, Response> {
    let reject = |description: &str| unauthorized(state, description, challenge_scope);
    let Some(token) = mcp_token(headers) else {
        return Err(reject(
            "No access token was sent. Authorize with OAuth, or send an API token.",
        ));
    };
    if !AccessTokenVerifier::looks_like_jwt(&token) {
        return state
            .services
            .authenticate_api_key(&token)
            .await
            .map_err(|e| match e {
                DomainError::Unauthenticated(why) => reject(&why),
                other => lookup_failed(other),
            });
    }
    if !state.experiment_enabled(Experiment::OAuth2) {
        return Err(reject(
            "OAuth2 is disabled on this deployment; use an API token.",
        ));
    }
    let verified = state
        .access_tokens
        .verify(&token)
        .await
        .map_err(|r| reject(r.description()))?;
    let user = users
        .get(state, verified.user_id)
        .await
        .map_err(lookup_failed)?
        .filter(|u| u.status == UserStatus::Active)
        .ok_or_else(|| {
            reject("The user this token was issued to no longer exists or is suspended.")
        })?;
    Ok(Principal {
        user,
        credential: Credential::OAuth {
            client_id: verified.client_id,
            grant_id: verified.grant_id,
            scopes: verified.scopes.clone(),
        },
    })
}

/// A credential that could not be checked is no proof that it is wrong: a 401 would make the
/// client drop a good token (and would carry the internal cause to it). The database being away
/// is a 503 with Retry-After; anything else a 500 whose cause is only logged.
fn lookup_failed(err: DomainError) -> Response {
    match err {
        DomainError::Unavailable {
            message,
            retry_after_secs,
        } => super::wire::unavailable(&message, retry_after_secs),
        other => {
            tracing::error!(error = %other, "could not check the credential of an MCP request");
            super::wire::internal_error()
        }
    }
}

/// RFC 6750 §3 parameter values are quoted strings; keep them free of quotes and backslashes.
fn quoted(value: &str) -> String {
    value.replace(['"', '\\'], "'")
}

fn challenge(state: &AppState, error: &str, description: &str, scope: &ScopeSet) -> String {
    let mut value = format!(
        "Bearer realm=\"coder\", error=\"{error}\", error_description=\"{}\"",
        quoted(description)
    );
    // Without the authorization server there is no metadata to point at (RFC 9728 §5.1).
    if state.experiment_enabled(Experiment::OAuth2) {
        value.push_str(&format!(
            ", resource_metadata=\"{}\"",
            state.oauth.mcp_resource_metadata_url()
        ));
    }
    if !scope.is_empty() {
        value.push_str(&format!(", scope=\"{}\"", scope.to_wire()));
    }
    value
}

fn with_challenge(
    status: StatusCode,
    message: &str,
    detail: &str,
    www_authenticate: String,
) -> Response {
    let mut response = (
        status,
        Json(json!({ "message": message, "detail": detail })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&www_authenticate) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// 401: no usable credential. `scope` names what the toolset needs, so a client can ask for it
/// all at once (SEP-835).
pub fn unauthorized(state: &AppState, description: &str, scope: &ScopeSet) -> Response {
    with_challenge(
        StatusCode::UNAUTHORIZED,
        "You must authenticate to use the MCP server.",
        description,
        challenge(state, "invalid_token", description, scope),
    )
}

/// 403: a valid token that lacks `needed`, so the client can step up (mcp-requirements W4).
pub fn insufficient_scope(state: &AppState, tool: &str, needed: &ScopeSet) -> Response {
    let description = format!("The tool {tool} needs the scope {}.", needed.to_wire());
    with_challenge(
        StatusCode::FORBIDDEN,
        "The access token does not allow this tool.",
        &description,
        challenge(state, "insufficient_scope", &description, needed),
    )
}
