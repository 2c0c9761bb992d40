//! A throw-away HTTPS server on 127.0.0.1 that serves Client ID Metadata Documents, with its own
//! CA, so tests can play clients (claude.ai, VS Code) that identify themselves by URL. Each path
//! answers what the test set: a document, a redirect, an oversized or slow body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coderd::config::CimdTestTrust;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What one path answers.
#[derive(Debug, Clone)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Send no Content-Length: the body ends when the connection closes.
    pub streamed: bool,
}

impl Route {
    pub fn json(body: &Value) -> Route {
        Route {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: None,
            streamed: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct Shared {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
}

pub struct DocServer {
    /// `https://127.0.0.1:<port>`
    pub base: String,
    pub ca_pem: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DocServer {
    pub async fn start() -> DocServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "coderd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve(stream, state).await;
                    }
                });
            }
        });
        DocServer {
            base: format!("https://127.0.0.1:{port}"),
            ca_pem: ca_cert.pem(),
            shared,
            task,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn set(&self, path: &str, route: Route) {
        self.shared
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), route);
    }

    /// Serves a metadata document at `path` whose `client_id` is its URL, with `fields` merged in.
    pub fn document(&self, path: &str, fields: Value) -> String {
        let url = self.url(path);
        let mut doc = serde_json::json!({ "client_id": url });
        if let (Some(doc), Some(fields)) = (doc.as_object_mut(), fields.as_object()) {
            for (k, v) in fields {
                doc.insert(k.clone(), v.clone());
            }
        }
        self.set(path, Route::json(&doc));
        url
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The test-only trust that lets the server fetch from here.
    pub fn trust(&self) -> CimdTestTrust {
        CimdTestTrust {
            extra_roots_pem: vec![self.ca_pem.clone()],
            allow_loopback: true,
            fetch_timeout: Some(Duration::from_secs(2)),
        }
    }
}

async fn serve(
    mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    state: Arc<Mutex<Shared>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let route = {
        let mut shared = state.lock().unwrap();
        *shared.hits.entry(path.clone()).or_default() += 1;
        shared.routes.get(&path).cloned()
    };
    let route = route.unwrap_or(Route {
        status: 404,
        headers: Vec::new(),
        body: b"not found".to_vec(),
        delay: None,
        streamed: false,
    });
    if let Some(delay) = route.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", route.status);
    if !route.streamed {
        response.push_str(&format!("Content-Length: {}\r\n", route.body.len()));
    }
    for (k, v) in &route.headers {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&route.body).await;
    let _ = stream.shutdown().await;
}
