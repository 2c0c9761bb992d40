//! The resource-server side of authentication: verifying OAuth access tokens.

pub mod access_token;
