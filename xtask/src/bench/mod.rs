//! `cargo xtask bench`: is the harness fast enough to measure what it claims, and does the
//! observer change what it observes? Five parts, measured side by side in one run, written to
//! bench/latest.md. Nothing here asserts a timing: the numbers are reported, with the targets.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Result, bail};

use crate::{cmd, setup};

mod harness;
mod observer;
mod runs;
mod soak;
mod untraced;
mod util;

pub use soak::soak;

/// Interleaved repetitions per comparison; medians are reported.
const REPS: usize = 3;
/// Part 1 compares two noisy figures against a line (1.0): more repetitions for its medians.
const HARNESS_REPS: usize = 9;
/// Part 2's interleaved (untraced, floor, traced) triples per point.
const OBSERVER_REPS: usize = 5;
const DURATION: &str = "2s";

pub fn run(skip_default_sweep: bool, observer_only: bool) -> Result<()> {
    if !setup::is_root() {
        bail!("the benchmark traces the kernel: run it as root");
    }
    let env = setup::run()?;
    let netcopy = cmd::build_release(&env)?;
    let root = cmd::workspace_root();
    let scratch = std::env::temp_dir().join(format!("netcopy-bench-{}", std::process::id()));
    let mut md = String::new();
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()?;
    let _ = writeln!(md, "# netcopy benchmark\n");
    let _ = writeln!(
        md,
        "{} on {}. Medians of {REPS} interleaved repetitions, {DURATION} each.\n",
        String::from_utf8_lossy(&date.stdout).trim(),
        util::machine()
    );
    if !observer_only {
        eprintln!("bench: 1/5 harness vs iperf3");
        harness::harness(&mut md, &netcopy, &scratch)?;
    }
    eprintln!("bench: 2/5 tracing overhead");
    let copies = observer::tracing_overhead(&mut md, &netcopy, &scratch)?;
    observer::program_costs(&mut md, &netcopy)?;
    eprintln!("bench: 3/5 untraced rows of a traced sweep against a --no-trace sweep");
    untraced::untraced_rows(&mut md, &netcopy, &scratch)?;
    if !observer_only {
        eprintln!("bench: 4/5 copy limit");
        harness::copy_limit(&mut md, &copies);
        eprintln!("bench: 5/5 sweep cost");
        let root = (!skip_default_sweep).then_some(root.as_path());
        sweep_cost(&mut md, &netcopy, &scratch, root)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let dir = root.join("bench");
    std::fs::create_dir_all(&dir)?;
    // A partial run does not replace the whole one.
    let path = dir.join(if observer_only {
        "observer.md"
    } else {
        "latest.md"
    });
    std::fs::write(&path, &md)?;
    print!("{md}");
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

/// The quick sweep's wall time, and the default sweep's when `root` is given (its results
/// are kept there, like any `cargo xtask run`: they are the README's example).
fn sweep_cost(md: &mut String, netcopy: &Path, scratch: &Path, root: Option<&Path>) -> Result<()> {
    let _ = writeln!(
        md,
        "\n## 5. Sweep cost (wall time: one traced run per point, timing runs to the confidence target)\n"
    );
    let quick = runs::timed_sweep(netcopy, &["--quick"], &scratch.join("timed"))?;
    let _ = writeln!(md, "- `cargo xtask run -- --quick`: {quick} (target: 60 s)");
    match root {
        None => {
            let _ = writeln!(md, "- default sweep: not run (--skip-default-sweep)");
        }
        Some(root) => {
            let full = runs::timed_sweep(netcopy, &[], &root.join("results"))?;
            let _ = writeln!(
                md,
                "- `cargo xtask run` (default grid): {full} (targets: 600 s, 80 % within ±5 %)"
            );
        }
    }
    Ok(())
}
