//! `coder`: parse the command line and run it.

use clap::Parser;

/// glibc's allocator spent a quarter of the server's CPU under concurrent MCP load, much of it
/// consolidating free lists after large responses; mimalloc's per-thread heaps avoid that
/// (docs/benchmarks.md). Its `override` feature routes the bundled SQLite's malloc there too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = coderd::cli::Cli::parse();
    match coderd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
