//! Part 3: the untraced rows of a traced sweep against a `--no-trace` sweep's, interleaved: a
//! speed figure must not depend on whether the sweep also traced.

use std::{fmt::Write as _, path::Path, process::Command, process::Stdio};

use anyhow::{Context as _, Result, bail};

use super::util::{interval, median, verdict};

/// Pairs of sweeps (traced, `--no-trace`) per point, run alternately. a1 at 16 KiB on one CPU
/// is bimodal here (about 24 or 29 Gbit/s, run by run): with four pairs one fast run moved a
/// mean by 5 %.
const PAIRS: usize = 8;
/// Timing runs per sweep.
const SWEEP_REPS: &str = "3";

/// One sweep of `mode` at `size` (stream, one connection, default placement); its untraced
/// rows' throughputs, and how many of them the kernel showed with programs attached.
fn untraced_speeds(
    netcopy: &Path,
    mode: &str,
    size: &str,
    trace: bool,
    out: &Path,
) -> Result<(Vec<f64>, usize)> {
    let mut cmd = Command::new(netcopy);
    cmd.args(["sweep", "--modes", mode, "--sizes", size, "--threads", "1"])
        .args(["--workload", "stream", "--reps", SWEEP_REPS, "--out"])
        .arg(out)
        .stdout(Stdio::null());
    if !trace {
        cmd.arg("--no-trace");
    }
    let status = cmd.status().context("running netcopy sweep")?;
    if !status.success() {
        bail!("netcopy sweep {mode} {size} (traced: {trace}) failed ({status})");
    }
    let mut reader = csv::Reader::from_path(out.join("latest/results.csv"))?;
    let header = reader.headers()?.clone();
    let column = |name: &str| header.iter().position(|c| c == name);
    let (traced, gbps, attached) = (
        column("traced").context("no traced column")?,
        column("send_gbps").context("no send_gbps column")?,
        column("attached_programs").context("no attached_programs column")?,
    );
    let (mut speeds, mut observed) = (Vec::new(), 0);
    for record in reader.records() {
        let record = record?;
        if &record[traced] == "true" {
            continue;
        }
        speeds.push(record[gbps].parse().context("send_gbps")?);
        if trace && &record[attached] != "0" {
            observed += 1;
        }
    }
    Ok((speeds, observed))
}

/// The table: per point, both sweeps' untraced means with intervals, and their ratio.
pub fn untraced_rows(md: &mut String, netcopy: &Path, scratch: &Path) -> Result<()> {
    let _ = writeln!(
        md,
        "\n## 3. Untraced rows of a traced sweep against a `--no-trace` sweep (stream, 1 connection, default placement)\n"
    );
    let _ = writeln!(
        md,
        "{PAIRS} pairs of sweeps per point, traced and `--no-trace` alternately, {SWEEP_REPS} timing runs each; mean ± 95 % interval of the untraced rows, the ratio of the means (the target's, with its 95 % interval from the two means') and of the medians. `attached` counts the traced sweeps' untraced rows whose `attached_programs` (the kernel's link list) was not 0.\n"
    );
    let _ = writeln!(
        md,
        "| mode | size | traced sweep, untraced rows (Gbit/s) | `--no-trace` sweep (Gbit/s) | ratio | median ratio | attached | target |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (mode, size) in [("a1", "256"), ("a1", "16K"), ("a3", "16K")] {
        let (mut traced, mut plain, mut observed) = (Vec::new(), Vec::new(), 0);
        for _ in 0..PAIRS {
            let (speeds, n) = untraced_speeds(netcopy, mode, size, true, scratch)?;
            traced.extend(speeds);
            observed += n;
            plain.extend(untraced_speeds(netcopy, mode, size, false, scratch)?.0);
        }
        let ((t, th), (p, ph)) = (interval(&traced), interval(&plain));
        let ratio = t / p;
        let half = ratio * ((th / t).powi(2) + (ph / p).powi(2)).sqrt();
        let medians = median(traced.clone()) / median(plain.clone());
        let _ = writeln!(
            md,
            "| {mode} | {size} | {t:.3} ± {th:.3} | {p:.3} ± {ph:.3} | {ratio:.3} ± {half:.3} | {medians:.3} | {observed} of {} | ≥ 0.97: {} |",
            traced.len(),
            verdict(ratio, half, 0.97)
        );
    }
    Ok(())
}
