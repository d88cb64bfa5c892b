//! netcopy's command line: parsing and dispatch only.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
