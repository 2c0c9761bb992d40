//! The server's public listeners, plain HTTP, its own HTTPS and the Prometheus page, and serving
//! them until the server stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use super::AbortOnDrop;
use crate::config::ServerConfig;
use crate::tls::{Certificates, TlsListener};
use crate::web::AppState;
use crate::web::transport::{Transport, on_listener};

pub(super) struct Listeners {
    /// Plain HTTP; `None` when `--http-address` is empty (HTTPS only).
    http: Option<TcpListener>,
    /// HTTPS, with its certificates (reloaded while serving).
    tls: Option<TlsFront>,
    /// The Prometheus page.
    metrics: Option<TcpListener>,
}

struct TlsFront {
    listener: TlsListener,
    certificates: Arc<Certificates>,
    /// SIGHUP, which reloads the certificates at once.
    hangups: Option<tokio::signal::unix::Signal>,
}

impl Listeners {
    /// Binds every listener the configuration asks for.
    pub(super) async fn bind(config: &ServerConfig) -> anyhow::Result<Self> {
        let http = match config.http_address.as_str() {
            "" => None,
            address => Some(
                crate::listen::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address}"))?,
            ),
        };
        let tls = match &config.tls {
            Some(tls) => {
                let certificates = Certificates::load(&tls.pairs)?;
                Some(TlsFront {
                    listener: TlsListener::bind(tls, certificates.clone()).await?,
                    certificates,
                    hangups: crate::tls::hangups(),
                })
            }
            None => None,
        };
        let metrics = match &config.prometheus_address {
            Some(address) => Some(
                crate::listen::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} for the metrics"))?,
            ),
            None => None,
        };
        if http.is_none() && tls.is_none() {
            anyhow::bail!(
                "nothing to listen on: set --http-address, or enable TLS with --tls-enable"
            );
        }
        Ok(Self { http, tls, metrics })
    }

    /// Where clients reach us when no access URL says otherwise: over HTTPS when it is on.
    pub(super) fn public(&self) -> std::io::Result<(&'static str, SocketAddr)> {
        match &self.tls {
            Some(_) => Ok(("https", self.tls_local_addr()?)),
            None => Ok(("http", self.local_addr()?)),
        }
    }

    /// Where plain HTTP is served, else HTTPS.
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.http {
            Some(listener) => listener.local_addr(),
            None => self.tls_local_addr(),
        }
    }

    /// Where HTTPS is served.
    pub(super) fn tls_local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.tls {
            Some(front) => axum::serve::Listener::local_addr(&front.listener),
            None => Err(not_enabled("TLS is not enabled")),
        }
    }

    /// Where the Prometheus metrics are served.
    pub(super) fn metrics_local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.metrics {
            Some(listener) => listener.local_addr(),
            None => Err(not_enabled("the Prometheus endpoint is not enabled")),
        }
    }

    /// Serves `state`'s routes on every listener until `shutdown` resolves or one listener
    /// fails; then each finishes its in-flight requests.
    pub(super) async fn serve(
        self,
        state: AppState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        // The two front doors side by side, under the one layer stack.
        let routes = crate::http::routes(&state).merge(crate::mcp::routes(&state));
        let router = crate::web::stack::server(
            routes,
            state.clone(),
            crate::http::pages::chrome::browser_error,
        );
        let settings = state.settings.clone();
        let mut servers = tokio::task::JoinSet::new();
        if let Some(listener) = self.http {
            let app = on_listener(router.clone(), settings.clone(), Transport::Http);
            servers.spawn(
                axum::serve(
                    listener.tap_io(no_delay),
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(until_stopped())
                .into_future(),
            );
        }
        let mut certificate_watch = None;
        if let Some(front) = self.tls {
            certificate_watch = Some(AbortOnDrop(tokio::spawn(
                front.certificates.watch(front.hangups),
            )));
            let app = on_listener(router, settings, Transport::Https);
            // `tap_io` only lends the connection's peer address to `ConnectInfo`, as a plain
            // TCP listener does.
            servers.spawn(
                axum::serve(
                    front.listener.tap_io(|_| {}),
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(until_stopped())
                .into_future(),
            );
        }
        if let Some(listener) = self.metrics {
            let app = crate::web::stack::metrics_listener(crate::http::metrics::routes(), state);
            servers.spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(until_stopped())
                    .into_future(),
            );
        }
        let served = tokio::select! {
            () = shutdown => Ok(()),
            // A listener that fails stops the server.
            Some(ended) = servers.join_next() => match ended {
                Ok(result) => result,
                Err(err) => Err(std::io::Error::other(err)),
            },
        };
        let _ = stop.send(true);
        while let Some(ended) = servers.join_next().await {
            if let Ok(Err(err)) = ended {
                tracing::warn!(error = %err, "a listener failed while stopping");
            }
        }
        drop(certificate_watch);
        served
    }
}

/// Turns off Nagle's algorithm on an accepted connection, as Go (and so Coder) does for every
/// TCP connection: a response written in pieces (an MCP progress stream, a relayed answer)
/// otherwise waits for the client's delayed ACK, up to 40 ms on Linux, before its next piece.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY on a connection");
    }
}

fn not_enabled(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, what.to_owned())
}
