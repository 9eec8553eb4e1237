//! `transit-ledger`: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc: the projections allocate many small values per event (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = transit_ledger::cli::Cli::parse();
    transit_ledger::cli::run(cli)
}
