//! `cargo xtask`: everything a fresh machine needs to build, test and run netcopy.

mod bench;
mod cmd;
mod setup;
mod vm;

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
    /// Set up, then run every test in the workspace, then the exact-figure tests four times
    /// more (five runs each in all). With `--repeat N`, run only the named test targets
    /// (`control_paths`, or `control_paths:veth` for one test in it; default: the exact-figure
    /// tests) N times, stopping at the first failure. Arguments after `--` go to the test binaries.
    Test {
        /// Also run the accounting tests inside a Debian 6.1 guest (`cargo xtask vm`), as
        /// when `GUEST_SUITE_IN_CI` is on.
        #[arg(long)]
        guest: bool,
        #[arg(long)]
        repeat: Option<u32>,
        filters: Vec<String>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run netcopy. Arguments after `--` go to netcopy.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, then measure netcopy against iperf3, the cost of tracing, the copy
    /// limit and the sweeps' wall time; writes bench/latest.md. Root.
    Bench {
        /// Leave out the 9-minute default sweep from part 5.
        #[arg(long)]
        skip_default_sweep: bool,
        /// Only part 5's default sweep (no quick sweep), `--sweeps` times in a row: its
        /// coverage, wall time, CPU model and load; writes bench/sweep.md.
        #[arg(long, conflicts_with_all = ["skip_default_sweep", "observer_only"])]
        sweep_only: bool,
        /// How many default sweeps part 5 runs, one after the other (each a fresh run).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
        sweeps: u32,
        /// Only the observer's parts (2 and 3): one CPU traced / untraced, and a traced
        /// sweep's untraced rows against a --no-trace sweep's.
        #[arg(long)]
        observer_only: bool,
    },
    /// Set up, build, then run the quick sweep in a loop in one process and record its
    /// resident memory per pass into bench/soak.md. Root.
    Soak {
        /// How long, in minutes.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
    },
    /// Run netcopy, or its kernel-facing tests (`-- test [NAME...] [FILTER...]`), inside a QEMU
    /// guest booted from a Debian kernel package; exits with the guest command's status.
    Vm(vm::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|_| ()),
        Command::Build => cmd::build(),
        Command::Test {
            guest,
            repeat,
            filters,
            args,
        } => cmd::test(repeat, &filters, &args, guest || vm::GUEST_SUITE_IN_CI),
        Command::Run { args } => cmd::run(&args),
        Command::Bench {
            skip_default_sweep,
            sweep_only,
            sweeps,
            observer_only,
        } => bench::run(bench::Parts {
            skip_default_sweep,
            sweep_only,
            sweeps,
            observer_only,
        }),
        Command::Soak { minutes } => bench::soak(minutes),
        Command::Vm(args) => return vm::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
