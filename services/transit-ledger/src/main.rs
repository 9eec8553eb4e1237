//! `transit-ledger`: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = transit_ledger::cli::Cli::parse();
    transit_ledger::cli::run(cli)
}
