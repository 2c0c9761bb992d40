//! coderd: workspaces for people and AI agents, a remote MCP endpoint and its OAuth2 server.

pub mod agent;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod listen;
pub mod mcp;
pub mod metrics;
pub mod oauth;
#[cfg(test)]
mod proptest_support;
pub mod provisioner;
pub mod provisionerd;
pub mod ratelimit;
pub mod revocation;
pub mod secret;
pub mod service;
pub mod store;
pub mod tls;
pub mod web;
