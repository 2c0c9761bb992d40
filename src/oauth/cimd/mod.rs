//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP
//! authorization spec's preferred client identification): a `client_id` that is an https URL
//! names a JSON document of client metadata, which the server fetches, checks, caches and
//! keeps a client row for.

pub mod address;
pub mod assertion;
mod cache;
pub mod fetch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use url::Url;
use uuid::Uuid;

use super::registrar::{ClientKeys, ClientMetadata, Door, ValidMetadata, validate_for};
use super::{OAuthError, OAuthResult, OAuthServer};
use crate::audit::AuditEvent;
use crate::clock::SharedClock;
use crate::domain::oauth::{
    CIMD_HOSTS_SETTING, CIMD_POLICY_SETTING, CimdPolicy, cimd_hosts_from_stored,
};
use crate::domain::{ClientId, OAuthApp};
use crate::ratelimit::RateLimiter;

pub use cache::{MAX_LIFETIME, MIN_LIFETIME};
pub use fetch::{FetchError, FetchSettings, Fetcher, MAX_DOCUMENT_BYTES};

/// Fetches of documents on one host per minute; cached documents cost nothing.
pub const FETCHES_PER_HOST_PER_MINUTE: u32 = 10;
/// Longest document URL accepted.
const MAX_URL_LEN: usize = 2048;

/// Whether `client_id` names a metadata document rather than a registered client.
pub fn is_document_url(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// A document that was fetched and validated.
#[derive(Debug, Clone)]
pub struct Document {
    pub(in crate::oauth) metadata: ValidMetadata,
}

/// The fetcher and its cache, present while the server accepts metadata documents.
#[derive(Debug)]
pub struct Documents {
    fetcher: Fetcher,
    clock: SharedClock,
    cache: Mutex<cache::Cache<Document>>,
    /// JWK Sets published at a document's `jwks_uri`, cached the same way.
    key_sets: Mutex<cache::Cache<serde_json::Value>>,
    /// One fetch per URL at a time: later callers wait for the first and use its result.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    per_host: RateLimiter,
}

impl Documents {
    pub fn new(fetcher: Fetcher, clock: SharedClock) -> Documents {
        Documents {
            per_host: RateLimiter::new(
                FETCHES_PER_HOST_PER_MINUTE,
                Duration::minutes(1),
                clock.clone(),
            ),
            fetcher,
            clock,
            cache: Mutex::new(cache::Cache::new()),
            key_sets: Mutex::new(cache::Cache::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, url: &str, now: DateTime<Utc>) -> Option<Document> {
        self.cache.lock().ok()?.get(url, now)
    }

    /// The document at `url`: from the cache while fresh, else fetched (once at a time per URL,
    /// within the host's rate limit) and validated. The bool says whether it was fetched now.
    async fn get(&self, url: &Url) -> Result<(Document, bool), String> {
        let key = url.as_str();
        if let Some(doc) = self.cached(key, self.clock.now()) {
            return Ok((doc, false));
        }
        let gate = {
            let mut inflight = self
                .inflight
                .lock()
                .map_err(|_| "internal error".to_owned())?;
            inflight.entry(key.to_owned()).or_default().clone()
        };
        let _turn = gate.lock().await;
        let result = match self.cached(key, self.clock.now()) {
            Some(doc) => Ok((doc, false)),
            None => self.fetch(url).await.map(|doc| (doc, true)),
        };
        if let Ok(mut inflight) = self.inflight.lock() {
            inflight.remove(key);
        }
        result
    }

    /// The JWK Set at `url` (a document's `jwks_uri`), with the same defences and cache.
    async fn key_set(&self, url: &Url) -> Result<serde_json::Value, String> {
        let now = self.clock.now();
        if let Some(keys) = self
            .key_sets
            .lock()
            .ok()
            .and_then(|c| c.get(url.as_str(), now))
        {
            return Ok(keys);
        }
        let fetched = self.fetch_limited(url).await?;
        let keys: serde_json::Value = serde_json::from_slice(&fetched.body)
            .ok()
            .filter(|v: &serde_json::Value| v.get("keys").is_some_and(serde_json::Value::is_array))
            .ok_or("the jwks_uri did not return a JWK Set")?;
        let until = now + cache::lifetime(&fetched.headers, now);
        if let Ok(mut cache) = self.key_sets.lock() {
            cache.insert(url.as_str().to_owned(), keys.clone(), until, now);
        }
        Ok(keys)
    }

    /// One fetch, counted against its host's rate limit.
    async fn fetch_limited(&self, url: &Url) -> Result<fetch::Fetched, String> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        self.per_host.check(&host).map_err(|r| {
            format!(
                "too many documents were fetched from {host} recently; try again in {} seconds",
                r.0
            )
        })?;
        self.fetcher.fetch(url).await.map_err(|e| e.to_string())
    }

    async fn fetch(&self, url: &Url) -> Result<Document, String> {
        let fetched = self.fetch_limited(url).await?;
        let now = self.clock.now();
        let doc = parse_document(url, &fetched.body)?;
        let until = now + cache::lifetime(&fetched.headers, now);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(url.as_str().to_owned(), doc.clone(), until, now);
        }
        Ok(doc)
    }
}

/// Checks a fetched body: a JSON object of client metadata whose `client_id` is exactly the URL
/// it was fetched from (CIMD §4.1), valid as registration metadata for such a client. Errors
/// describe the problem without quoting the body.
fn parse_document(url: &Url, body: &[u8]) -> Result<Document, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or("the document is not a JSON object")?;
    if value.get("client_id").and_then(|v| v.as_str()) != Some(url.as_str()) {
        return Err(
            "the document's client_id is not exactly the URL it was fetched from".to_owned(),
        );
    }
    let meta: ClientMetadata = serde_json::from_value(value)
        .map_err(|_| "the document's fields do not have the types client metadata needs")?;
    let metadata = validate_for(meta, Door::MetadataDocument).map_err(|e| {
        format!(
            "the document is not valid client metadata: {}",
            e.description
        )
    })?;
    Ok(Document { metadata })
}

/// Checks the form of a document URL (CIMD §3): https, a path, no fragment, no credentials, no
/// dot segments, and written exactly as the parsed URL (so exact matching is meaningful).
pub fn document_url(client_id: &str) -> Result<Url, String> {
    if client_id.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    let url = Url::parse(client_id).map_err(|_| "it is not a valid URL".to_owned())?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err("it must be an https URL with a host".to_owned());
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("it must not contain a fragment or credentials".to_owned());
    }
    if url.path() == "/" {
        return Err("it must have a path".to_owned());
    }
    let raw_path = client_id
        .splitn(4, '/')
        .nth(3)
        .unwrap_or_default()
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    if raw_path.split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase();
        matches!(
            seg.as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        )
    }) {
        return Err("it must not contain . or .. path segments".to_owned());
    }
    if url.as_str() != client_id {
        return Err(
            "it must be written in its normal form (lowercase scheme and host, no default port)"
                .to_owned(),
        );
    }
    Ok(url)
}

/// Why a metadata-document client was refused; shown on the authorization error page and in
/// `invalid_client` errors, always naming the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRefused {
    pub url: String,
    pub reason: String,
    /// The database could not be reached: the same request may work shortly.
    pub unavailable: Option<OAuthError>,
}

impl DocumentRefused {
    fn new(url: &str, reason: impl Into<String>) -> Self {
        DocumentRefused {
            url: url.to_owned(),
            reason: reason.into(),
            unavailable: None,
        }
    }

    pub fn message(&self) -> String {
        format!(
            "Coder cannot use the client metadata document at {}: {}.",
            self.url, self.reason
        )
    }
}

/// The owners' policy for metadata-document clients, and the hosts it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySetting {
    pub policy: CimdPolicy,
    pub hosts: Vec<String>,
}

impl OAuthServer {
    /// The stored client for a metadata-document URL, without fetching anything.
    pub async fn metadata_document_app_id(&self, url: &str) -> OAuthResult<Option<ClientId>> {
        Ok(self
            .inner
            .store
            .get_oauth_app_by_metadata_url(url)
            .await?
            .map(|app| app.id))
    }

    /// Whether the server flag lets metadata documents be accepted (owners may still say none).
    pub fn metadata_documents_available(&self) -> bool {
        self.inner.documents.is_some()
    }

    /// Whether metadata documents are accepted at all: the server flag and the owners' policy.
    pub async fn metadata_documents_enabled(&self) -> OAuthResult<bool> {
        if self.inner.documents.is_none() {
            return Ok(false);
        }
        Ok(self.metadata_document_policy().await?.policy != CimdPolicy::None)
    }

    pub async fn metadata_document_policy(&self) -> OAuthResult<PolicySetting> {
        let store = &self.inner.store;
        let policy = store.get_site_config(CIMD_POLICY_SETTING).await?;
        let hosts = store.get_site_config(CIMD_HOSTS_SETTING).await?;
        Ok(PolicySetting {
            policy: CimdPolicy::from_stored(policy.as_deref()),
            hosts: cimd_hosts_from_stored(hosts.as_deref()),
        })
    }

    /// The client a metadata-document `client_id` names: the server accepts such clients, the
    /// owners' policy allows its host, the document is fetched (or cached) and valid, and the
    /// client's row is stored or refreshed from it. `ip` is for the audit log.
    pub async fn metadata_document_client(
        &self,
        client_id: &str,
        ip: &str,
    ) -> Result<(OAuthApp, Document), DocumentRefused> {
        let refused = |reason: &str| DocumentRefused::new(client_id, reason);
        let Some(documents) = self.inner.documents.as_ref() else {
            return Err(refused(
                "this deployment does not accept clients identified by a metadata document",
            ));
        };
        let setting = self
            .metadata_document_policy()
            .await
            .map_err(|e| unavailable(client_id, e))?;
        let url = document_url(client_id).map_err(|r| refused(&r))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        match setting.policy {
            CimdPolicy::None => {
                return Err(refused(
                    "an owner turned off clients identified by a metadata document",
                ));
            }
            CimdPolicy::ListedHosts if !setting.hosts.contains(&host) => {
                return Err(refused(&format!(
                    "an owner allows metadata documents only from listed hosts, and {host} is not one"
                )));
            }
            _ => {}
        }
        let (doc, fetched) = documents.get(&url).await.map_err(|r| refused(&r))?;
        let app = self
            .store_document_client(&url, &doc, fetched, ip)
            .await
            .map_err(|e| unavailable(client_id, e))?;
        Ok((app, doc))
    }

    /// The client's row, inserted or refreshed when the document was just fetched or differs.
    async fn store_document_client(
        &self,
        url: &Url,
        doc: &Document,
        fetched: bool,
        ip: &str,
    ) -> OAuthResult<OAuthApp> {
        let store = &self.inner.store;
        let existing = store.get_oauth_app_by_metadata_url(url.as_str()).await?;
        let now = self.inner.clock.now();
        let wanted = document_app(url, &doc.metadata, now);
        if let Some(app) = &existing
            && !fetched
            && same_metadata(app, &wanted)
        {
            return Ok(app.clone());
        }
        let stored = store.upsert_metadata_document_app(wanted).await?;
        if existing.is_none() {
            self.inner
                .audit
                .record(
                    AuditEvent::new(
                        "oauth2.client.metadata_document",
                        "oauth2_provider_app",
                        stored.id,
                    )
                    .client(stored.id)
                    .from_ip(ip)
                    .details(serde_json::json!({
                        "client_id": url.as_str(),
                        "client_name": stored.name,
                        "token_endpoint_auth_method": stored.token_endpoint_auth_method.as_str(),
                    })),
                )
                .await;
        }
        Ok(stored)
    }
}

impl OAuthServer {
    /// The JWK Set a `private_key_jwt` client publishes, inline or at its `jwks_uri`.
    pub(in crate::oauth) async fn client_key_set(
        &self,
        client_id: &str,
        doc: &Document,
    ) -> Result<serde_json::Value, DocumentRefused> {
        match (&doc.metadata.keys, self.inner.documents.as_ref()) {
            (ClientKeys::Inline(keys), _) => Ok(keys.clone()),
            (ClientKeys::Uri(url), Some(documents)) => documents
                .key_set(url)
                .await
                .map_err(|r| DocumentRefused::new(client_id, format!("its jwks_uri: {r}"))),
            _ => Err(DocumentRefused::new(client_id, "it publishes no keys")),
        }
    }
}

fn unavailable(client_id: &str, err: OAuthError) -> DocumentRefused {
    DocumentRefused {
        url: client_id.to_owned(),
        reason: "the database is unavailable; try again shortly".to_owned(),
        unavailable: Some(err),
    }
}

/// The client row a document describes.
fn document_app(url: &Url, meta: &ValidMetadata, now: DateTime<Utc>) -> OAuthApp {
    OAuthApp {
        id: ClientId(Uuid::new_v4()),
        name: meta.name.clone(),
        icon: meta.logo_uri.clone(),
        redirect_uris: meta.redirect_uris.clone(),
        client_type: meta.method.client_type(),
        token_endpoint_auth_method: meta.method,
        grant_types: meta.grant_types.clone(),
        response_types: meta.response_types.clone(),
        scope: meta.scope.clone(),
        dynamically_registered: false,
        client_uri: meta.client_uri.clone(),
        logo_uri: meta.logo_uri.clone(),
        tos_uri: meta.tos_uri.clone(),
        policy_uri: meta.policy_uri.clone(),
        contacts: meta.contacts.clone(),
        software_id: meta.software_id.clone(),
        software_version: meta.software_version.clone(),
        registration_access_token_hash: None,
        metadata_document_url: Some(url.as_str().to_owned()),
        client_id_issued_at: now,
        last_used_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// Whether the stored row already says what the document says.
fn same_metadata(stored: &OAuthApp, wanted: &OAuthApp) -> bool {
    OAuthApp {
        id: stored.id,
        client_id_issued_at: stored.client_id_issued_at,
        last_used_at: stored.last_used_at,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        ..wanted.clone()
    } == *stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls_follow_the_draft() {
        for good in [
            "https://claude.ai/oauth/claude-code-client-metadata",
            "https://vscode.dev/oauth/client-metadata.json",
            "https://example.com:8443/a/b?v=1",
        ] {
            assert_eq!(
                document_url(good).map(|u| u.to_string()).ok().as_deref(),
                Some(good)
            );
        }
        for bad in [
            "http://example.com/m",
            "https://example.com",
            "https://example.com/",
            "https://example.com/m#f",
            "https://u:p@example.com/m",
            "https://example.com/a/../m",
            "https://example.com/a/./m",
            "https://example.com/a/%2E%2E/m",
            "https://EXAMPLE.com/m",
            "https://example.com:443/m",
            "https:///m",
        ] {
            assert!(document_url(bad).is_err(), "{bad} must be refused");
        }
        assert!(is_document_url("https://x.io/m") && is_document_url("HTTPS://x.io/m"));
        assert!(!is_document_url("0b7d1c2e-0000-4000-8000-000000000000"));
    }

    fn parsed(url: &str, body: serde_json::Value) -> Result<Document, String> {
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        parse_document(&url, body.to_string().as_bytes())
    }

    #[test]
    fn documents_are_validated_as_client_metadata() {
        let url = "https://app.example/meta.json";
        let ok = parsed(
            url,
            serde_json::json!({"client_id": url, "client_name": "App",
                "redirect_uris": ["http://127.0.0.1/cb"]}),
        );
        assert!(ok.is_ok_and(|d| d.metadata.method == crate::domain::TokenAuthMethod::None));
        let refused = |body: serde_json::Value| parsed(url, body).err().unwrap_or_default();
        assert!(refused(serde_json::json!([1])).contains("not a JSON object"));
        assert!(
            refused(serde_json::json!({"client_id": "https://app.example/other",
                "redirect_uris": ["http://127.0.0.1/cb"]}))
            .contains("client_id")
        );
        assert!(
            refused(
                serde_json::json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"],
                "token_endpoint_auth_method": "client_secret_post"})
            )
            .contains("client_secret")
        );
        assert!(
            refused(
                serde_json::json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"],
                "token_endpoint_auth_method": "client_secret_basic"})
            )
            .contains("client_secret")
        );
        assert!(
            refused(
                serde_json::json!({"client_id": url, "redirect_uris": ["http://127.0.0.1/cb"],
                "token_endpoint_auth_method": "private_key_jwt"})
            )
            .contains("jwks")
        );
        assert!(
            refused(
                serde_json::json!({"client_id": url, "redirect_uris": ["javascript:alert(1)"]})
            )
            .contains("redirect")
        );
        assert!(
            refused(serde_json::json!({"client_id": url, "redirect_uris": []}))
                .contains("redirect_uris")
        );
        assert!(
            refused(
                serde_json::json!({"client_id": url, "redirect_uris": "secret-internal-value"})
            )
            .contains("types")
        );
        assert!(
            !refused(
                serde_json::json!({"client_id": url, "redirect_uris": "secret-internal-value"})
            )
            .contains("secret-internal-value")
        );
        let keyed = parsed(
            url,
            serde_json::json!({"client_id": url, "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": []}}),
        );
        assert!(keyed.is_ok());
    }
}
