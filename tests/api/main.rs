//! Integration tests: the real app on port 0 against a real database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod api_keys;
mod audit_log;
mod basics;
mod cli;
mod cli_client;
mod cli_support;
mod cli_workspaces;
mod db_outage;
mod docker;
mod helpers;
mod hostile_input;
mod layers;
mod mcp_e2e;
mod mcp_support;
mod mcp_wire;
mod metrics;
mod oauth_admin;
mod oauth_client;
mod oauth_flow;
mod oauth_interop;
mod oauth_pages;
mod oauth_registration;
mod pages;
mod provisioner_daemons;
mod request_fuzz;
mod sandbox;
mod store;
mod templates;
mod tls;
mod users;
mod workspace_support;
mod workspaces;
mod write_contention;
