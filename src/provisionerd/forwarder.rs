//! The daemon's agent socket: each connection a sandboxed agent opens is forwarded, byte for
//! byte, to the server's address. The agent speaks HTTP (or TLS, for an `https` URL) to the
//! server through it, so the daemon never sees a request.

use std::path::Path;

use anyhow::Context;

/// Binds `socket` (replacing one a previous run left) and forwards its connections to the host
/// and port of `server`, until the process ends.
pub fn start(socket: &Path, server: &url::Url) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let host = server
        .host_str()
        .context("the server URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = server
        .port_or_known_default()
        .context("the server URL has no port")?;
    // Sandboxes run as their own users; what they reach through it is the server's public
    // address, which needs an agent token.
    let listener = crate::provisioner::sandbox::bind_agent_socket(socket)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut agent, _)) = listener.accept().await else {
                continue;
            };
            let (host, port) = (host.clone(), port);
            tokio::spawn(async move {
                match tokio::net::TcpStream::connect((host.as_str(), port)).await {
                    Ok(mut server) => {
                        let _ = tokio::io::copy_bidirectional(&mut agent, &mut server).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the server for an agent");
                    }
                }
            });
        }
    }))
}
