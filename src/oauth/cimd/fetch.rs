//! Fetching a Client ID Metadata Document with SSRF defences: `https` only, every resolved
//! address checked and only checked addresses connected to (no second resolution, so DNS
//! rebinding cannot swap in an internal address), no redirects, no proxies, a size cap read
//! incrementally, and connect and total timeouts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use url::{Host, Url};

use super::address;

/// The largest document read; a metadata document is a few hundred bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;

/// How the fetcher may reach documents.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub connect_timeout: Duration,
    /// From the start of the connection to the last byte of the body.
    pub total_timeout: Duration,
    /// **Test-only** (see `config::CimdTestTrust`): PEM certificates trusted besides the
    /// public roots.
    pub extra_roots_pem: Vec<String>,
    /// **Test-only**: allow loopback addresses.
    pub allow_loopback: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(5),
            extra_roots_pem: Vec::new(),
            allow_loopback: false,
        }
    }
}

/// Why a document could not be fetched. The messages name what went wrong, never what the
/// server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("its host resolves to a non-public address ({0}), which Coder never connects to")]
    NonPublicAddress(IpAddr),
    #[error("its host could not be resolved")]
    Unresolvable,
    #[error("the connection failed")]
    Connect,
    #[error("it did not answer within {0} seconds")]
    Timeout(u64),
    #[error("it answered with a redirect (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    #[error("it answered HTTP {0} instead of 200")]
    Status(u16),
    #[error("the document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the response could not be read")]
    Read,
}

/// A fetched document: its bytes and the response headers that govern caching.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

/// The HTTP client for metadata documents.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: AddressPolicy,
    total_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
struct AddressPolicy {
    allow_loopback: bool,
}

impl AddressPolicy {
    fn check(self, ip: IpAddr) -> Result<(), FetchError> {
        if address::is_public(ip) || (self.allow_loopback && ip.is_loopback()) {
            Ok(())
        } else {
            Err(FetchError::NonPublicAddress(ip))
        }
    }
}

/// Resolves names for the client and refuses the whole answer if any address is not public:
/// the client connects only to the addresses returned here.
#[derive(Debug)]
struct CheckedResolver {
    policy: AddressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| boxed(FetchError::Unresolvable))?
                .collect();
            if found.is_empty() {
                return Err(boxed(FetchError::Unresolvable));
            }
            for addr in &found {
                policy.check(addr.ip()).map_err(boxed)?;
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

fn boxed(err: FetchError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(err)
}

impl Fetcher {
    pub fn new(settings: &FetchSettings) -> anyhow::Result<Fetcher> {
        let policy = AddressPolicy {
            allow_loopback: settings.allow_loopback,
        };
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on its own, past the address checks.
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .user_agent(concat!("coderd/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver { policy }));
        for pem in &settings.extra_roots_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
        }
        Ok(Fetcher {
            client: builder.build()?,
            policy,
            total_timeout: settings.total_timeout,
        })
    }

    /// GETs `url` (already checked to be an https URL with a host).
    pub async fn fetch(&self, url: &Url) -> Result<Fetched, FetchError> {
        // An address literal is connected to without the resolver, so it is checked here.
        match url.host() {
            Some(Host::Ipv4(ip)) => self.policy.check(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.policy.check(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
            None => return Err(FetchError::Unresolvable),
        }
        let secs = self.total_timeout.as_secs().max(1);
        // Belt and braces around the client's own total timeout.
        match tokio::time::timeout(self.total_timeout, self.get(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(secs)),
        }
    }

    async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let secs = self.total_timeout.as_secs().max(1);
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| classify(&e, secs))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, secs))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, headers })
    }
}

/// The fetch error a client error stands for, looking through its causes for the resolver's.
fn classify(err: &reqwest::Error, secs: u64) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<FetchError>() {
            return ours.clone();
        }
        source = e.source();
    }
    if err.is_timeout() {
        FetchError::Timeout(secs)
    } else if err.is_connect() {
        FetchError::Connect
    } else {
        FetchError::Read
    }
}
