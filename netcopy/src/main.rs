//! netcopy's command line: parsing (`cli`), the commands (`commands`), and here the dispatch and
//! the one rule for errors: one line on stderr, exit 2 for bad input, 1 for a failed run.

mod cli;
mod commands;
mod parse;

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use netcopy::interrupt;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            if !err.use_stderr() {
                // --help and --version.
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("netcopy: {}", first_line(&err.to_string()));
            return ExitCode::from(2);
        }
    };
    if let Err(err) = interrupt::install() {
        eprintln!("netcopy: cannot handle Ctrl-C: {err}");
        return ExitCode::FAILURE;
    }
    // The commands that print a result for a reader (`netcopy explain | head`) end quietly
    // when the reader goes away, as Unix tools do, instead of panicking in `println!`. The
    // long-running ones (sweep, serve, trace) keep their files and cleanup: they write their
    // lines ignoring a closed pipe.
    if matches!(
        cli.command,
        Command::Check
            | Command::BenchOne(_)
            | Command::Compare(_)
            | Command::Explain(_)
            | Command::Report(_)
    ) {
        // SAFETY: restoring the default disposition of one signal, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Check => commands::check(),
        Command::BenchOne(args) => commands::bench_one(args),
        Command::Compare(args) => commands::compare(args),
        Command::Sweep(args) => commands::sweep(*args),
        Command::Explain(args) => commands::explain(args),
        Command::Report(args) => commands::report(args),
        Command::Trace(args) => commands::trace(args),
        Command::Serve(args) => commands::serve(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // Bad input found only once running (a path that cannot carry the request, an
            // output folder that cannot be written) is still bad input: exit 2.
            let usage = err.downcast_ref::<Usage>().is_some()
                || matches!(
                    err.downcast_ref::<netcopy::Error>(),
                    Some(netcopy::Error::Unsupported(_) | netcopy::Error::Port { .. })
                );
            // Ignored if stderr is gone (a closed terminal): the exit code still says it.
            let _ = writeln!(
                std::io::stderr(),
                "netcopy: {}",
                one_line(&format!("{err:#}"))
            );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Bad input discovered after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(String);

/// An error as one line: whatever its sources said, joined.
pub(crate) fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// clap's message, reduced to its one informative line ("error: ..." without the prefix).
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}
