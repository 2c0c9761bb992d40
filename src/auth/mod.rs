//! The resource-server side of authentication: who is calling, and with what credential.

pub mod access_token;
pub mod revocation;

use crate::domain::{ApiKeyId, LoginType, User};

/// The authenticated caller of a request, placed in the request's extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
}

/// What the caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session or a user-created API token.
    ApiKey { id: ApiKeyId, login_type: LoginType },
}

impl Principal {
    pub fn is_owner(&self) -> bool {
        self.user.is_owner()
    }
}
