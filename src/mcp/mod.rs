//! The remote MCP endpoint at `/api/experimental/mcp/http`: rmcp's stateless streamable HTTP
//! server behind our own gate, Origin check and authentication. No rmcp type leaves this module.

mod admission;
mod auth;
mod endpoint;
mod handler;
mod rendered;
mod result;
pub mod tools;
pub mod toolset;
mod twin;
mod wire;

pub use endpoint::routes;

/// The protocol versions served: the handshake era and the stateless 2026-07-28 era.
pub const SUPPORTED_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The `_meta` key that carries the protocol version on every request of the stateless era
/// (MCP 2026-07-28), which relays and servers read alike.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
