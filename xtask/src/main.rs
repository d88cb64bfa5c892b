//! `cargo xtask`: everything a fresh machine needs to build, test and run netcopy.

mod cmd;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Set up, build, test and run netcopy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and tracing need (idempotent): nightly rust-src, bpf-linker, tracefs.
    Setup,
    /// Set up, then build netcopy (release) with its eBPF programs embedded.
    Build,
    /// Set up, then run every test in the workspace. Arguments after `--` go to the test binaries.
    Test {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run netcopy. Arguments after `--` go to netcopy.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|_| ()),
        Command::Build => cmd::build(),
        Command::Test { args } => cmd::test(&args),
        Command::Run { args } => cmd::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
