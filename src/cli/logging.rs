//! Log setup: human-readable or JSON lines on stderr, `--verbose` for debug.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, verbose: bool) {
    let default = if verbose {
        "debug,sqlx=warn,hyper=info,h2=info,rmcp=info"
    } else {
        "info,sqlx=warn,rmcp=warn"
    };
    let filter =
        EnvFilter::try_from_env("CODER_LOG_FILTER").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into files or container logs.
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
