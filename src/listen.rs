//! TCP listeners with the accept backlog the kernel allows, for the server's public ports.
//!
//! `tokio::net::TcpListener::bind` asks for a backlog of 1024. A burst of new connections
//! larger than that (a thousand MCP clients reconnecting after a restart, a load balancer
//! opening its pool) overflows the accept queue while the server is busy, and the kernel then
//! drops the client's SYN or its final ACK (`tcp_abort_on_overflow` = 0): the client retries
//! after a second, which shows as one-second tails and as connect errors in load tests. Go,
//! and so Coder, listens with `net.core.somaxconn` (`maxListenerBacklog` in Go's `net`), the
//! most the kernel grants anyway (listen(2): a larger backlog is silently capped to it); so do
//! we.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The backlog when `somaxconn` cannot be read: Linux's default since 5.4.
const DEFAULT_BACKLOG: u32 = 4096;
/// Kernels before 4.1 kept the backlog in 16 bits and truncated a larger one (Go caps it the
/// same way).
const HIGHEST_BACKLOG: u32 = u16::MAX as u32;

/// The accept backlog listeners ask for: `net.core.somaxconn`.
pub fn backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .map_or(DEFAULT_BACKLOG, |n| n.min(HIGHEST_BACKLOG))
}

/// Listens on `address` (`host:port`; a name is resolved and its addresses tried in turn, as
/// `TcpListener::bind` does) with `backlog()`.
pub async fn bind(address: &str) -> io::Result<TcpListener> {
    let backlog = backlog();
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        match bind_one(addr, backlog) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to no addresses",
        )
    }))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does on Unix: a restarted server can take its port back while
    // the old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_somaxconn_within_bounds() {
        let n = backlog();
        assert!((1..=HIGHEST_BACKLOG).contains(&n), "{n}");
        if let Ok(s) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") {
            let sys: u32 = s.trim().parse().unwrap_or(0);
            assert_eq!(n, sys.min(HIGHEST_BACKLOG));
        }
    }

    #[tokio::test]
    async fn binds_names_and_reports_unusable_addresses() {
        let listener = bind("localhost:0").await;
        assert!(listener.is_ok(), "{listener:?}");
        // The listener stays open (borrowed, not consumed) while its address is bound again.
        let taken = listener
            .as_ref()
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string())
            .unwrap_or_default();
        assert!(bind(&taken).await.is_err(), "{taken} is already in use");
        drop(listener);
        assert!(bind("not an address").await.is_err());
    }
}
