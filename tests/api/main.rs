//! Integration tests: placeholder.
