//! Integration tests: the real app on port 0 against a real database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
mod basics;
mod users;
