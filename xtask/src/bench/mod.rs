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
/// Part 2's interleaved (untraced, floor, traced) triples per point: its paired ratios'
/// intervals narrow with more (at five, a3 16 KiB on one CPU read 0.92 and 0.98 an hour apart).
const OBSERVER_REPS: usize = 7;
const DURATION: &str = "2s";

/// Which parts to run (`cargo xtask bench` flags).
pub struct Parts {
    pub skip_default_sweep: bool,
    pub sweep_only: bool,
    pub sweeps: u32,
    pub observer_only: bool,
}

pub fn run(parts: Parts) -> Result<()> {
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
    let method = if parts.sweep_only {
        "Default sweeps only (`--sweep-only`)".to_owned()
    } else {
        format!("Medians of {REPS} interleaved repetitions, {DURATION} each")
    };
    let _ = writeln!(
        md,
        "{} on {}. {method}.\n",
        String::from_utf8_lossy(&date.stdout).trim(),
        util::machine()
    );
    if parts.sweep_only {
        eprintln!("bench: 5/5 default sweep only");
        sweep_cost(
            &mut md,
            &netcopy,
            &scratch,
            Some(&root),
            parts.sweeps,
            false,
        )?;
        return write(&root, "sweep.md", &md, &scratch);
    }
    if !parts.observer_only {
        eprintln!("bench: 1/5 harness vs iperf3");
        harness::harness(&mut md, &netcopy, &scratch)?;
    }
    eprintln!("bench: 2/5 tracing overhead");
    let copies = observer::tracing_overhead(&mut md, &netcopy, &scratch)?;
    observer::program_costs(&mut md, &netcopy)?;
    eprintln!("bench: 3/5 untraced rows of a traced sweep against a --no-trace sweep");
    untraced::untraced_rows(&mut md, &netcopy, &scratch)?;
    if !parts.observer_only {
        eprintln!("bench: 4/5 copy limit");
        harness::copy_limit(&mut md, &copies);
        eprintln!("bench: 5/5 sweep cost");
        let default = (!parts.skip_default_sweep).then_some(root.as_path());
        sweep_cost(&mut md, &netcopy, &scratch, default, parts.sweeps, true)?;
    }
    // A partial run does not replace the whole one.
    let name = if parts.observer_only {
        "observer.md"
    } else {
        "latest.md"
    };
    write(&root, name, &md, &scratch)
}

/// Writes `md` to bench/`name` and shows it.
fn write(root: &Path, name: &str, md: &str, scratch: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(scratch);
    let dir = root.join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, md)?;
    print!("{md}");
    eprintln!("bench: written to {}", path.display());
    Ok(())
}

/// The quick sweep's wall time (with `quick`), and the default sweep's, `sweeps` times, when
/// `root` is given (its results are kept there, like any `cargo xtask run`: they are the
/// README's example), each with the machine and its load, which the figures depend on.
fn sweep_cost(
    md: &mut String,
    netcopy: &Path,
    scratch: &Path,
    root: Option<&Path>,
    sweeps: u32,
    quick: bool,
) -> Result<()> {
    let _ = writeln!(
        md,
        "\n## 5. Sweep cost (wall time: one traced run per point, timing runs to the confidence target)\n"
    );
    if quick {
        let quick = runs::timed_sweep(netcopy, &["--quick"], &scratch.join("timed"))?;
        let _ = writeln!(md, "- `cargo xtask run -- --quick`: {quick} (target: 60 s)");
    }
    let Some(root) = root else {
        let _ = writeln!(md, "- default sweep: not run (--skip-default-sweep)");
        return Ok(());
    };
    for i in 1..=sweeps {
        eprintln!("bench: default sweep {i} of {sweeps}");
        let before = util::load_average();
        let full = runs::timed_sweep(netcopy, &[], &root.join("results"))?;
        let _ = writeln!(
            md,
            "- `cargo xtask run` (default grid), run {i} of {sweeps}, on {}, load average {before} before and {} after: {full} (targets: sweep ≤ 600 s, ≥ 90 % within ±5 %, ≥ 50 % within ±2.5 %: {})",
            util::machine(),
            util::load_average(),
            if full.meets_targets() {
                "met"
            } else {
                "not met"
            }
        );
    }
    Ok(())
}
