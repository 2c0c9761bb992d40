//! `coder`: parse the command line and run it.

use clap::Parser;

/// glibc's allocator spent a quarter of the server's CPU under concurrent MCP load, much of it
/// consolidating free lists after large responses; mimalloc's per-thread heaps avoid that
/// (docs/benchmarks.md). Its `override` feature routes the bundled SQLite's malloc there too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before giving it back to the system. mimalloc 3 waits
/// 1,000 ms, so a burst's memory stays resident for a second after it; 10 ms (mimalloc 2's
/// default) lowered the peak RSS of 64 MCP connections by 5-7 MiB at no measurable CPU cost,
/// where 0 cost 5-9% more CPU per request (docs/benchmarks.md, issue 19).
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 10;
/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (include/mimalloc.h); the bindings do
/// not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's purge delay unless `MIMALLOC_PURGE_DELAY` does, as mimalloc documents.
/// Runs first in `main`, before any thread of ours exists: `mi_option_set` is not thread-safe.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer option; it takes no pointer and touches no
        // memory of ours, and no other thread runs yet.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS);
        }
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
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
