//! `cargo xtask soak`.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use super::util::machine;
use crate::{cmd, setup};

/// `cargo xtask soak`: the quick sweep in a loop, in one netcopy process, for `minutes`;
/// the resident memory after every pass goes to bench/soak.md.
pub fn soak(minutes: u64) -> Result<()> {
    if !setup::is_root() {
        bail!("the soak traces the kernel: run it as root");
    }
    let env = setup::run()?;
    let netcopy = cmd::build_release(&env)?;
    let scratch = std::env::temp_dir().join(format!("netcopy-soak-{}", std::process::id()));
    let started = Instant::now();
    let out = Command::new(&netcopy)
        .args([
            "sweep",
            "--quick",
            "--soak",
            &format!("{minutes}m"),
            "--out",
        ])
        .arg(&scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running netcopy")?;
    let passes: Vec<u64> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("soak: pass "))
        .filter_map(|l| l.split("rss_kib ").nth(1))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    if passes.is_empty() {
        bail!("netcopy reported no pass ({})", out.status);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# netcopy soak\n");
    let _ = writeln!(
        md,
        "{} passes of the quick sweep in one process over {:.0} min on {} (exit: {}).\n",
        passes.len(),
        started.elapsed().as_secs_f64() / 60.0,
        machine(),
        out.status
    );
    let (first, last) = (passes[0], *passes.last().unwrap_or(&0));
    let max = passes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        md,
        "Resident memory: first pass {first} KiB, last {last} KiB, highest {max} KiB ({:+} KiB from first to last).\n",
        last as i64 - first as i64
    );
    let _ = writeln!(
        md,
        "Per pass (KiB): {}",
        passes
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = cmd::workspace_root().join("bench").join("soak.md");
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&path, &md)?;
    print!("{md}");
    if !out.status.success() {
        bail!("netcopy failed during the soak ({})", out.status);
    }
    Ok(())
}
