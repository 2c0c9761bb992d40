//! Where a request carries its token. Each front door combines these in its own order: the API
//! also reads the session cookie, the MCP endpoint never does.

use axum::http::{HeaderMap, header};

/// Coder's own header for session and API tokens.
pub const SESSION_TOKEN_HEADER: &str = "coder-session-token";

/// The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 6750 §2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The token of a `Coder-Session-Token` header, trimmed; `None` when absent or blank.
pub fn session_token_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
