//! The authorization endpoint's rules (RFC 6749 §4.1.1, RFC 7636, RFC 8707, RFC 9207): which
//! requests deserve a consent page, which errors go back to the client, and issuing the code.

use serde_json::json;
use uuid::Uuid;

use super::scopes::negotiate;
use super::{ErrorCode, OAuthError, OAuthResult, OAuthServer, pkce};
use crate::audit::AuditEvent;
use crate::domain::{AuthorizationCode, ClientId, GrantId, OAuthApp, ScopeSet, User};
use crate::domain::{credentials, redirect_uri};

/// The authorization request's parameters; unknown ones are ignored (RFC 6749 §3.1).
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
    /// Names of parameters sent more than once (RFC 6749 §3.1 forbids it).
    pub repeated: Vec<String>,
}

impl AuthorizeParams {
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params = AuthorizeParams::default();
        for (key, value) in pairs {
            let slot = match key {
                "response_type" => &mut params.response_type,
                "client_id" => &mut params.client_id,
                "redirect_uri" => &mut params.redirect_uri,
                "scope" => &mut params.scope,
                "state" => &mut params.state,
                "code_challenge" => &mut params.code_challenge,
                "code_challenge_method" => &mut params.code_challenge_method,
                "resource" => &mut params.resource,
                _ => continue,
            };
            if slot.is_some() {
                params.repeated.push(key.to_owned());
            }
            *slot = Some(value.to_owned());
        }
        params
    }

    /// The parameters to carry through the login redirect and the consent form.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("resource", &self.resource),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

/// A request that cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeFailure {
    /// The database is unreachable: the same request is likely to work shortly (an error page
    /// with 503 and `Retry-After`).
    Unavailable(OAuthError),
    /// The client or redirect URI is not trustworthy: show an error page and never redirect
    /// (RFC 6749 §4.1.2.1, OAuth 2.1 §4.1.2.1).
    Page {
        title: &'static str,
        message: String,
    },
    /// Report to the client at its validated redirect URI.
    Redirect(String),
    /// Over a rate limit: an error page, and when to try again.
    RateLimited {
        message: String,
        retry_after_secs: Option<u64>,
    },
}

/// A client and redirect URI that passed validation; errors may now be redirected.
#[derive(Debug, Clone)]
pub struct TrustedClient {
    pub app: OAuthApp,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
}

/// A request ready for the user's decision.
#[derive(Debug, Clone)]
pub struct ValidatedAuthorization {
    pub client: TrustedClient,
    pub code_challenge: String,
    pub audience: String,
    pub scopes: ScopeSet,
}

fn page(title: &'static str, message: impl Into<String>) -> AuthorizeFailure {
    AuthorizeFailure::Page {
        title,
        message: message.into(),
    }
}

impl OAuthServer {
    /// The authorization endpoint counts the caller's IP, and the client it names from that IP:
    /// nothing here proves the client, so a stranger must not spend its budget for everyone.
    fn check_authorize_limits(
        &self,
        params: &AuthorizeParams,
        ip: &str,
    ) -> Result<(), AuthorizeFailure> {
        self.check_ip_limit("authorize", ip)
            .and_then(|()| match params.client_id.as_deref() {
                Some(id) => self.check_unproven_client_limit("authorize", id, ip),
                None => Ok(()),
            })
            .map_err(|err| AuthorizeFailure::RateLimited {
                message: err.description,
                retry_after_secs: err.retry_after,
            })
    }

    /// Counts the request against the rate limits, finds the client and checks the redirect URI:
    /// exact match with a registered one, or a loopback URI on any port (RFC 8252 §7.3).
    /// Omitted, it defaults to the only registered URI.
    pub async fn trust_client(
        &self,
        params: &AuthorizeParams,
        ip: &str,
    ) -> Result<TrustedClient, AuthorizeFailure> {
        self.check_authorize_limits(params, ip)?;
        if let Some(name) = params
            .repeated
            .iter()
            .find(|n| *n == "client_id" || *n == "redirect_uri")
        {
            return Err(page(
                "Invalid request",
                format!("The parameter {name} was sent more than once."),
            ));
        }
        let raw_id = params
            .client_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| page("Invalid request", "The request has no client_id."))?;
        let app = if super::cimd::is_document_url(raw_id) {
            self.metadata_document_client(raw_id, ip)
                .await
                .map_err(|refused| match refused.unavailable {
                    Some(err) => AuthorizeFailure::Unavailable(err),
                    None => page("Client metadata document refused", refused.message()),
                })?
                .0
        } else {
            self.registered_client(raw_id).await?
        };
        // A device-only client (the Coder CLI, RFC 8628 clients) is never redirected: say so on a
        // page instead of trusting a redirect URI it may not have (RFC 6749 §4.1.2.1).
        if !app.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(page(
                "Unauthorized client",
                "This application did not register the authorization_code grant: it signs in \
                 with a device code, not through this page.",
            ));
        }
        let (redirect, sent) = match params.redirect_uri.as_deref().filter(|s| !s.is_empty()) {
            Some(requested) if redirect_uri::matches(&app.redirect_uris, requested) => {
                (requested.to_owned(), true)
            }
            Some(_) => {
                return Err(page(
                    "Invalid redirect URI",
                    "The redirect_uri does not match any URI registered for this application, so \
                     Coder will not send you there.",
                ));
            }
            None => match app.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(page(
                        "Invalid request",
                        "This application registered several redirect URIs; the request must name one in redirect_uri.",
                    ));
                }
            },
        };
        Ok(TrustedClient {
            app,
            redirect_uri: redirect,
            redirect_uri_sent: sent,
            state: params.state.clone(),
        })
    }

    /// The registered client a UUID `client_id` names.
    /// The name of the client behind `client_id`, for the sign-in page an authorization request
    /// sends a visitor to: a registered application by its id, a client identified by a metadata
    /// document by its URL (the request stored it before redirecting; nothing is fetched here).
    /// `None` when the server does not know it.
    pub async fn client_name(&self, client_id: &str) -> Option<String> {
        let store = &self.inner.store;
        let app = if super::cimd::is_document_url(client_id) {
            let url = url::Url::parse(client_id).ok()?;
            store
                .get_oauth_app_by_metadata_url(url.as_str())
                .await
                .ok()??
        } else {
            let id = Uuid::parse_str(client_id).ok()?;
            store.get_oauth_app(ClientId(id)).await.ok()??
        };
        Some(app.name)
    }

    async fn registered_client(&self, raw_id: &str) -> Result<OAuthApp, AuthorizeFailure> {
        let unknown = || {
            page(
                "Unknown application",
                "This application is not registered with this Coder deployment. Ask its developer \
                 to register it again.",
            )
        };
        let id = Uuid::parse_str(raw_id).map_err(|_| unknown())?;
        self.inner
            .store
            .get_oauth_app(ClientId(id))
            .await
            .map_err(|e| {
                let err = OAuthError::from(e);
                if err.retry_after.is_some() {
                    return AuthorizeFailure::Unavailable(err);
                }
                page(
                    "Something went wrong",
                    format!("Try again later. ({})", err.description),
                )
            })?
            .ok_or_else(unknown)
    }

    /// Validates the rest of the request for a user with `user`'s role. Errors go back to the
    /// client with `state` and `iss` (RFC 6749 §4.1.2.1, RFC 9207).
    pub fn validate_authorization(
        &self,
        client: TrustedClient,
        params: &AuthorizeParams,
        user: &User,
    ) -> Result<ValidatedAuthorization, AuthorizeFailure> {
        let fail = |err: OAuthError| AuthorizeFailure::Redirect(self.error_redirect(&client, &err));
        if let Some(name) = params.repeated.first() {
            return Err(fail(OAuthError::invalid_request(format!(
                "the parameter {name} was sent more than once"
            ))));
        }
        match params.response_type.as_deref() {
            Some("code") => {}
            None | Some("") => {
                return Err(fail(OAuthError::invalid_request(
                    "response_type is required; use code",
                )));
            }
            Some(_) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )));
            }
        }
        if !client.app.response_types.iter().any(|t| t == "code") {
            return Err(fail(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client did not register the code response type",
            )));
        }
        let challenge = params.code_challenge.as_deref().unwrap_or_default();
        if challenge.is_empty() {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge is required: PKCE with S256 is mandatory (RFC 7636)",
            )));
        }
        if !pkce::is_valid_challenge(challenge) {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge must be 43-128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.2)",
            )));
        }
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )));
        }
        let audience = self
            .resources()
            .audience_for(params.resource.as_deref().filter(|r| !r.is_empty()))
            .map_err(|e| fail(OAuthError::invalid_target(e.0)))?;
        let scopes = negotiate(params.scope.as_deref(), &client.app.scope, user.role).ok_or_else(|| {
            fail(OAuthError::invalid_scope(format!(
                "none of the requested scopes can be granted to this user and client; supported scopes: {}",
                ScopeSet::all().to_wire()
            )))
        })?;
        Ok(ValidatedAuthorization {
            client,
            code_challenge: challenge.to_owned(),
            audience,
            scopes,
        })
    }

    /// The redirect that reports `err` to a trusted client.
    pub fn error_redirect(&self, client: &TrustedClient, err: &OAuthError) -> String {
        let mut params = vec![
            ("error", err.code.as_str()),
            ("error_description", err.description.as_str()),
        ];
        if let Some(state) = client.state.as_deref() {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer()));
        redirect_uri::append_query(&client.redirect_uri, &params)
    }

    /// The user said no (RFC 6749 §4.1.2.1 `access_denied`).
    pub async fn deny(&self, client: &TrustedClient, user: &User, ip: &str) -> String {
        self.inner
            .metrics
            .oauth_authorization(client.app.client_type, false);
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.consent.deny", "oauth2_provider_app", client.app.id)
                    .by(user.id)
                    .client(client.app.id)
                    .from_ip(ip),
            )
            .await;
        self.error_redirect(
            client,
            &OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
        )
    }

    /// The user said yes: issue a single-use code bound to the client, redirect URI, PKCE
    /// challenge, audience, scopes and user, and return the redirect carrying it.
    pub async fn approve(
        &self,
        request: &ValidatedAuthorization,
        user: &User,
        ip: &str,
    ) -> OAuthResult<String> {
        let now = self.inner.clock.now();
        let code = credentials::generate();
        let client = &request.client;
        self.inner
            .store
            .insert_auth_code(AuthorizationCode {
                id: Uuid::new_v4(),
                secret_prefix: code.prefix.clone(),
                hashed_secret: code.hashed_secret.clone(),
                app_id: client.app.id,
                user_id: user.id,
                grant_id: GrantId(Uuid::new_v4()),
                redirect_uri: client.redirect_uri.clone(),
                redirect_uri_sent: client.redirect_uri_sent,
                code_challenge: request.code_challenge.clone(),
                audience: request.audience.clone(),
                scope: request.scopes.to_wire(),
                expires_at: now + self.inner.policy.code_lifetime,
                used_at: None,
                created_at: now,
            })
            .await?;
        self.inner
            .metrics
            .oauth_authorization(client.app.client_type, true);
        self.inner
            .audit
            .record(
                AuditEvent::new("oauth2.consent.allow", "oauth2_provider_app", client.app.id)
                    .by(user.id)
                    .client(client.app.id)
                    .from_ip(ip)
                    .details(
                        json!({ "scope": request.scopes.to_wire(), "audience": request.audience }),
                    ),
            )
            .await;
        let mut params = vec![("code", code.full.expose())];
        if let Some(state) = client.state.as_deref() {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer()));
        Ok(redirect_uri::append_query(&client.redirect_uri, &params))
    }
}

#[cfg(test)]
mod tests {
    use super::AuthorizeParams;

    #[test]
    fn repeated_parameters_are_noticed_and_unknown_ones_ignored() {
        let params = AuthorizeParams::from_pairs([
            ("client_id", "a"),
            ("nonce", "x"),
            ("state", "s1"),
            ("state", "s2"),
        ]);
        assert_eq!(params.client_id.as_deref(), Some("a"));
        assert_eq!(params.repeated, vec!["state".to_string()]);
        assert_eq!(params.to_pairs().len(), 2);
    }
}

/// Property tests of the authorization and token request parameters: any pairs are read
/// without panicking, repeats are noticed (RFC 6749 §3.1), and a request without repeats is
/// carried through the login redirect and the consent form unchanged.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::oauth::client_auth::ClientForm;
    use crate::oauth::token::TokenRequest;
    use crate::proptest_support::{config, hostile_text};

    const NAMES: [&str; 12] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "resource",
        "grant_type",
        "code",
        "client_secret",
        "other",
    ];

    fn pairs() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        prop::collection::vec(
            (prop::sample::select(NAMES.to_vec()), hostile_text()),
            0..10,
        )
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn authorize_params_round_trip(pairs in pairs()) {
            let params = AuthorizeParams::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let again = AuthorizeParams::from_pairs(
                params.to_pairs().iter().map(|(k, v)| (*k, v.as_str())),
            );
            prop_assert!(again.repeated.is_empty());
            prop_assert_eq!(again.to_pairs(), params.to_pairs());
            let mut seen = std::collections::HashSet::new();
            let repeats = pairs
                .iter()
                .filter(|(k, _)| NAMES[..8].contains(k) && !seen.insert(*k))
                .count();
            prop_assert_eq!(params.repeated.len(), repeats);
        }

        #[test]
        fn token_requests_note_repeats(pairs in pairs()) {
            let req = TokenRequest::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let read = ["grant_type", "code", "redirect_uri", "scope", "resource", "client_id", "client_secret"];
            for name in read {
                let values: Vec<&String> = pairs.iter().filter(|(k, _)| *k == name).map(|(_, v)| v).collect();
                // RFC 6749 §3.1: a parameter without a value is treated as omitted, so only
                // repeats with values are certain to be refused.
                if values.len() >= 2 && values.iter().all(|v| !v.is_empty()) {
                    prop_assert!(req.repeated.iter().any(|r| r == name), "{name}");
                }
                if values.len() <= 1 {
                    prop_assert!(!req.repeated.iter().any(|r| r == name), "{name}");
                }
            }
        }
    }
}
