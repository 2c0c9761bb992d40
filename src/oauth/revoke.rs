//! Token revocation (RFC 7009): revoking either token of a grant revokes the whole grant.

use super::client_auth::ClientCredentials;
use super::{OAuthError, OAuthResult, OAuthServer, jwt};
use crate::audit::AuditEvent;
use crate::domain::credentials;
use crate::domain::{ClientId, GrantId};

/// An RFC 7009 revocation request: the token, and how the client authenticates.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    pub token: Option<String>,
    pub client: ClientCredentials,
}

impl OAuthServer {
    /// Revokes the grant behind the token if it belongs to the authenticated client. Unknown,
    /// malformed and foreign tokens are answered the same way (RFC 7009 §2.2), and revoke nothing.
    /// `read` is the request as the endpoint could read it: one that could not be read is refused
    /// only after the per-IP limit counted it.
    pub async fn revoke(&self, read: OAuthResult<RevokeRequest>, ip: &str) -> OAuthResult<()> {
        self.check_ip_limit("revoke", ip)?;
        let RevokeRequest { token, client } = read?;
        let token = token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("missing required parameter: token"))?;
        let client = self.authenticate_client(&client, ip).await?;
        self.check_authenticated_client_limit("revoke", &client, ip)?;
        let Some(grant) = self.grant_behind(token).await? else {
            return Ok(());
        };
        let Some(stored) = self.inner.store.get_grant(grant).await? else {
            return Ok(());
        };
        if stored.app_id != client.app.id {
            tracing::debug!(client = %client.app.id, "refused to revoke another client's token");
            return Ok(());
        }
        if self
            .inner
            .store
            .revoke_grant(grant, self.inner.clock.now())
            .await?
        {
            self.note_revoked([grant]);
            self.inner
                .metrics
                .oauth_revoked(client.app.client_type, "client", 1);
            self.inner
                .audit
                .record(
                    AuditEvent::new("oauth2.grant.revoke", "oauth2_grant", grant)
                        .by(stored.user_id)
                        .client(client.app.id)
                        .from_ip(ip),
                )
                .await;
        }
        Ok(())
    }

    /// The grant a refresh token or access token belongs to, if it is one of ours.
    async fn grant_behind(&self, token: &str) -> OAuthResult<Option<GrantId>> {
        if let Some(presented) = credentials::parse(token) {
            let found = self
                .inner
                .store
                .get_refresh_token_by_prefix(presented.prefix)
                .await?
                .filter(|t| presented.matches(&t.hashed_secret));
            return Ok(found.map(|t| t.grant_id));
        }
        // An access token: its signature proves we issued it; expiry does not matter here.
        let expected = jwt::Expected {
            issuer: self.issuer(),
            audience: None,
        };
        let claims = jwt::verify(token, &expected, |kid| self.keys().verifying_key(kid)).ok();
        Ok(claims
            .and_then(|c| uuid::Uuid::parse_str(&c.gid).ok())
            .map(GrantId))
    }

    /// A signed-in user withdraws an app's access: every grant they gave it is revoked.
    pub async fn revoke_user_app(
        &self,
        user: crate::domain::UserId,
        app: ClientId,
        ip: &str,
    ) -> OAuthResult<usize> {
        let revoked = self
            .inner
            .store
            .revoke_user_grants(user, Some(app), self.inner.clock.now())
            .await?;
        let count = revoked.len();
        self.note_revoked(revoked);
        if count > 0
            && let Ok(Some(app)) = self.inner.store.get_oauth_app(app).await
        {
            self.inner
                .metrics
                .oauth_revoked(app.client_type, "user", count as u64);
        }
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.grant.revoke_all", "oauth2_provider_app", app)
                    .by(user)
                    .client(app)
                    .from_ip(ip)
                    .details(serde_json::json!({ "grants": count })),
            )
            .await;
        Ok(count)
    }
}
