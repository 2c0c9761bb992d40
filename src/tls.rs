//! HTTPS: the certificates (chosen by the client's SNI, reloaded on SIGHUP or when their files
//! change) and the listener that terminates TLS in front of the router.
//!
//! A reload swaps the certificate set that new handshakes read; connections already open keep
//! theirs, so renewing a certificate drops nothing. A certificate or key that does not load
//! (half-written by a renewal, say) is reported and the previous set stays in use.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{TlsConfig, TlsVersion};

/// How often the certificate files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPT_QUEUE: usize = 256;

/// What a file looked like when it was read: a renewal changes one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Follows symlinks, so a swapped link target (Kubernetes secrets) counts as a change.
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// The certificate chains and keys to serve; the first is served when no other matches.
#[derive(Debug)]
pub struct Certificates {
    pairs: Vec<(PathBuf, PathBuf)>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    loaded: RwLock<Arc<Vec<Arc<CertifiedKey>>>>,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

impl Certificates {
    /// Reads every pair; an error names the file and what is wrong with it.
    pub fn load(pairs: &[(PathBuf, PathBuf)]) -> anyhow::Result<Arc<Certificates>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = stamps(pairs);
        let keys = read_all(pairs, &provider)?;
        Ok(Arc::new(Certificates {
            pairs: pairs.to_vec(),
            provider,
            loaded: RwLock::new(Arc::new(keys)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Reads the files again and serves them from the next handshake on.
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamps = stamps(&self.pairs);
        let keys = read_all(&self.pairs, &self.provider)?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        Ok(())
    }

    fn changed(&self) -> bool {
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) != stamps(&self.pairs)
    }

    fn current(&self) -> Arc<Vec<Arc<CertifiedKey>>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads on each SIGHUP `hangups` receives and whenever a file changes, until dropped.
    /// `hangups` is made (with `hangups()`) when the listener is bound, so a SIGHUP sent once the
    /// server is up is never left to its default action, which ends the process.
    pub async fn watch(self: Arc<Self>, mut hangups: Option<tokio::signal::unix::Signal>) {
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            let why = tokio::select! {
                _ = async {
                    match hangups.as_mut() {
                        Some(h) => { h.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => "SIGHUP",
                _ = tick.tick() => {
                    if !self.changed() {
                        continue;
                    }
                    "the files changed"
                }
            };
            match self.reload() {
                Ok(()) => tracing::info!(reason = why, "reloaded the TLS certificates"),
                Err(err) => {
                    // Not again for the same files: wait for them to change once more.
                    *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps(&self.pairs);
                    tracing::error!(reason = why, error = %format!("{err:#}"), "could not reload the TLS certificates; still serving the previous ones");
                }
            }
        }
    }
}

/// A SIGHUP listener (installed now), for `Certificates::watch`.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; certificates reload only when their files change");
            None
        }
    }
}

fn stamps(pairs: &[(PathBuf, PathBuf)]) -> Vec<Option<Stamp>> {
    pairs
        .iter()
        .flat_map(|(cert, key)| [stamp(cert), stamp(key)])
        .collect()
}

fn read_all(
    pairs: &[(PathBuf, PathBuf)],
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<Vec<Arc<CertifiedKey>>> {
    pairs
        .iter()
        .map(|(cert, key)| read_pair(cert, key, provider).map(Arc::new))
        .collect()
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("cannot read the TLS certificate {}", cert_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{} is not a PEM certificate chain", cert_path.display()))?;
    if chain.is_empty() {
        bail!(
            "{} holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            cert_path.display()
        );
    }
    let key_pem = std::fs::read(key_path)
        .with_context(|| format!("cannot read the TLS key {}", key_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
                key_path.display()
            )
        })?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the key {} does not belong to the certificate {}, or is of an unsupported type",
            key_path.display(),
            cert_path.display()
        )
    })
}

impl ResolvesServerCert for Certificates {
    /// The first certificate valid for the name the client asked for (RFC 6066 §3), else the
    /// first one.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = self.current();
        if let Some(name) = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok())
        {
            let matching = keys.iter().find(|key| {
                key.end_entity_cert().ok().is_some_and(|der| {
                    webpki::EndEntityCert::try_from(der)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
                })
            });
            if let Some(key) = matching {
                return Some(key.clone());
            }
        }
        keys.first().cloned()
    }
}

/// The rustls configuration: the versions allowed, the certificates, and HTTP/2 or HTTP/1.1
/// offered by ALPN (RFC 7301; RFC 9113 §3.2 names `h2`).
pub fn server_config(
    certificates: Arc<Certificates>,
    min_version: TlsVersion,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(certificates.provider.clone())
        .with_protocol_versions(versions)
        .context("cannot configure TLS")?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The HTTPS listener for `axum::serve`: TCP connections are accepted here and their
/// handshakes run in tasks of their own, so a slow client never holds up the others.
pub struct TlsListener {
    local: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Binds `config.address` with `certificates`.
    pub async fn bind(
        config: &TlsConfig,
        certificates: Arc<Certificates>,
    ) -> anyhow::Result<TlsListener> {
        let tcp = crate::listen::bind(&config.address)
            .await
            .with_context(|| format!("cannot listen on {} for HTTPS", config.address))?;
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(server_config(certificates, config.min_version)?);
        let (queue, handshaken) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = tokio::spawn(accept_loop(tcp, acceptor, queue));
        Ok(TlsListener {
            local,
            handshaken,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    queue: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, usually: wait instead of spinning.
                tracing::warn!(error = %err, "could not accept an HTTPS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // No Nagle, as on the plain listener (`app/listeners.rs`): the handshake and a response
        // written in pieces would otherwise wait for the client's delayed ACKs.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "could not set TCP_NODELAY on a connection");
        }
        let (acceptor, queue) = (acceptor.clone(), queue.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = queue.send((tls, peer)).await;
                }
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (only when aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}
