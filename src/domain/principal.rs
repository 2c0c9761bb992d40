//! Who is calling, with what credential, and what that lets them do: the principal every
//! layer checks permissions against.

use super::{ApiKeyId, ClientId, GrantId, LoginType, Scope, ScopeSet, User};

/// The authenticated caller of a request, placed in the request's extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
}

/// What the caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A browser session or a user-created API token: the user's full rights.
    ApiKey { id: ApiKeyId, login_type: LoginType },
    /// An OAuth access token: only what the user granted the client.
    OAuth {
        client_id: ClientId,
        grant_id: GrantId,
        scopes: ScopeSet,
    },
}

impl Principal {
    pub fn is_owner(&self) -> bool {
        self.user.is_owner()
    }

    /// What this caller may do: the token's scopes, never more than the user's role allows.
    pub fn scopes(&self) -> ScopeSet {
        let held = match &self.credential {
            Credential::ApiKey { .. } => ScopeSet::all(),
            Credential::OAuth { scopes, .. } => scopes.clone(),
        };
        held.iter()
            .filter(|s| s.allowed_for(self.user.role))
            .collect()
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        scope.allowed_for(self.user.role)
            && match &self.credential {
                Credential::ApiKey { .. } => true,
                Credential::OAuth { scopes, .. } => scopes.contains(scope),
            }
    }

    /// The OAuth client acting for the user, if any.
    pub fn client_id(&self) -> Option<ClientId> {
        match &self.credential {
            Credential::OAuth { client_id, .. } => Some(*client_id),
            Credential::ApiKey { .. } => None,
        }
    }
}
