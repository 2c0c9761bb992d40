//! Shared settings and generators for the property tests of the parsers of untrusted input.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;

/// The longest one parse may take on any input: the property "bounded time" of every parser
/// test. Generous, for debug builds on a loaded two-core machine.
pub const PARSE_BUDGET: Duration = Duration::from_millis(500);

/// `cases` cases per property, or `PROPTEST_CASES` when set, so that a run can dig deeper.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Shrinking a slow failure can take long; a few hundred steps find the small case.
        max_shrink_iters: 512,
        ..Config::default()
    }
}

/// Runs `parse`, failing the property when it took longer than the budget.
pub fn timed<T>(what: &str, parse: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let started = Instant::now();
    let out = parse();
    let took = started.elapsed();
    prop_assert!(took < PARSE_BUDGET, "{what} took {took:?}");
    Ok(out)
}

/// Strings that break parsers and databases, mixed with arbitrary text.
pub fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("\u{202e}\u{1b}[31m\r\n\t\u{7f}\u{85}\u{feff}".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("%00%ff%2e%2e".to_owned()),
        "[a-zA-Z0-9 ._:/?#&=-]{0,40}",
        any::<String>(),
    ]
}
