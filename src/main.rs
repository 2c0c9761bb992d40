//! `coder`: parse the command line and run it.

use clap::Parser;

/// glibc's allocator spent a quarter of the server's CPU under concurrent MCP load, much of it
/// consolidating free lists after large responses; mimalloc's per-thread heaps avoid that
/// (docs/benchmarks.md). Its `override` feature routes the bundled SQLite's malloc there too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = coderd::cli::Cli::parse();
    let runtime = if cli.runs_on_one_thread() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(coderd::cli::run(cli)),
        Err(err) => Err(anyhow::Error::new(err).context("cannot start the async runtime")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
