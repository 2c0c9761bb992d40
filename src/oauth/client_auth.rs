//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3): HTTP Basic
//! (`client_secret_basic`), form fields (`client_secret_post`), or none for public clients.

use uuid::Uuid;

use chrono::Duration;

use super::cimd::assertion;
use super::{OAuthError, OAuthResult, OAuthServer};
use crate::domain::credentials;
use crate::domain::{AppSecret, ClientId, ClientType, OAuthApp, TokenAuthMethod};
use crate::secret;

/// What a request presented to identify its client.
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already URL-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    pub body_client_id: Option<String>,
    pub body_client_secret: Option<String>,
    /// A `client_secret` in the URL query, which is never accepted.
    pub secret_in_query: bool,
    /// `client_assertion_type` and `client_assertion` (RFC 7521 §4.2, RFC 7523 §2.2).
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

/// The form parameters that identify and authenticate a client (RFC 6749 §2.3.1, RFC 7523 §2.2).
const CLIENT_PARAMS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
];

impl ClientCredentials {
    fn form_slot(&mut self, key: &str) -> Option<&mut Option<String>> {
        match key {
            "client_id" => Some(&mut self.body_client_id),
            "client_secret" => Some(&mut self.body_client_secret),
            "client_assertion_type" => Some(&mut self.assertion_type),
            "client_assertion" => Some(&mut self.assertion),
            _ => None,
        }
    }
}

/// RFC 6749 §3.1, §3.2: request parameters must not be included more than once.
pub fn refuse_repeated(repeated: &[String]) -> OAuthResult<()> {
    match repeated.first() {
        Some(name) => Err(OAuthError::invalid_request(format!(
            "the parameter {name} was sent more than once"
        ))),
        None => Ok(()),
    }
}

/// A client's form request to an endpoint that authenticates clients (the token endpoint, the
/// device authorization endpoint): how it is read, and which grant it is for. The reading, the
/// checks and the client authentication are one step, `OAuthServer::authenticated_request`.
pub trait ClientForm: Default {
    /// Where a parameter of this request (besides the client's) goes; `None` ignores it.
    fn slot(&mut self, key: &str) -> Option<&mut Option<String>>;
    fn client_mut(&mut self) -> &mut ClientCredentials;
    fn client(&self) -> &ClientCredentials;
    /// Names of parameters sent more than once.
    fn repeated(&self) -> &[String];
    fn set_repeated(&mut self, repeated: Vec<String>);
    /// The grant type the client must have registered to make this request.
    fn grant_type(&self) -> OAuthResult<&str>;

    fn refuse_repeated(&self) -> OAuthResult<()> {
        refuse_repeated(self.repeated())
    }

    /// Reads the form body: unknown parameters are ignored, empty ones count as absent, and
    /// `client_id` and `client_secret` go to the client credentials.
    fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut req = Self::default();
        let mut repeated = Vec::new();
        for (key, value) in pairs {
            let slot = if CLIENT_PARAMS.contains(&key) {
                req.client_mut().form_slot(key)
            } else {
                req.slot(key)
            };
            let Some(slot) = slot else { continue };
            if slot.is_some() {
                repeated.push(key.to_owned());
            }
            *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        req.set_repeated(repeated);
        req
    }
}

#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub app: OAuthApp,
    /// The secret the client proved, for confidential clients.
    pub secret_id: Option<Uuid>,
}

/// How stale a client's or a secret's `last_used_at` may get before a use writes it again. It is
/// shown to owners and users as "last used", to the minute at best; writing it on every token
/// request was two of the three write transactions of a refresh (docs/benchmarks.md). The first
/// use is always written: an unused dynamically registered client is one never used.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

/// Whether a use at `now` should record itself over `last_used_at`.
pub(super) fn last_use_is_stale(
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    last_used_at.is_none_or(|last| now - last >= LAST_USED_RESOLUTION || last > now)
}

fn auth_failed(detail: &str) -> OAuthError {
    OAuthError::invalid_client(format!("Client authentication failed: {detail}"))
}

impl OAuthServer {
    /// What the token and device authorization endpoints do before their own work: count the
    /// caller's IP (before reading anything, so unreadable requests count too), refuse an
    /// unreadable request or repeated parameters, authenticate the client, count it, and check
    /// it registered the grant type the request is for (RFC 6749 §5.2 `unauthorized_client`).
    pub(super) async fn authenticated_request<T: ClientForm>(
        &self,
        endpoint: &'static str,
        read: OAuthResult<T>,
        ip: &str,
    ) -> OAuthResult<(T, AuthenticatedClient)> {
        self.check_ip_limit(endpoint, ip)?;
        let req = read?;
        req.refuse_repeated()?;
        let grant_type = req.grant_type()?;
        let client = self.authenticate_client(req.client(), ip).await?;
        self.check_authenticated_client_limit(endpoint, &client, ip)?;
        if !client.app.grant_types.iter().any(|g| g == grant_type) {
            return Err(OAuthError::new(
                super::ErrorCode::UnauthorizedClient,
                format!("this client did not register the {grant_type} grant type"),
            ));
        }
        Ok((req, client))
    }

    /// `ip` is the request's client address: a metadata-document client seen here for the first
    /// time is recorded in the audit log with it, as on the authorization endpoint.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
        ip: &str,
    ) -> OAuthResult<AuthenticatedClient> {
        if creds.secret_in_query {
            return Err(OAuthError::invalid_request(
                "client_secret must not be sent in the URL; use HTTP Basic or the form body",
            ));
        }
        if creds.assertion.is_some() || creds.assertion_type.is_some() {
            return self.authenticate_with_assertion(creds, ip).await;
        }
        if creds.basic.is_some() && creds.body_client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or client_secret in the body, not both",
            ));
        }
        let basic_id = creds.basic.as_ref().map(|(id, _)| id.as_str());
        let client_id = match (basic_id, creds.body_client_id.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => {
                return Err(auth_failed(
                    "send client_id (and client_secret for confidential clients)",
                ));
            }
        };
        if super::cimd::is_document_url(client_id) {
            return self
                .authenticate_document_client(client_id, creds, ip)
                .await;
        }
        let (presented, method) = match (&creds.basic, &creds.body_client_secret) {
            (Some((_, secret)), _) => (Some(secret.as_str()), TokenAuthMethod::ClientSecretBasic),
            (None, Some(secret)) => (Some(secret.as_str()), TokenAuthMethod::ClientSecretPost),
            (None, None) => (None, TokenAuthMethod::None),
        };
        // The client and the secret it presents are read in one query (a token request's
        // round trips are most of its cost, docs/benchmarks.md); the checks below still run in
        // their order, on what it read.
        let parsed = presented.and_then(credentials::parse);
        let (app, stored) = match Uuid::parse_str(client_id) {
            Ok(id) => {
                self.inner
                    .store
                    .get_oauth_app_with_secret(ClientId(id), parsed.as_ref().map(|p| p.prefix))
                    .await?
            }
            Err(_) => None,
        }
        .ok_or_else(|| auth_failed("unknown client_id; register the client again"))?;
        match app.client_type {
            ClientType::Public => {
                if presented.is_some() {
                    return Err(auth_failed(
                        "this is a public client and must not send a client secret",
                    ));
                }
                Ok(AuthenticatedClient {
                    app,
                    secret_id: None,
                })
            }
            ClientType::Confidential => {
                if presented.is_none() {
                    return Err(auth_failed(
                        "this confidential client must send its client_secret",
                    ));
                }
                // A dynamically registered client uses the method it registered (RFC 7591 §2);
                // owner-created apps may use either secret method.
                if app.dynamically_registered && method != app.token_endpoint_auth_method {
                    return Err(auth_failed(&format!(
                        "this client registered token_endpoint_auth_method {}",
                        app.token_endpoint_auth_method.as_str()
                    )));
                }
                let secret_id = self.verify_client_secret(&app, parsed, stored).await?;
                Ok(AuthenticatedClient {
                    app,
                    secret_id: Some(secret_id),
                })
            }
        }
    }

    /// A client identified by a metadata document: public (`none`, PKCE is its proof), or
    /// `private_key_jwt`. It has no secret, so one presented is refused.
    async fn authenticate_document_client(
        &self,
        client_id: &str,
        creds: &ClientCredentials,
        ip: &str,
    ) -> OAuthResult<AuthenticatedClient> {
        let (app, _doc) =
            self.metadata_document_client(client_id, ip)
                .await
                .map_err(|refused| match refused.unavailable {
                    Some(err) => err,
                    None => auth_failed(&refused.message()),
                })?;
        if creds.basic.is_some() || creds.body_client_secret.is_some() {
            return Err(auth_failed(
                "a client identified by a metadata document has no client secret; send none",
            ));
        }
        match app.token_endpoint_auth_method {
            TokenAuthMethod::None => Ok(AuthenticatedClient {
                app,
                secret_id: None,
            }),
            _ => Err(auth_failed(
                "this client's metadata document asks for private_key_jwt; send a client_assertion",
            )),
        }
    }

    /// RFC 7523 §2.2 `private_key_jwt`, for clients whose metadata document publishes keys.
    async fn authenticate_with_assertion(
        &self,
        creds: &ClientCredentials,
        ip: &str,
    ) -> OAuthResult<AuthenticatedClient> {
        if creds.assertion_type.as_deref() != Some(assertion::ASSERTION_TYPE) {
            return Err(auth_failed(&format!(
                "client_assertion_type must be {}",
                assertion::ASSERTION_TYPE
            )));
        }
        let Some(jwt) = creds.assertion.as_deref() else {
            return Err(auth_failed("client_assertion is missing"));
        };
        if creds.basic.is_some() || creds.body_client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: a client_assertion or a client secret, not both",
            ));
        }
        let client_id = match (&creds.body_client_id, assertion::claimed_issuer(jwt)) {
            (Some(id), _) => id.clone(),
            (None, Some(iss)) => iss,
            (None, None) => return Err(auth_failed("the client_assertion names no issuer")),
        };
        if !super::cimd::is_document_url(&client_id) {
            return Err(auth_failed(
                "private_key_jwt is accepted only from clients identified by a metadata document",
            ));
        }
        let refused = |r: super::cimd::DocumentRefused| match r.unavailable {
            Some(err) => err,
            None => auth_failed(&r.message()),
        };
        let (app, doc) = self
            .metadata_document_client(&client_id, ip)
            .await
            .map_err(refused)?;
        if app.token_endpoint_auth_method != TokenAuthMethod::PrivateKeyJwt {
            return Err(auth_failed(
                "this client's metadata document does not ask for private_key_jwt",
            ));
        }
        let keys = self
            .client_key_set(&client_id, &doc)
            .await
            .map_err(refused)?;
        let issuer = self.issuer();
        let audiences = [
            format!("{issuer}/oauth2/tokens"),
            format!("{issuer}/oauth2/token"),
            issuer.to_owned(),
        ];
        let now = self.inner.clock.now();
        let verified = assertion::verify(jwt, &client_id, &keys, &audiences, now)
            .map_err(|e| auth_failed(&e))?;
        // RFC 7523 §3 item 7: one use per jti, on every replica (the store is shared).
        let key = secret::sha256_hex(format!("{client_id}\n{}", verified.jti).as_bytes());
        let first_use = self
            .inner
            .store
            .record_assertion_jti(&key, verified.expires_at + Duration::minutes(2), now)
            .await?;
        if !first_use {
            return Err(auth_failed(
                "this client_assertion was already used (its jti)",
            ));
        }
        Ok(AuthenticatedClient {
            app,
            secret_id: None,
        })
    }

    /// `presented` is the secret the client sent, parsed (`None` if malformed); `stored` the
    /// app's secret with its prefix, if any.
    async fn verify_client_secret(
        &self,
        app: &OAuthApp,
        presented: Option<credentials::Presented<'_>>,
        stored: Option<AppSecret>,
    ) -> OAuthResult<Uuid> {
        let wrong = || auth_failed("the client secret is wrong");
        let presented = presented.ok_or_else(wrong)?;
        let stored = stored
            .filter(|s| s.app_id == app.id && presented.matches(&s.hashed_secret))
            .ok_or_else(wrong)?;
        let now = self.inner.clock.now();
        if last_use_is_stale(stored.last_used_at, now) {
            self.inner.store.touch_app_secret(stored.id, now).await?;
        }
        Ok(stored.id)
    }
}
