//! Integration tests: the real app on port 0 against a real database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_keys;
mod basics;
mod cli;
mod helpers;
mod oauth_admin;
mod oauth_client;
mod oauth_flow;
mod oauth_interop;
mod oauth_pages;
mod oauth_registration;
mod pages;
mod store;
mod users;
