//! Discovery documents: authorization server metadata (RFC 8414) and protected resource
//! metadata (RFC 9728).

use serde_json::{Value, json};

use super::OAuthServer;
use super::resource::MCP_PATH;
use crate::domain::{DEVICE_CODE_GRANT, Scope};

impl OAuthServer {
    /// RFC 8414 §2. `registration_endpoint` appears only while registration is enabled, so
    /// clients are never sent to an endpoint that refuses them.
    /// `client_id_metadata_document_supported` likewise appears only while metadata documents are
    /// accepted (draft-ietf-oauth-client-id-metadata-document §5).
    pub fn authorization_server_metadata(
        &self,
        registration_enabled: bool,
        metadata_documents_enabled: bool,
    ) -> Value {
        let issuer = self.issuer();
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
            "token_endpoint": format!("{issuer}/oauth2/tokens"),
            "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
            "jwks_uri": format!("{issuer}/oauth2/jwks"),
            "scopes_supported": scope_names(),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "device_authorization_endpoint": format!("{issuer}/oauth2/device"),
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": true,
            "service_documentation": format!("{issuer}/"),
        });
        if metadata_documents_enabled {
            doc["client_id_metadata_document_supported"] = json!(true);
        }
        if registration_enabled {
            doc["registration_endpoint"] = json!(format!("{issuer}/oauth2/register"));
        }
        doc
    }

    /// RFC 9728 §3.2 for `resource` (the MCP URL for the path-suffixed document, the access URL
    /// for the bare one; §3.3 requires it to match the URL the well-known path was built from).
    pub fn protected_resource_metadata(&self, resource: &str) -> Value {
        json!({
            "resource": resource,
            "authorization_servers": [self.issuer()],
            "scopes_supported": scope_names(),
            "bearer_methods_supported": ["header"],
            "resource_name": "Coder",
            "resource_documentation": format!("{}/", self.issuer()),
        })
    }

    /// Where the MCP endpoint's protected resource metadata lives, for `WWW-Authenticate`.
    pub fn mcp_resource_metadata_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{MCP_PATH}",
            self.issuer()
        )
    }
}

fn scope_names() -> Vec<&'static str> {
    Scope::ALL.iter().map(|s| s.name()).collect()
}
