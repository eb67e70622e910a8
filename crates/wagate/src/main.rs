//! The `wagate` command: runs the gateway and administers it.

mod backup;
mod cli;
mod telemetry;

use clap::Parser;

/// Many small allocations from many threads (requests, rows, events): mimalloc spends less CPU
/// on them than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    wagate_server::memory::use_small_pages();
    let cli = cli::Cli::parse();
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
