//! OAuth2 entities: client applications, their secrets, authorization codes, grants (token
//! families) and refresh tokens, signing keys, and audit entries.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{UserId, credentials};
use crate::secret::Secret;

/// The site setting that turns dynamic client registration (RFC 7591) on or off.
pub const DCR_SETTING: &str = "oauth2_dynamic_client_registration_enabled";

/// Whether dynamic client registration is on, from the stored `DCR_SETTING`: on unless an owner
/// turned it off.
pub fn dcr_enabled(stored: Option<&str>) -> bool {
    stored.is_none_or(|v| v != "false")
}

/// The site setting holding the owners' policy for Client ID Metadata Document clients.
pub const CIMD_POLICY_SETTING: &str = "oauth2_client_id_metadata_document_policy";
/// The site setting holding the hosts CIMD clients may come from under `CimdPolicy::ListedHosts`.
pub const CIMD_HOSTS_SETTING: &str = "oauth2_client_id_metadata_document_hosts";

/// Which clients identified by a metadata document (draft-ietf-oauth-client-id-metadata-document)
/// an owner accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CimdPolicy {
    /// Any https URL that serves a valid document.
    Any,
    /// Only documents on the listed hosts.
    ListedHosts,
    /// None: metadata documents are turned off.
    None,
}

impl CimdPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            CimdPolicy::Any => "any",
            CimdPolicy::ListedHosts => "listed_hosts",
            CimdPolicy::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "any" => Some(CimdPolicy::Any),
            "listed_hosts" => Some(CimdPolicy::ListedHosts),
            "none" => Some(CimdPolicy::None),
            _ => None,
        }
    }

    /// The stored setting, `Any` when an owner never set one.
    pub fn from_stored(stored: Option<&str>) -> Self {
        stored.and_then(Self::parse).unwrap_or(CimdPolicy::Any)
    }
}

/// The listed hosts, stored as a JSON array; an unreadable value lists none.
pub fn cimd_hosts_from_stored(stored: Option<&str>) -> Vec<String> {
    stored
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default()
}

/// A client's id, the `client_id` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub Uuid);

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A grant: one user's consent to one client, and the family of tokens issued under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(pub Uuid);

impl std::fmt::Display for GrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// RFC 6749 §2.1: confidential clients hold a secret; public clients prove themselves with PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Confidential,
    Public,
}

impl ClientType {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "confidential" => Some(ClientType::Confidential),
            "public" => Some(ClientType::Public),
            _ => None,
        }
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
    /// RFC 7523 §2.2: a JWT signed with a key the client publishes; only for clients
    /// identified by a metadata document.
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::None => "none",
            TokenAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            "none" => Some(TokenAuthMethod::None),
            "private_key_jwt" => Some(TokenAuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }

    pub fn client_type(self) -> ClientType {
        match self {
            TokenAuthMethod::None => ClientType::Public,
            _ => ClientType::Confidential,
        }
    }
}

/// A registered client: created by an owner, or dynamically (RFC 7591).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthApp {
    pub id: ClientId,
    pub name: String,
    pub icon: String,
    pub redirect_uris: Vec<String>,
    pub client_type: ClientType,
    pub token_endpoint_auth_method: TokenAuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    /// The scopes this client may be granted, space-separated; empty means the default set.
    pub scope: String,
    pub dynamically_registered: bool,
    pub client_uri: String,
    pub logo_uri: String,
    pub tos_uri: String,
    pub policy_uri: String,
    pub contacts: Vec<String>,
    pub software_id: String,
    pub software_version: String,
    /// SHA-256 of the RFC 7592 registration access token; only dynamically registered clients have one.
    pub registration_access_token_hash: Option<Vec<u8>>,
    /// For a client identified by a Client ID Metadata Document: the document's https URL, which
    /// is its `client_id` on the wire; the row is refreshed from the document.
    pub metadata_document_url: Option<String>,
    pub client_id_issued_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The Coder CLI's `client_id`: the server's built-in first-party client, used by
/// `coder login --device`. Fixed and documented (docs/oauth2.md) so every CLI knows it without
/// registering; "c0de c11" reads "code cli".
pub const CLI_CLIENT_ID: ClientId =
    ClientId(Uuid::from_u128(0xc0de_0c11_0000_4000_8000_0000_0000_0001));

impl OAuthApp {
    /// The built-in Coder CLI client: public (no secret), the device grant only (RFC 8628 needs
    /// no redirect URI), all scopes. Its approved device codes open API sessions rather than
    /// MCP grants (see `oauth::token`). Owners can neither change nor delete it.
    pub fn coder_cli(now: DateTime<Utc>) -> OAuthApp {
        OAuthApp {
            grant_types: vec![DEVICE_CODE_GRANT.to_owned()],
            ..OAuthApp::first_party(
                CLI_CLIENT_ID,
                "Coder CLI".to_owned(),
                ClientType::Public,
                TokenAuthMethod::None,
                now,
            )
        }
    }

    /// An application this deployment makes itself (an owner's, or one built in), created
    /// `now`: none of the metadata a client describes itself with in RFC 7591 §2, no redirect
    /// URIs, grant types or scope yet; the caller sets what it has.
    pub fn first_party(
        id: ClientId,
        name: String,
        client_type: ClientType,
        token_endpoint_auth_method: TokenAuthMethod,
        now: DateTime<Utc>,
    ) -> OAuthApp {
        OAuthApp {
            id,
            name,
            icon: String::new(),
            redirect_uris: Vec::new(),
            client_type,
            token_endpoint_auth_method,
            grant_types: Vec::new(),
            response_types: Vec::new(),
            scope: String::new(),
            dynamically_registered: false,
            client_uri: String::new(),
            logo_uri: String::new(),
            tos_uri: String::new(),
            policy_uri: String::new(),
            contacts: Vec::new(),
            software_id: String::new(),
            software_version: String::new(),
            registration_access_token_hash: None,
            metadata_document_url: None,
            client_id_issued_at: now,
            last_used_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether this is a client built into the server rather than one an owner or a client
    /// registered.
    pub fn is_builtin(&self) -> bool {
        self.id == CLI_CLIENT_ID
    }

    /// The `client_id` clients send: the metadata document's URL, else the UUID.
    pub fn wire_client_id(&self) -> String {
        match &self.metadata_document_url {
            Some(url) => url.clone(),
            None => self.id.to_string(),
        }
    }
}

/// A client secret; only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSecret {
    pub id: Uuid,
    pub app_id: ClientId,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    /// The last characters, for telling secrets apart in lists.
    pub display_secret: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl AppSecret {
    /// A new secret for `app_id`: the record to keep (only a hash) and the full value, which is
    /// shown once.
    pub fn generate(app_id: ClientId, now: DateTime<Utc>) -> (Self, Secret) {
        let cred = credentials::generate();
        let display_secret = credentials::display_tail(cred.full.expose());
        let secret = AppSecret {
            id: Uuid::new_v4(),
            app_id,
            secret_prefix: cred.prefix,
            hashed_secret: cred.hashed_secret,
            display_secret,
            last_used_at: None,
            created_at: now,
        };
        (secret, cred.full)
    }
}

/// An authorization code (RFC 6749 §4.1.2), bound to everything the token request must repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    pub id: Uuid,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    pub app_id: ClientId,
    pub user_id: UserId,
    /// The grant the code's tokens will belong to; revoked if the code is replayed.
    pub grant_id: GrantId,
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI (RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    pub code_challenge: String,
    pub audience: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: GrantId,
    pub app_id: ClientId,
    pub user_id: UserId,
    pub app_secret_id: Option<Uuid>,
    pub scope: String,
    pub audience: String,
    pub last_used_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A refresh token; each use rotates it (OAuth 2.1 §4.3.1), and a rotated one replayed revokes
/// its grant.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub id: Uuid,
    pub grant_id: GrantId,
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A stored access-token signing key.
#[derive(Clone, PartialEq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: String,
    pub private_key: String,
    pub public_key: String,
    pub retired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// One audited action.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub user_id: Option<UserId>,
    pub client_id: Option<ClientId>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub ip: String,
    pub details: serde_json::Value,
}

/// The grant type of the device authorization grant (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One device authorization request (RFC 8628 §3.1–3.2) and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCode {
    pub id: Uuid,
    /// The device code, stored like the other OAuth secrets.
    pub secret_prefix: String,
    pub hashed_secret: Vec<u8>,
    /// Normalized: upper case, without the dash shown to users.
    pub user_code: String,
    pub app_id: ClientId,
    /// The scope the client may get, before the approving user's role narrows it.
    pub scope: String,
    pub audience: String,
    /// The grant the device code's tokens will belong to.
    pub grant_id: GrantId,
    /// The polling interval in seconds, raised by `slow_down` (RFC 8628 §3.5).
    pub interval_secs: i64,
    pub last_polled_at: Option<DateTime<Utc>>,
    /// The user who approved or denied the request, with the granted scope once approved.
    pub user_id: Option<UserId>,
    pub approved_at: Option<DateTime<Utc>>,
    pub denied_at: Option<DateTime<Utc>>,
    pub used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}
