//! Arguments and commands. Errors reach the user as one line on stderr.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use netcopy::kernel::{self, btf::Btf, tracer};

#[derive(Parser)]
#[command(
    name = "netcopy",
    version,
    about = "Shows, from inside the kernel, what Linux copies when a program sends data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve this kernel's struct offsets from BTF, load and attach every probe, report.
    Check,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; everything else is bad input (exit 2).
            let code = if err.use_stderr() { 2 } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Check => check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("netcopy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check() -> Result<()> {
    let path = kernel::btf_path();
    let btf = Btf::from_file(&path)?;
    let offsets = tracer::resolve_offsets(&btf)?;
    println!("BTF:      {}", path.display());
    println!(
        "offsets:  struct sock -> skc_num at byte {}, skc_dport at byte {}",
        offsets.sock_local_port, offsets.sock_remote_port
    );
    let _tracer = tracer::Tracer::load().context("loading the probes")?;
    for hook in tracer::HOOKS {
        println!("attached: {} (tp_btf/{})", hook.program, hook.tracepoint);
    }
    println!("ok: every probe loads and attaches on this kernel");
    Ok(())
}
